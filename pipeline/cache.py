"""The tensor cache written by ``preprocess`` and streamed by training.

Layout of ``CACHE_DIR``:

- ``<split>.npy``: one array per split, shape (N, C, *roi), float16 (C is meta.json's
  ``in_channels``: 1 for grey, 3 for RGB), written with
  ``numpy.lib.format.open_memmap`` and read back memory-mapped. Training touches pages
  as it needs them, so resident memory does not grow with the cohort.
- ``<split>.csv``: row ``i`` describes sample ``i``: ``patient_id``, ``series_key``,
  ``label``, then the subgroup columns carried from the index.
- ``meta.json``: roi, spacing, window, channels (``in_channels``, the setting and why),
  counts, and the transform list, so a cache can be checked against the config that is
  about to use it.
- ``excluded.csv``: every indexed series that could not be cached, with its kind and reason.

float16 is exact enough for intensities in [0, 1] (step <= 2**-11) and halves the disk
and page-cache footprint, which is what bounds streaming speed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.schema.tables import CACHE_ROW_COLUMNS
from pipeline.tables import read_rows, write_rows

CACHE_DTYPE = np.float16
_COPY_CHUNK = 16  # samples per copy when a split is truncated after exclusions


class CacheError(PipelineInputError):
    """The cache is missing, incomplete, or does not match the config using it."""


@dataclass(frozen=True)
class CachedSplit:
    """One split of the cache, memory-mapped.

    Attributes:
        images: (N, C, *roi) float16 memory map.
        rows: N dicts, row ``i`` describing ``images[i]``.
    """

    images: np.ndarray
    rows: list[dict[str, str]]

    @property
    def labels(self) -> np.ndarray:
        return np.array([int(r["label"]) for r in self.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)


class CacheWriter:
    """Streams samples of one split into a preallocated memory-mapped array."""

    def __init__(self, cache_dir: Path, split: str, n: int, roi: Sequence[int], *, channels: int) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.cache_dir = cache_dir
        self.images = np.lib.format.open_memmap(
            cache_dir / f"{split}.npy", mode="w+", dtype=CACHE_DTYPE, shape=(n, channels, *roi)
        )
        self.rows: list[dict[str, Any]] = []

    def add(self, image: np.ndarray, row: Mapping[str, Any]) -> None:
        """Store ``image`` (C, *roi) at the next position, with its describing row."""
        i = len(self.rows)
        if image.shape != self.images.shape[1:]:
            raise CacheError(
                f"image for series {row.get('series_key')!r} must have shape {self.images.shape[1:]}; "
                f"got {tuple(image.shape)}. The transform's crop/pad step did not reach preprocess.roi."
            )
        self.images[i] = image.astype(CACHE_DTYPE)
        self.rows.append(dict(row))

    def close(self, columns: Sequence[str]) -> int:
        """Flush the array, truncating it if some samples were excluded; write the rows."""
        n = len(self.rows)
        self.images.flush()
        if n != self.images.shape[0]:
            # Copy the kept samples into a right-sized array a chunk at a time, so memory
            # stays at one chunk whatever the cohort, then swap the file in.
            final = self.cache_dir / f"{self.split}.npy"
            partial = self.cache_dir / f"{self.split}.kept.npy"
            kept = np.lib.format.open_memmap(partial, mode="w+", dtype=CACHE_DTYPE, shape=(n, *self.images.shape[1:]))
            for start in range(0, n, _COPY_CHUNK):
                stop = min(start + _COPY_CHUNK, n)
                kept[start:stop] = self.images[start:stop]
            kept.flush()
            del kept, self.images
            os.replace(partial, final)
        else:
            del self.images
        write_rows(self.cache_dir / f"{self.split}.csv", self.rows, columns)
        return n


def write_meta(cache_dir: Path, meta: Mapping[str, Any]) -> None:
    (cache_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def cache_channels(meta: Mapping[str, Any]) -> int:
    """Channels of the cached images (the model's ``in_channels``), from ``meta.json``.

    Raises:
        CacheError: a cache written before channels were recorded.
    """
    if "in_channels" not in meta:
        raise CacheError(
            "cache meta.json must record 'in_channels'; it does not (written by an older preprocess). "
            "Re-run preprocess (dvc repro -f preprocess)."
        )
    return int(meta["in_channels"])


def read_meta(cache_dir: str | Path) -> dict[str, Any]:
    path = Path(cache_dir) / "meta.json"
    if not path.is_file():
        raise CacheError(f"cache {str(cache_dir)!r} must hold meta.json; it was not found. Run the preprocess stage.")
    return json.loads(path.read_text())


def open_split(cache_dir: str | Path, split: str) -> CachedSplit:
    """Memory-map one split; the rows must match the array length.

    Raises:
        CacheError: when the files are missing or disagree, with the fix.
    """
    cache_dir = Path(cache_dir)
    array_path = cache_dir / f"{split}.npy"
    if not array_path.is_file():
        raise CacheError(f"cache split {str(array_path)!r} must exist; it was not found. Run the preprocess stage.")
    images = np.load(array_path, mmap_mode="r")
    rows = read_rows(cache_dir / f"{split}.csv", required=CACHE_ROW_COLUMNS)
    if len(rows) != images.shape[0]:
        raise CacheError(
            f"cache split {split!r} must have one row per image; got {len(rows)} rows for {images.shape[0]} images. "
            "The cache is incomplete: re-run preprocess (dvc repro -f preprocess)."
        )
    return CachedSplit(images=images, rows=rows)
