"""Fit the classifier: the system around the backbone, the Trainer, and the best epoch by validation AUC.

``best.ckpt`` holds the epoch of highest validation AUC and ``last.ckpt`` the latest
epoch (for resume); both carry the sealed model description, so ``best.ckpt`` alone
rebuilds and feeds the model (:mod:`pipeline.modelfile`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from dvclive.lightning import DVCLiveLogger
from pytorch_lightning.callbacks import ModelCheckpoint

from pipeline.config import ModelConfig, TrainConfig
from pipeline.data import CachedDataModule
from pipeline.finetuning import FreezeEarlyLayers
from pipeline.modelfile import describe_model
from pipeline.models import Backbone
from pipeline.precision import conv_dims, resolve_precision
from pipeline.progress import EpochLines, quiet_lightning
from pipeline.system import ClassifierSystem
from pipeline.training.run_folder import checkpoint_epoch
from pipeline.augment import BatchAugment


@dataclass(frozen=True)
class Fitted:
    """A finished fit: its Trainer and the best checkpoint.

    Attributes:
        trainer: the Trainer that fitted (its ``strategy.root_device`` is where it ran).
        best_path: ``best.ckpt``, the epoch of highest validation AUC.
        best_epoch: that epoch, counted from 0 (-1 when none was saved).
        best_val_auc: its validation AUC (NaN when none was saved).
        resumed_from_epoch: the epoch of ``last.ckpt`` the fit continued from, or None.
    """

    trainer: pl.Trainer
    best_path: str
    best_epoch: int
    best_val_auc: float
    resumed_from_epoch: int | None


def deterministic(train: TrainConfig) -> bool:
    """Deterministic algorithms on a CPU, where they cost little; not on a GPU, where they would."""
    return not torch.cuda.is_available() or train.accelerator == "cpu"


def build_system(
    backbone: Backbone,
    *,
    model: ModelConfig,
    train: TrainConfig,
    cache_meta: Mapping[str, Any],
    model_config: Mapping[str, Any],
) -> ClassifierSystem:
    """The LightningModule around ``backbone``, with the model description sealed into its checkpoints.

    Args:
        backbone: the built backbone (model, provenance, normalisation).
        model: the model settings (discriminative learning rate).
        train: the training settings (optimiser, augmentation, layout, compilation).
        cache_meta: the cache's ``meta.json``, recorded as the preprocess settings.
        model_config: the model settings as a dict, recorded in the model file.
    """
    if train.compile:
        backbone.model.compile()  # in place: state_dict keys stay those of the plain model
    norm = backbone.normalization
    augment = None
    if train.augment:
        augment = BatchAugment(int(cache_meta["spatial_dims"]), seed=train.seed, max_shift=train.augment_shift_voxels)
    system = ClassifierSystem(
        backbone.model,
        lr=train.lr,
        weight_decay=train.weight_decay,
        max_epochs=train.max_epochs,
        backbone_lr_scale=model.backbone_lr_scale,
        normalize=None if norm is None else norm.apply,
        augment=augment,
        channels_last=train.channels_last,
    )
    # Sealed into every checkpoint: best.ckpt alone rebuilds and feeds the model.
    system.model_description = describe_model(
        backbone.model, provenance=backbone.provenance.to_dict(), normalization=norm, cache_meta=cache_meta,
        model_config=model_config,
    )
    return system


def fit(
    system: ClassifierSystem,
    data: CachedDataModule,
    *,
    train: TrainConfig,
    freeze_until_epoch: int,
    model_dir: Path,
    live_dir: str | Path,
    ckpt_path: Path | None,
    extra_callbacks: Sequence[pl.Callback],
) -> Fitted:
    """Train ``system`` on ``data``, checkpointing into ``model_dir`` and logging to DVCLive.

    Args:
        system: the module to train.
        data: the cache's loaders.
        train: Trainer settings.
        freeze_until_epoch: epochs during which the stem and ``layer1`` stay frozen.
        model_dir: where ``best.ckpt`` and ``last.ckpt`` go.
        live_dir: DVCLive folder.
        ckpt_path: ``last.ckpt`` of an interrupted run to continue, or None.
        extra_callbacks: more Lightning callbacks (tools that watch or stop a run).
    """
    # No version counter: a resumed run must overwrite best.ckpt and last.ckpt (the
    # declared outs), not write best-v1.ckpt beside them.
    best = ModelCheckpoint(
        dirpath=model_dir, filename="best", monitor="val_auc", mode="max", save_top_k=1, enable_version_counter=False
    )
    # last.ckpt comes from a second, unmonitored callback that writes it after every
    # epoch. Lightning's save_last writes it only at an epoch that also saved a top-k
    # checkpoint, i.e. when val AUC improved: a run killed later resumed from the last
    # improvement and trained the epochs since then twice (9 optimiser steps instead of
    # 15 in tests/training/test_resume.py on a CPU whose rounding made the best epoch an early one).
    last = ModelCheckpoint(dirpath=model_dir, filename="last", save_top_k=1, enable_version_counter=False)
    callbacks: list[pl.Callback] = [best, last, EpochLines(best), *extra_callbacks]
    if freeze_until_epoch > 0:
        callbacks.append(FreezeEarlyLayers(unfreeze_at_epoch=freeze_until_epoch))
    precision, why = resolve_precision(train.precision, train.accelerator, spatial_dims=conv_dims(system.backbone))
    print(f"train: precision {precision} ({why})")
    logger = DVCLiveLogger(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, resume=ckpt_path is not None)
    resumed_epoch = None
    if ckpt_path is not None:
        resumed_epoch = checkpoint_epoch(ckpt_path)
        print(f"train: resuming from {ckpt_path} (epoch {resumed_epoch}); set train.resume: false to start over")
    with quiet_lightning():  # Lightning prints some of it while the Trainer is built
        trainer = _trainer(train, precision=precision, callbacks=callbacks, logger=logger)
        trainer.fit(system, datamodule=data, ckpt_path=str(ckpt_path) if ckpt_path else None)
    return Fitted(trainer, best.best_model_path, checkpoint_epoch(best.best_model_path), best_score(best), resumed_epoch)


def _trainer(train: TrainConfig, *, precision: str, callbacks: list[pl.Callback], logger: DVCLiveLogger) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=train.max_epochs,
        accelerator=train.accelerator,
        devices=train.devices,
        strategy=train.strategy,
        num_nodes=train.num_nodes,
        precision=precision,
        callbacks=callbacks,
        logger=logger,
        deterministic=deterministic(train),
        enable_progress_bar=sys.stdout.isatty(),  # a log gets EpochLines' lines instead
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )


def best_score(best: ModelCheckpoint) -> float:
    """Validation AUC of the best checkpoint, NaN when none was saved.

    Under ``strategy: ddp_spawn`` the workers train and only ``best_model_path`` comes
    back to this process, not the score; the checkpoint holds its own score in the
    callback state Lightning saved with it.
    """
    if best.best_model_score is not None:
        return float(best.best_model_score)
    if not best.best_model_path:
        return float("nan")
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=False).get("callbacks", {})
    scores = [v["best_model_score"] for v in state.values() if isinstance(v, dict) and v.get("best_model_score") is not None]
    return float(scores[0]) if scores else float("nan")
