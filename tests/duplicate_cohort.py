"""A tiny ingested index with planted exact and near copies across patients (shared by tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.nifti_write import write_canonical
from pipeline.tables import write_rows

COLUMNS = ("series_key", "patient_id", "label", "split", "image_path")


def smooth_image(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A distinct 2D picture: random blobs, smooth like anatomy, 0-255."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size))
    for _ in range(6):
        cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
        image += rng.uniform(-1, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / r**2)
    image = (image - image.min()) / (np.ptp(image) + 1e-9)
    return (image * 200 + 20).astype(np.uint8)


def near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise, brighter, coarser grey levels: a re-export of the same picture."""
    noisy = image.astype(float) * 0.9 + 15 + rng.normal(0, 3, image.shape)
    return (np.clip(noisy, 0, 255) // 8 * 8).astype(np.uint8)


def write_cohort(folder: Path, n_patients: int = 24, seed: int = 0) -> tuple[Path, dict[str, set[str]]]:
    """Index of ``n_patients`` distinct 2D images (p00...), plus planted copies.

    Planted: ``p01`` holds an exact copy of ``p00``'s image and ``p03`` a near copy of
    ``p02``'s; ``p05`` an exact copy of ``p04``'s 3D volume; ``p06`` a near copy of
    ``p07``'s and ``p08`` an exact copy of ``p07``'s (one group of three).

    Returns:
        ``(index_csv, expected)``: expected groups as sets of patients, keyed by name.
    """
    rng = np.random.default_rng(seed)
    images = {f"p{i:02d}": smooth_image(rng) for i in range(n_patients)}
    images["p01"] = images["p00"].copy()
    images["p03"] = near_copy(images["p02"], rng)
    images["p06"] = near_copy(images["p07"], rng)
    images["p08"] = images["p07"].copy()
    volume = rng.integers(-1000, 400, size=(12, 10, 6)).astype(np.int16)
    rows = []
    for i, (pid, image) in enumerate(sorted(images.items())):
        array = volume if pid in ("p04", "p05") else image
        write_canonical(array, np.diag([0.5, 0.5, 1.0, 1.0]), folder / "volumes" / f"s{pid}.nii.gz")
        rows.append({"series_key": f"s{pid}", "patient_id": pid, "label": i % 2, "split": "",
                     "image_path": f"volumes/s{pid}.nii.gz"})
    write_rows(folder / "index.csv", rows, COLUMNS)
    expected = {"exact": {"p00", "p01"}, "near": {"p02", "p03"}, "volume": {"p04", "p05"}, "three": {"p06", "p07", "p08"}}
    return folder / "index.csv", expected
