"""Build the tensor cache: index + split -> MONAI deterministic transforms -> memory maps.

Every indexed series ends up in exactly one place: a cached split, or ``excluded.csv``
with the reason (unreadable volume, 2D image for a 3D model, patient with no part).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import nibabel as nib
import numpy as np

from pipeline.cache import CacheWriter, write_meta
from pipeline.io.progress import Progress
from pipeline.schema.tables import CACHE_ROW_COLUMNS, INDEX_IMAGE, INDEX_KEYS, INGEST_SETTINGS_FILE, PARTS, SPLIT_REQUIRED
from pipeline.tables import read_rows, write_rows
from pipeline.transforms import deterministic_transforms, resolve_intensity

# Index columns that describe the file rather than the patient or the scanner (geometry,
# ingest bookkeeping); everything else in the index (site, modality, manufacturer, kVp,
# the manifest's own columns, ...) is carried to predictions as a subgroup attribute.
#: Training images read to estimate a dataset-wide intensity range (``fixed_range`` with
#: no ``intensity_range`` given): enough for stable 0.5/99.5 percentiles, cheap to read.
RANGE_SAMPLE = 200
RANGE_PERCENTILES = (0.5, 99.5)

INDEX_CORE = (
    "series_key", "patient_id", "label", "split", "image_path", "spacing", "shape", "n_source_files", "ingest_note",
)


@dataclass(frozen=True)
class CacheSummary:
    cached: dict[str, int]
    excluded: int
    seconds: float

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.cached.items())
        return (
            f"preprocess: {sum(self.cached.values()) + self.excluded} series -> cached {parts}; "
            f"excluded {self.excluded} (see excluded.csv); {self.seconds:.1f} s"
        )


def subgroup_columns(columns: Sequence[str]) -> list[str]:
    """Index columns carried through as subgroup attributes, in index order."""
    return [c for c in columns if c not in INDEX_CORE]


def build_cache(
    index_csv: str | Path,
    split_csv: str | Path,
    cache_dir: str | Path,
    *,
    spatial_dims: int,
    roi: Sequence[int],
    pixdim: Sequence[float],
    hu_window: tuple[float, float],
    intensity: str,
    intensity_range: tuple[float, float] | None,
    crop_foreground: bool | str,
) -> CacheSummary:
    """Transform every indexed series once and store it in its split's memory map.

    Args:
        index_csv: ``index.csv`` from ingest; ``image_path`` is relative to its folder.
        split_csv: ``split.csv`` from split (patient_id -> part).
        cache_dir: output folder (see :mod:`pipeline.cache` for the layout).
        spatial_dims: 2 or 3.
        roi: output size in voxels.
        pixdim: output spacing in mm.
        hu_window: CT window mapped to [0, 1].
        intensity: ``preprocess.intensity`` (see :func:`pipeline.transforms.resolve_intensity`).
        intensity_range: stored values mapped to [0, 1] by ``fixed_range``; None
            estimates it per modality from the training split (recorded in meta.json).
        crop_foreground: ``preprocess.crop_foreground``: true, false or auto.

    Returns:
        Counts per split and of excluded series.
    """
    start = time.perf_counter()
    index_csv, cache_dir = Path(index_csv), Path(cache_dir)
    rows = read_rows(index_csv, required=(*INDEX_KEYS, *INDEX_IMAGE))
    parts = {r["patient_id"]: r["split"] for r in read_rows(split_csv, required=SPLIT_REQUIRED)}
    extra = subgroup_columns(list(rows[0].keys()) if rows else [])
    planned, excluded = _plan(rows, parts, spatial_dims)
    ranges = dataset_ranges(index_csv.parent, planned["train"], intensity, intensity_range)

    def transforms(modality: str) -> Any:
        return deterministic_transforms(
            spatial_dims=spatial_dims, pixdim=pixdim, roi=roi, hu_window=hu_window, modality=modality,
            intensity=intensity, value_range=ranges.get(modality), crop_foreground=crop_foreground,
        )

    pipelines: dict[str, Any] = {}
    cached, positives = _write_parts(planned, cache_dir, roi, index_csv.parent, pipelines, transforms, extra, excluded)
    write_rows(cache_dir / "excluded.csv", excluded, ("series_key", "kind", "reason"))
    settings = {"spatial_dims": spatial_dims, "roi": list(roi), "pixdim": list(pixdim), "hu_window": list(hu_window),
                "intensity": intensity, "crop_foreground": crop_foreground}
    write_meta(cache_dir, _meta(settings, pipelines, ranges, cached, positives, excluded, extra, index_csv.parent))
    return CacheSummary(cached=cached, excluded=len(excluded), seconds=time.perf_counter() - start)


def _plan(
    rows: Sequence[dict[str, str]], parts: Mapping[str, str], spatial_dims: int
) -> tuple[dict[str, list[dict[str, str]]], list[dict[str, str]]]:
    """Index rows by the part of their patient, and the rows excluded before any reading."""
    excluded: list[dict[str, str]] = []
    planned: dict[str, list[dict[str, str]]] = {p: [] for p in PARTS}
    for row in rows:
        part = parts.get(row["patient_id"])
        if part is None:
            excluded.append({"series_key": row["series_key"], "kind": "no part in split.csv",
                             "reason": "patient has no part in split.csv"})
        elif spatial_dims == 3 and len(row["shape"].split("x")) < 3:
            excluded.append(
                {"series_key": row["series_key"], "kind": "2D image for a 3D model",
                 "reason": f"2D image (shape {row['shape']}) cannot feed a 3D model; set preprocess.spatial_dims: 2"}
            )
        else:
            planned[part].append(row)
    return planned, excluded


def _write_parts(
    planned: Mapping[str, Sequence[dict[str, str]]], cache_dir: Path, roi: Sequence[int], root: Path,
    pipelines: dict[str, Any], transforms: Callable[[str], Any], extra: Sequence[str], excluded: list[dict[str, str]],
) -> tuple[dict[str, int], dict[str, int]]:
    """Cache every planned row part by part (failures go to ``excluded``); counts cached and positive."""
    cached: dict[str, int] = {}
    positives: dict[str, int] = {}
    progress = Progress(stage="preprocess", unit="series")
    for part, part_rows in planned.items():
        writer = CacheWriter(cache_dir, part, len(part_rows), roi)
        for done, row in enumerate(part_rows):
            progress(part, done, len(part_rows))
            reason = _cache_row(writer, row, root, pipelines, transforms, extra)
            if reason is not None:
                excluded.append({"series_key": row["series_key"], "kind": "transform failed", "reason": reason})
        progress(part, len(part_rows), len(part_rows))
        positives[part] = sum(int(r["label"]) for r in writer.rows)
        cached[part] = writer.close((*CACHE_ROW_COLUMNS, *extra))
    return cached, positives


def _cache_row(
    writer: CacheWriter, row: dict[str, str], root: Path, pipelines: dict[str, Any],
    transforms: Callable[[str], Any], extra: Sequence[str],
) -> str | None:
    """Transform one series into ``writer`` (one Compose per modality, built on first use);
    the reason when it cannot be, since one bad volume never stops the stage."""
    modality = row["modality"] or "OT"
    try:
        if modality not in pipelines:
            pipelines[modality] = transforms(modality)
        out = pipelines[modality]({"image": str(root / row["image_path"])})["image"]
    except Exception as error:  # noqa: BLE001 - any failure is recorded, never fatal
        return f"transform failed: {error!s:.300}"
    image = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float32)
    writer.add(image, {c: row.get(c, "") for c in (*CACHE_ROW_COLUMNS, *extra)})
    return None


def _meta(
    settings: Mapping[str, Any], pipelines: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]],
    cached: Mapping[str, int], positives: Mapping[str, int], excluded: Sequence[Mapping[str, str]],
    extra: Sequence[str], ingested: Path,
) -> dict[str, Any]:
    """``meta.json``: the settings that made the cache (the model file keeps them) and its counts."""
    return {
        "spatial_dims": settings["spatial_dims"],
        "roi": settings["roi"],
        "pixdim": settings["pixdim"],
        "hu_window": settings["hu_window"],
        # The mode each modality got, and the setting that chose it (for a modality
        # the training data did not have: predict resolves it the same way).
        "intensity": {m: resolve_intensity(settings["intensity"], m) for m in pipelines},
        "intensity_setting": settings["intensity"],
        "intensity_range": {m: list(r) for m, r in ranges.items()},
        "crop_foreground": settings["crop_foreground"],
        "dtype": "float16",
        "counts": dict(cached),
        "positives": dict(positives),
        "excluded": len(excluded),
        "excluded_reasons": dict(Counter(e["kind"] for e in excluded)),
        "subgroup_columns": list(extra),
        "transforms": {m: [type(t).__name__ for t in c.transforms] for m, c in pipelines.items()},
        **_ingest_settings(ingested),
    }


def _ingest_settings(ingested: Path) -> dict[str, Any]:
    """``{"ingest": settings}`` from ingest's settings file, recorded with the cache; an
    index made by hand (or by an older ingest) has none, and the meta then has no key."""
    path = ingested / INGEST_SETTINGS_FILE
    return {"ingest": json.loads(path.read_text())} if path.is_file() else {}


def dataset_ranges(
    root: Path, train_rows: Sequence[dict[str, str]], intensity: str, given: tuple[float, float] | None
) -> dict[str, tuple[float, float]]:
    """The ``fixed_range`` (low, high) per modality that maps to ``fixed_range``.

    One range for the whole dataset keeps absolute brightness comparable between images
    (a per-image rescale would make an opaque lung as bright as a clear one). Without a
    ``given`` range it is the pooled 0.5/99.5 percentiles of up to :data:`RANGE_SAMPLE`
    training images: statistics of the training split only, so val and test stay unseen.
    """
    by_modality: dict[str, list[dict[str, str]]] = {}
    for row in train_rows:
        modality = row["modality"] or "OT"
        if resolve_intensity(intensity, modality) == "fixed_range":
            by_modality.setdefault(modality, []).append(row)
    ranges = {}
    for modality, rows in by_modality.items():
        if given is not None:
            ranges[modality] = (float(given[0]), float(given[1]))
            continue
        step = max(1, len(rows) // RANGE_SAMPLE)
        values = [_voxels(root / r["image_path"]) for r in rows[::step]]
        values = [v for v in values if v is not None and v.size]
        if not values:
            continue  # every sampled file unreadable: each is excluded with its reason below
        low, high = (float(v) for v in np.percentile(np.concatenate(values), RANGE_PERCENTILES))
        ranges[modality] = (low, high if high > low else low + 1.0)
    return ranges


def _voxels(path: Path) -> np.ndarray | None:
    """All voxel values of one file, or None when it cannot be read (it is excluded later)."""
    try:
        return np.asarray(nib.load(path).dataobj, dtype=np.float32).ravel()
    except Exception:  # noqa: BLE001 - the transform step records the reason for this file
        return None
