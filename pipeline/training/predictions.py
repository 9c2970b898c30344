"""Score the cached val and test samples with the best checkpoint, through Lightning's predict loop.

:meth:`ClassifierSystem.predict_step` gives float64 probabilities (see
:meth:`ClassifierSystem.forward`) and each sample's cache index; rows come out in cache
order, one per sample. Prediction runs on one device (where training ran, on the global
rank 0) in full fp32, whatever precision training used, so that the scores do not
depend on autocast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from pipeline.schema.tables import CACHE_ROW_COLUMNS
from pipeline.data import CachedDataModule
from pipeline.progress import no_device_report, quiet_lightning
from pipeline.system import ClassifierSystem
from pipeline.training.fit import Fitted

PREDICTION_PRECISION = "32"


def predict_best(
    fitted: Fitted,
    data: CachedDataModule,
    *,
    backbone: nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None,
    parts: tuple[str, ...],
    deterministic: bool,
) -> list[dict[str, Any]]:
    """Rows of scores of ``parts`` from ``fitted``'s best checkpoint, on the device training used.

    Args:
        fitted: the finished fit.
        data: the cache's DataModule.
        backbone: the network the checkpoint's weights are loaded into.
        normalize: the input normalisation the system trained with.
        parts: the splits to score, in order (``("val", "test")``).
        deterministic: deterministic algorithms, as the fit had them.
    """
    system = ClassifierSystem.load_from_checkpoint(
        fitted.best_path, backbone=backbone, normalize=normalize, augment=None, map_location="cpu", weights_only=True
    )
    data.setup("predict")  # under ddp_spawn only the workers opened the cache
    trainer = predict_trainer(fitted.trainer.strategy.root_device, deterministic=deterministic)
    return predict_rows(trainer, system, data, parts)


def predict_trainer(device: torch.device, *, deterministic: bool) -> pl.Trainer:
    """A one-device Trainer on ``device`` that only predicts: no logger, no checkpoints, no bar."""
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    with quiet_lightning(), no_device_report():  # the fit already said which devices there are
        return pl.Trainer(
            accelerator=accelerator,
            devices=[device.index] if device.index is not None else 1,
            precision=PREDICTION_PRECISION,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=deterministic,
        )


def predict_rows(
    trainer: pl.Trainer, system: ClassifierSystem, data: CachedDataModule, parts: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Scores for every cached sample of ``parts``, one row each, in cache order.

    Each row is the cache's row of the sample with ``split`` and ``score`` (a float
    probability) added.
    """
    rows: list[dict[str, Any]] = []
    for part in parts:
        split = data.splits[part]
        with quiet_lightning():
            batches = trainer.predict(system, dataloaders=data.predict_loader(part))
        for scores, index in batches:
            for i, score in zip(index.tolist(), scores.tolist()):
                rows.append({**split.rows[i], "split": part, "score": score})
    return rows


def subgroup_columns(data: CachedDataModule) -> list[str]:
    """The cache's row columns beyond its own (manifest subgroups), in cache order."""
    rows = data.splits["val"].rows
    return [c for c in (rows[0].keys() if rows else []) if c not in CACHE_ROW_COLUMNS]
