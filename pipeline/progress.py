"""What a person watching ``train`` sees: one line per epoch, and none of Lightning's noise.

DVC runs a stage with its output going to a log, not a terminal, so a progress bar would
print nothing useful there; a 20-epoch run on a CPU was minutes of silence between the
first line and the summary. :class:`EpochLines` prints one line per epoch (train loss,
val AUC, best so far, seconds, time left) wherever the output goes; a terminal also gets
Lightning's bar. :func:`quiet_lightning` drops what Lightning prints on every run that is
not about the user's run: an advertisement for a cloud logger, and deprecation warnings
raised inside Lightning itself.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import pytorch_lightning as pl

# Warnings Lightning raises on every run that are not about the user's run.
_LIGHTNING_INTERNAL_WARNINGS = (
    # deprecations inside Lightning's own code
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
    # MODEL_DIR holds fingerprint.json (and last.ckpt when resuming) by design, and the
    # train stage empties it itself when a run starts over
    r"Checkpoint directory .* exists and is not empty",
    # by design the module casts and augments after the transfer, and the DataModule
    # leaves that hook alone; Lightning notes on every run which one it uses
    r"You have overridden `on_after_batch_transfer` in `LightningModule`",
)


class _DropAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage().lower()


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within the block, Lightning's logger advertisement and internal warnings are dropped."""
    advert, logger = _DropAdvert(), logging.getLogger("pytorch_lightning.utilities.rank_zero")
    logger.addFilter(advert)
    try:
        with warnings.catch_warnings():
            for message in _LIGHTNING_INTERNAL_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        logger.removeFilter(advert)


@contextmanager
def no_device_report() -> Iterator[None]:
    """Within the block, a Trainer being built does not print the devices it found.

    For a second Trainer in the same run (the one that predicts): the fit's Trainer has
    already printed "GPU available: ..." once, and the stage's log should say it once.
    """
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class EpochLines(pl.Callback):
    """Print ``train: epoch 3/20: train loss 0.512, val AUC 0.731 (best 0.745 at epoch 2), 41 s; about 11 min left``.

    Args:
        best: the run's best-checkpoint callback; a resumed run starts from the best it
            restored, so "best so far" covers the epochs before the interruption too.
        out: where the lines go (standard output by default, as the stage's other lines).
    """

    def __init__(self, best: pl.callbacks.ModelCheckpoint, out: TextIO | None = None) -> None:
        self.best = best
        self.out = out
        self._best_auc = -math.inf
        self._best_epoch: int | None = None
        self._epoch_start = 0.0
        self._durations: list[float] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best.best_model_score is not None:  # restored from a checkpoint
            self._best_auc = float(self.best.best_model_score)
            self._best_epoch = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self._durations.append(seconds)
        metrics = trainer.callback_metrics
        epoch = trainer.current_epoch
        parts = [f"train: epoch {epoch + 1}/{trainer.max_epochs}:"]
        if "train_loss" in metrics:
            parts.append(f"train loss {float(metrics['train_loss']):.4f},")
        if "val_auc" in metrics:
            auc = float(metrics["val_auc"])
            if auc > self._best_auc:
                self._best_auc, self._best_epoch = auc, epoch
            at = f" at epoch {self._best_epoch + 1}" if self._best_epoch is not None else " before the resume"
            parts.append(f"val AUC {auc:.3f} (best {self._best_auc:.3f}{at}),")
        left = (trainer.max_epochs - epoch - 1) * sum(self._durations) / len(self._durations)
        parts.append(f"{_minutes(seconds)}" + (f"; about {_minutes(left)} left" if left > 0 else ""))
        if trainer.is_global_zero:
            print(" ".join(parts), file=self.out or sys.stdout, flush=True)
