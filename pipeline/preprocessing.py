"""Build the tensor cache: index + split -> MONAI deterministic transforms -> memory maps.

Every indexed series ends up in exactly one place: a cached split, or ``excluded.csv``
with the reason (unreadable volume, 2D image for a 3D model, patient with no part).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.cache import ROW_COLUMNS, CacheWriter, write_meta
from pipeline.splits import PARTS
from pipeline.tables import read_rows, write_rows
from pipeline.transforms import deterministic_transforms

# Index columns that describe the file rather than the patient or the scanner (geometry,
# ingest bookkeeping); everything else in the index (site, modality, manufacturer, kVp,
# the manifest's own columns, ...) is carried to predictions as a subgroup attribute.
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

    Returns:
        Counts per split and of excluded series.
    """
    start = time.perf_counter()
    index_csv, cache_dir = Path(index_csv), Path(cache_dir)
    rows = read_rows(index_csv, required=("series_key", "patient_id", "label", "image_path", "modality", "shape"))
    parts = {r["patient_id"]: r["split"] for r in read_rows(split_csv, required=("patient_id", "split"))}
    columns = list(rows[0].keys()) if rows else []
    extra = subgroup_columns(columns)

    excluded: list[dict[str, str]] = []
    planned: dict[str, list[dict[str, str]]] = {p: [] for p in PARTS}
    for row in rows:
        part = parts.get(row["patient_id"])
        n_dims = len(row["shape"].split("x"))
        if part is None:
            excluded.append({"series_key": row["series_key"], "kind": "no part in split.csv",
                             "reason": "patient has no part in split.csv"})
        elif spatial_dims == 3 and n_dims < 3:
            excluded.append(
                {"series_key": row["series_key"], "kind": "2D image for a 3D model",
                 "reason": f"2D image (shape {row['shape']}) cannot feed a 3D model; set preprocess.spatial_dims: 2"}
            )
        else:
            planned[part].append(row)

    pipelines = {}
    cached: dict[str, int] = {}
    positives: dict[str, int] = {}
    for part, part_rows in planned.items():
        writer = CacheWriter(cache_dir, part, len(part_rows), roi)
        for row in part_rows:
            modality = row["modality"] or "OT"
            if modality not in pipelines:
                pipelines[modality] = deterministic_transforms(
                    spatial_dims=spatial_dims, pixdim=pixdim, roi=roi, hu_window=hu_window, modality=modality
                )
            try:
                out = pipelines[modality]({"image": str(index_csv.parent / row["image_path"])})["image"]
            except Exception as error:  # noqa: BLE001 - any failure is recorded, never fatal
                excluded.append({"series_key": row["series_key"], "kind": "transform failed",
                                 "reason": f"transform failed: {error!s:.300}"})
                continue
            image = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=np.float32)
            writer.add(image, {c: row.get(c, "") for c in (*ROW_COLUMNS, *extra)})
        positives[part] = sum(int(r["label"]) for r in writer.rows)
        cached[part] = writer.close((*ROW_COLUMNS, *extra))

    write_rows(cache_dir / "excluded.csv", excluded, ("series_key", "kind", "reason"))
    write_meta(
        cache_dir,
        {
            "spatial_dims": spatial_dims,
            "roi": list(roi),
            "pixdim": list(pixdim),
            "hu_window": list(hu_window),
            "dtype": "float16",
            "counts": cached,
            "positives": positives,
            "excluded": len(excluded),
            "excluded_reasons": dict(Counter(e["kind"] for e in excluded)),
            "subgroup_columns": extra,
            "transforms": [type(t).__name__ for t in next(iter(pipelines.values())).transforms] if pipelines else [],
        },
    )
    return CacheSummary(cached=cached, excluded=len(excluded), seconds=time.perf_counter() - start)
