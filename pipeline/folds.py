"""Cross-validation folds on the training side: which patients a fold holds out, and its cache.

``split`` deals the patients outside test into ``split.folds`` folds (``split.csv``'s
``fold`` column). The model of fold ``i`` trains on the other folds and is selected and
scored on fold ``i``: its ``val`` predictions are out-of-fold, and pooled over the folds
every patient outside test is scored once by a model that never saw them. It also
scores the test split, which the evaluation averages over the fold models.

The preprocess cache holds the single split's ``train`` and ``val`` parts; a fold's
cache is the same samples dealt again by fold, written as a cache of its own
(:func:`write_fold_cache`), so training reads it exactly as it reads the single split's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from pipeline.cache import CacheError, CacheWriter, cache_channels, open_split, read_meta, write_meta
from pipeline.errors import PipelineInputError
from pipeline.schema.tables import SPLIT_REQUIRED
from pipeline.tables import read_rows

#: Cache parts a fold's samples come from: every patient outside test.
POOLED_PARTS = ("train", "val")


class FoldError(PipelineInputError):
    """``split.csv`` and ``split.folds`` disagree, or a fold cannot be trained."""


def read_folds(split_csv: str | Path, *, k: int) -> dict[str, int]:
    """Patient id -> fold from ``split.csv``, checked against ``split.folds: k``.

    Raises:
        FoldError: the file's folds are not 0 to ``k - 1`` (it was written with another
            ``split.folds``), naming the values found and the fix.
    """
    rows = read_rows(split_csv, required=(*SPLIT_REQUIRED, "fold"))
    folds = {r["patient_id"]: int(r["fold"]) for r in rows if r["fold"] != ""}
    found = sorted(set(folds.values()))
    if found != list(range(k)):
        raise FoldError(
            f"{str(split_csv)!r} must deal its patients into folds 0 to {k - 1} (split.folds: {k}); it holds folds "
            f"{found}. It was written with another split.folds: run the split stage again (dvc repro split)."
        )
    return folds


def write_fold_cache(cache_dir: str | Path, folds: Mapping[str, int], fold: int, out_dir: str | Path) -> dict[str, int]:
    """The cache of fold ``fold``: ``train`` = the other folds, ``val`` = this one, ``test`` as cached.

    Samples are copied one at a time from the memory-mapped parts (memory stays at one
    sample); ``test`` is hard-linked when the file system allows, else copied.

    Returns:
        Samples per part of the fold's cache.

    Raises:
        FoldError: a cached sample of a patient with no fold (the cache and split.csv are
            from different runs), or a fold whose train or val part lacks a class.
    """
    cache_dir, out_dir = Path(cache_dir), Path(out_dir)
    meta = read_meta(cache_dir)
    sources = {part: open_split(cache_dir, part) for part in POOLED_PARTS}
    chosen: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for part, split in sources.items():
        for i, row in enumerate(split.rows):
            if row["patient_id"] not in folds:
                raise FoldError(
                    f"every cached {part} sample must belong to a fold of split.csv; series {row['series_key']!r} "
                    "has none. The cache is older than split.csv: run preprocess again (dvc repro preprocess)."
                )
            chosen["val" if folds[row["patient_id"]] == fold else "train"].append((part, i))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    roi = sources["train"].images.shape[2:]
    columns = list(sources["train"].rows[0]) if sources["train"].rows else list(sources["val"].rows[0])
    counts = {}
    for part, picks in chosen.items():
        labels = {int(sources[src].rows[i]["label"]) for src, i in picks}
        if labels != {0, 1}:
            raise FoldError(
                f"fold {fold}'s {part} part must hold both classes; got labels {sorted(labels)} in {len(picks)} "
                "samples. Some patients have no cached series (see data/cache/excluded.csv): lower split.folds."
            )
        writer = CacheWriter(out_dir, part, len(picks), roi, channels=cache_channels(meta))
        for src, i in picks:
            writer.add(sources[src].images[i], sources[src].rows[i])
        counts[part] = writer.close(columns)
    for name in ("test.npy", "test.csv"):
        _link_or_copy(cache_dir / name, out_dir / name)
    counts["test"] = len(open_split(out_dir, "test"))
    write_meta(out_dir, {**meta, "counts": counts, "fold": {"fold": fold, "k": len(set(folds.values()))}})
    return counts


def _link_or_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise CacheError(f"cache file {str(source)!r} must exist; it was not found. Run the preprocess stage.")
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)
