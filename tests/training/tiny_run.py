"""The tiny training run the training tests share: a 2D cache of noisy images and fast settings.

The cache is 2D (1, 32, 32): a 2D ResNet-18 has a third of the 3D one's weights, so
checkpoints are small and a full run with real checkpointing takes seconds on a CPU.
The code path is the one 3D volumes take (``spatial_dims`` comes from the cache meta).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipeline.cache import CacheWriter, write_meta
from pipeline.config import ModelConfig, TrainConfig

ROI = (32, 32)
COUNTS = {"train": 24, "val": 13, "test": 12}  # 13: DDP pads the validation shards


def write_cache(root: Path, *, counts: dict[str, int] = COUNTS, roi: tuple[int, ...] = ROI, seed: int = 0) -> Path:
    """Write a cache of noisy images; positives are brighter and carry a bright square.

    Labels alternate (0, 1, 0, ...), so every split holds both classes. The signal is
    weak enough that an untrained network does not rank perfectly, so AUCs differ
    between epochs and between subsets.
    """
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    for part, n in counts.items():
        writer = CacheWriter(cache, part, n, roi, channels=1)
        for i in range(n):
            label = i % 2
            image = rng.normal(0.45 if label else 0.4, 0.1, roi).astype(np.float32)
            if label:
                corner = [int(rng.integers(1, s - 6)) for s in roi]
                image[tuple(slice(c, c + 5) for c in corner)] += 0.3
            writer.add(np.clip(image, 0, 1)[None], {
                "patient_id": f"{part}-p{i // 2}", "series_key": f"{part}-s{i}", "label": label,
                "site": "a" if i % 3 else "b",
            })
        writer.close(("patient_id", "series_key", "label", "site"))
    write_meta(cache, {"spatial_dims": len(roi), "roi": list(roi), "pixdim": [1.0] * len(roi), "in_channels": 1,
                       "counts": counts})
    return cache


def run_paths(root: Path) -> dict[str, Path]:
    return {
        "model_dir": root / "models",
        "predictions_csv": root / "reports" / "predictions.csv",
        "summary_json": root / "reports" / "train_summary.json",
        "live_dir": root / "dvclive",
    }


MODEL = {"arch": "resnet18", "weights": "none", "weights_sha256": None, "freeze_until_epoch": 0,
         "backbone_lr_scale": 1.0, "stem_kernel_depth": 7, "stem_stride_depth": 2, "stem_stride": 2}
TRAIN = {"seed": 0, "max_epochs": 3, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "precision": "32",
         "accelerator": "cpu", "devices": 1, "strategy": "auto", "num_nodes": 1, "num_workers": 0,
         "device_cache": "auto", "augment": True, "augment_shift_voxels": 0, "resume": True,
         "channels_last": False, "compile": False}


def tiny_configs(**train: object) -> tuple[ModelConfig, TrainConfig]:
    """A ResNet-18 from random weights, 3 epochs of batch 8 on the CPU; ``train`` overrides settings."""
    return ModelConfig(**MODEL), TrainConfig(**{**TRAIN, **train})


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def logged_val_auc(live_dir: Path) -> list[float]:
    """Validation AUC per epoch as DVCLive recorded it (it files ``val_auc`` as ``val/auc``)."""
    with (live_dir / "plots" / "metrics" / "val" / "auc.tsv").open(newline="") as handle:
        return [float(r["auc"]) for r in csv.DictReader(handle, delimiter="\t")]
