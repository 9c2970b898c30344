"""A tiny real-file cohort taken through ingest, split, preprocess and train, 2D and 3D.

Shared by the predict, model-file and export tests: one cohort of demo DICOM and NIfTI
files (localizers included), one ingest, then one cache and one short training run per
spatial_dims. A run takes seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import ModelConfig, TrainConfig
from tests.params import config
from pipeline.demo.cohort import make_cohort
from pipeline.io.ingest import ingest_cohort
from pipeline.preprocessing import build_cache
from pipeline.splits import assign_splits
from pipeline.tables import read_rows, write_rows
from pipeline.training import train_and_predict
from tests.io.shipped import ingest_settings

KEY = "tests-predict-key-0123"
COHORT = {"n_patients": 12, "nifti_fraction": 0.25, "matrix": 48, "n_slices": 12, "pixel_spacing_mm": 6.0,
          "slice_thickness_mm": 10.0}
SETTINGS = {
    3: {"roi": (24, 24, 12), "pixdim": (12.0, 12.0, 10.0), "channels": "auto", "resize": "spacing"},
    2: {"roi": (24, 24), "pixdim": (12.0, 12.0), "channels": "auto", "resize": "spacing"},
}


@dataclass(frozen=True)
class Run:
    root: Path
    raw_dir: Path
    manifest: Path
    index_csv: Path
    model: Path
    predictions: Path


def make_cohort_and_index(root: Path) -> tuple[Path, Path, Path, Path]:
    """Write the cohort, ingest it with :data:`KEY` and split it; returns raw, manifest, index, split."""
    summary = make_cohort(root / "raw", root / "manifest.csv", seed=3, **COHORT)
    ingest_cohort(summary.raw_dir, summary.manifest_path, root / "ingested", pseudonym_key=KEY, **ingest_settings())
    index_csv = root / "ingested" / "index.csv"
    splits = assign_splits(read_rows(index_csv), seed=0, val_fraction=0.3, test_fraction=0.3)
    split_csv = root / "split.csv"
    write_rows(split_csv, ({"patient_id": s.patient_id, "split": s.split, "label": s.label} for s in splits),
               ("patient_id", "split", "label"))
    return summary.raw_dir, summary.manifest_path, index_csv, split_csv


def train_run(root: Path, spatial_dims: int, cohort: tuple[Path, Path, Path, Path]) -> Run:
    _, _, index_csv, split_csv = cohort
    run = root / f"run{spatial_dims}d"
    build_cache(index_csv, split_csv, run / "cache", spatial_dims=spatial_dims, hu_window=(-1000.0, 400.0),
                intensity="auto", intensity_range=None, crop_foreground="auto", **SETTINGS[spatial_dims])
    train = config(TrainConfig, seed=0, max_epochs=1, batch_size=4, lr=1e-3, accelerator="cpu", devices=1, precision="32",
                   augment=True, augment_shift_voxels=0)  # as before params.yaml was the one source of defaults
    train_and_predict(run / "cache", run / "models", run / "reports" / "predictions.csv",
                      run / "reports" / "train_summary.json", run / "dvclive",
                      model=config(ModelConfig, arch="resnet18", weights="none", weights_sha256=None),
                      train=train)
    return _run(root, spatial_dims)


def trained_runs(tmp_path_factory) -> dict[int, Run]:  # noqa: ANN001 - pytest's TempPathFactory
    """The 2D and 3D runs, built once per test session and shared by every module that asks."""
    root = tmp_path_factory.getbasetemp() / "trained-runs"
    if not (root / "done").is_file():
        root.mkdir(exist_ok=True)
        cohort = make_cohort_and_index(root)
        for spatial_dims in (2, 3):
            train_run(root, spatial_dims, cohort)
        (root / "done").write_text("ok\n")
    return {d: _run(root, d) for d in (2, 3)}


def _run(root: Path, spatial_dims: int) -> Run:
    run = root / f"run{spatial_dims}d"
    return Run(run, root / "raw", root / "manifest.csv", root / "ingested" / "index.csv", run / "models" / "best.ckpt",
               run / "reports" / "predictions.csv")
