"""``train_and_predict``: the train stage's work, as run folder -> fit -> predict -> write."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl

from pipeline.cache import cache_channels, read_meta
from pipeline.config import ModelConfig, TrainConfig
from pipeline.data import CachedDataModule
from pipeline.modelfile import sealed_digest
from pipeline.models import build_backbone
from pipeline.schema.tables import SCORED_PARTS
from pipeline.training.fit import build_system, deterministic, fit
from pipeline.training.predictions import predict_best, subgroup_columns
from pipeline.training.run_folder import mark_complete, open_run_folder, result_fingerprint
from pipeline.training.writers import TrainSummary, write_predictions, write_train_summary

NUM_CLASSES = 1  # one logit: a binary label


def train_and_predict(
    cache_dir: str | Path,
    model_dir: str | Path,
    predictions_csv: str | Path,
    summary_json: str | Path,
    live_dir: str | Path,
    *,
    model: ModelConfig,
    train: TrainConfig,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> TrainSummary:
    """Train, select the best epoch by validation AUC, predict val and test.

    Args:
        cache_dir: folder written by ``preprocess``.
        model_dir: checkpoints; kept between runs (``persist`` in dvc.yaml) for resume.
        predictions_csv: where to write val and test scores.
        summary_json: where to write provenance and the best epoch.
        live_dir: DVCLive folder.
        model: backbone and weights.
        train: optimisation and Trainer settings.
        extra_callbacks: Lightning callbacks added to the run's own, for tools that watch
            or stop a run (the resume test kills its process from one).
    """
    start = time.perf_counter()
    cache_dir, model_dir = Path(cache_dir), Path(model_dir)
    meta = read_meta(cache_dir)
    pl.seed_everything(train.seed, workers=True)
    config = {"model": dataclasses.asdict(model), "train": dataclasses.asdict(train)}
    fingerprint = result_fingerprint(meta, config)
    ckpt_path = open_run_folder(model_dir, fingerprint, resume=train.resume)

    network = _network(model, meta)
    backbone = build_backbone(
        **network, weights=model.weights, weights_sha256=model.weights_sha256,
        stem_kernel_depth=model.stem_kernel_depth, stem_stride_depth=model.stem_stride_depth,
        stem_stride=model.stem_stride,
    )
    system = build_system(backbone, model=model, train=train, cache_meta=meta, model_config=config["model"])
    data = CachedDataModule(cache_dir, batch_size=train.batch_size, num_workers=train.num_workers, seed=train.seed,
                            device_cache=train.device_cache)
    fitted = fit(system, data, train=train, freeze_until_epoch=model.freeze_until_epoch, model_dir=model_dir,
                 live_dir=live_dir, ckpt_path=ckpt_path, extra_callbacks=extra_callbacks)
    summary = TrainSummary(
        best_epoch=fitted.best_epoch,
        best_val_auc=fitted.best_val_auc,
        resumed_from_epoch=fitted.resumed_from_epoch,
        seconds=time.perf_counter() - start,
        provenance=backbone.provenance.to_dict(),
    )
    if not fitted.trainer.is_global_zero:
        return summary

    rows = predict_best(fitted, data, backbone=backbone.model, normalize=system.normalize, parts=SCORED_PARTS,
                        deterministic=deterministic(train))
    write_predictions(predictions_csv, rows, subgroup_columns(data))
    # best.ckpt's: predictions.csv holds its scores.
    write_train_summary(summary_json, summary, network=network, model_digest=sealed_digest(fitted.best_path),
                        config=config, cache_meta=meta)
    mark_complete(model_dir, fingerprint)
    return summary


def _network(model: ModelConfig, meta: dict) -> dict[str, object]:
    """The network's shape: from the model settings and what the cache holds (3 channels for RGB)."""
    return {"arch": model.arch, "spatial_dims": int(meta["spatial_dims"]), "in_channels": cache_channels(meta),
            "num_classes": NUM_CLASSES}
