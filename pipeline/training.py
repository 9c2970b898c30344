"""Fit the classifier on the cache, keep the best epoch by validation AUC, and predict.

Outputs (paths chosen by the stage, wired in dvc.yaml):

- ``MODEL_DIR/best.ckpt`` and ``MODEL_DIR/last.ckpt`` (Lightning checkpoints),
  ``MODEL_DIR/fingerprint.json`` (what the checkpoints were trained on, for resume);
- ``predictions.csv``: ``patient_id``, ``series_key``, ``split``, ``label``, ``score``
  and the subgroup columns, for val and test;
- ``train_summary.json``: weight provenance, best epoch, best validation AUC, the
  configuration, and whether the run resumed;
- DVCLive metrics and plots under the DVCLive folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from dvclive.lightning import DVCLiveLogger
from pytorch_lightning.callbacks import ModelCheckpoint

from pipeline.cache import ROW_COLUMNS, cache_channels, read_meta
from pipeline.config import ModelConfig, TrainConfig
from pipeline.data import CachedDataModule
from pipeline.finetuning import FreezeEarlyLayers
from pipeline.folders import empty_folder
from pipeline.modelfile import describe_model
from pipeline.models import build_backbone
from pipeline.outputs import write_atomic
from pipeline.precision import resolve_precision
from pipeline.progress import EpochLines, quiet_lightning
from pipeline.system import ClassifierSystem
from pipeline.tables import write_rows
from pipeline.transforms import BatchAugment

PREDICTION_COLUMNS = ("patient_id", "series_key", "split", "label", "score")
SPEED_ONLY_SETTINGS = frozenset({"resume", "num_workers", "device_cache", "channels_last", "compile"})


@dataclass(frozen=True)
class TrainSummary:
    best_epoch: int
    best_val_auc: float
    resumed_from_epoch: int | None
    seconds: float
    provenance: dict[str, Any]

    def line(self) -> str:
        source = self.provenance.get("source")
        resumed = f", resumed from epoch {self.resumed_from_epoch}" if self.resumed_from_epoch is not None else ""
        return (
            f"train: best epoch {self.best_epoch} with val AUC {self.best_val_auc:.3f}; weights {source}"
            f"{resumed}; {self.seconds:.0f} s"
        )


def run_fingerprint(meta: dict[str, Any], config: dict[str, Any]) -> str:
    """Hash of the config and the cache's meta: a resume is only valid on the same run."""
    payload = json.dumps({"config": config, "cache": meta}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def resumable_checkpoint(model_dir: Path, fingerprint: str) -> Path | None:
    """``last.ckpt`` from an interrupted run of the same config and data, else None.

    A finished run marks its fingerprint file ``complete``; a run with another
    fingerprint (changed lr, new data) must start over, so its files are removed.
    """
    stamp = model_dir / "fingerprint.json"
    last = model_dir / "last.ckpt"
    if stamp.is_file() and last.is_file():
        recorded = json.loads(stamp.read_text())
        if recorded.get("fingerprint") == fingerprint and not recorded.get("complete"):
            return last
        if not recorded.get("complete"):
            print(f"train: {str(last)!r} is from an interrupted run of another config or cache; starting over")
    empty_folder(model_dir, name="model_dir", example="models")
    return None


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
    spatial_dims = int(meta["spatial_dims"])
    in_channels = cache_channels(meta)  # 3 for RGB: an ImageNet stem keeps its colour filters
    pl.seed_everything(train.seed, workers=True)

    config = {"model": dataclasses.asdict(model), "train": dataclasses.asdict(train)}
    # Settings that do not change the result (resume, loader workers, where the cache
    # is held, memory layout, compilation) stay out of the fingerprint.
    fingerprint = run_fingerprint(
        meta,
        {**config, "train": {k: v for k, v in config["train"].items() if k not in SPEED_ONLY_SETTINGS}},
    )
    ckpt_path = resumable_checkpoint(model_dir, fingerprint) if train.resume else None
    if not train.resume:
        empty_folder(model_dir, name="model_dir", example="models")
    model_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(model_dir / "fingerprint.json", json.dumps({"fingerprint": fingerprint, "complete": False}) + "\n")

    backbone = build_backbone(
        model.arch,
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        num_classes=1,
        weights=model.weights,
        weights_sha256=model.weights_sha256,
        stem_kernel_depth=model.stem_kernel_depth,
        stem_stride_depth=model.stem_stride_depth,
    )
    if train.compile:
        backbone.model.compile()  # in place: state_dict keys stay those of the plain model
    provenance = backbone.provenance.to_dict()
    norm = backbone.normalization
    system = ClassifierSystem(
        backbone.model,
        lr=train.lr,
        weight_decay=train.weight_decay,
        max_epochs=train.max_epochs,
        backbone_lr_scale=model.backbone_lr_scale,
        normalize=None if norm is None else norm.apply,
        augment=BatchAugment(spatial_dims, seed=train.seed, max_shift=train.augment_shift_voxels) if train.augment else None,
        channels_last=train.channels_last,
    )
    # Sealed into every checkpoint: best.ckpt alone rebuilds and feeds the model.
    system.model_description = describe_model(
        backbone.model, provenance=provenance, normalization=norm, cache_meta=meta, model_config=config["model"]
    )
    data = CachedDataModule(
        cache_dir, batch_size=train.batch_size, num_workers=train.num_workers, seed=train.seed,
        device_cache=train.device_cache,
    )

    # No version counter: a resumed run must overwrite best.ckpt and last.ckpt (the
    # declared outs), not write best-v1.ckpt beside them.
    best = ModelCheckpoint(
        dirpath=model_dir, filename="best", monitor="val_auc", mode="max", save_top_k=1, enable_version_counter=False
    )
    # last.ckpt comes from a second, unmonitored callback that writes it after every
    # epoch. Lightning's save_last writes it only at an epoch that also saved a top-k
    # checkpoint, i.e. when val AUC improved: a run killed later resumed from the last
    # improvement and trained the epochs since then twice (9 optimiser steps instead of
    # 15 in tests/test_resume.py on a CPU whose rounding made the best epoch an early one).
    last = ModelCheckpoint(dirpath=model_dir, filename="last", save_top_k=1, enable_version_counter=False)
    callbacks: list[pl.Callback] = [best, last, EpochLines(best), *extra_callbacks]
    if model.freeze_until_epoch > 0:
        callbacks.append(FreezeEarlyLayers(unfreeze_at_epoch=model.freeze_until_epoch))
    precision, why = resolve_precision(train.precision, train.accelerator)
    print(f"train: precision {precision} ({why})")
    logger = DVCLiveLogger(dir=str(live_dir), save_dvc_exp=False, dvcyaml=False, resume=ckpt_path is not None)
    resumed_epoch = None
    if ckpt_path is not None:
        resumed_epoch = _epoch_of(ckpt_path)
        print(f"train: resuming from {ckpt_path} (epoch {resumed_epoch}); set train.resume: false to start over")
    with quiet_lightning():  # Lightning prints some of it while the Trainer is built
        trainer = _trainer(train, precision=precision, callbacks=callbacks, logger=logger)
        trainer.fit(system, datamodule=data, ckpt_path=str(ckpt_path) if ckpt_path else None)

    summary = TrainSummary(
        best_epoch=_epoch_of(best.best_model_path),
        best_val_auc=_best_score(best),
        resumed_from_epoch=resumed_epoch,
        seconds=time.perf_counter() - start,
        provenance=provenance,
    )
    if not trainer.is_global_zero:
        return summary
    best_system = ClassifierSystem.load_from_checkpoint(
        best.best_model_path, backbone=backbone.model, normalize=system.normalize, map_location="cpu", weights_only=True
    )
    # Lightning's teardown leaves the model on the CPU; predict where training ran.
    best_system.to(trainer.strategy.root_device)
    data.setup("predict")  # under ddp_spawn only the workers opened the cache
    rows = predict_rows(best_system, data, ("val", "test"))
    write_rows(predictions_csv, rows, (*PREDICTION_COLUMNS, *_subgroups(data)))
    write_atomic(
        summary_json,
        json.dumps(
            {
                "weights": provenance,
                "model": {"arch": model.arch, "spatial_dims": spatial_dims, "in_channels": in_channels, "num_classes": 1},
                "best_epoch": summary.best_epoch,
                "best_val_auc": summary.best_val_auc,
                "resumed_from_epoch": resumed_epoch,
                "seconds": round(summary.seconds, 1),
                "config": config,
                "cache": {"roi": meta["roi"], "pixdim": meta["pixdim"], "counts": meta["counts"]},
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    write_atomic(model_dir / "fingerprint.json", json.dumps({"fingerprint": fingerprint, "complete": True}) + "\n")
    return summary


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
        deterministic=not torch.cuda.is_available() or train.accelerator == "cpu",
        enable_progress_bar=sys.stdout.isatty(),  # a log gets EpochLines' lines instead
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )


@torch.no_grad()
def predict_rows(system: ClassifierSystem, data: CachedDataModule, parts: tuple[str, ...]) -> list[dict[str, Any]]:
    """Scores for every cached sample of ``parts``, one row each, in cache order."""
    system.eval()
    device = next(system.parameters()).device
    rows: list[dict[str, Any]] = []
    for part in parts:
        split = data.splits[part]
        for x, _, idx in data.predict_loader(part):
            scores = system(x.to(device).float()).cpu().numpy()
            for i, score in zip(idx.tolist(), scores.tolist()):
                # All 17 significant digits: rounding would tie scores near 0 or 1.
                rows.append({**split.rows[i], "split": part, "score": format(score, ".17g")})
    return rows


def _subgroups(data: CachedDataModule) -> list[str]:
    rows = data.splits["val"].rows
    return [c for c in (rows[0].keys() if rows else []) if c not in ROW_COLUMNS]


def _best_score(best: ModelCheckpoint) -> float:
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


def _epoch_of(path: str | Path) -> int:
    """Epoch stored in a Lightning checkpoint (our own file, written by this stage)."""
    if not path:
        return -1
    # Memory-mapped: only the small 'epoch' entry is read, not the weights and optimiser state.
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
