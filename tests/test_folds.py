"""A fold's cache: the cached train and val samples dealt again by fold, test as cached."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cache import open_split, read_meta
from pipeline.folds import FoldError, read_folds, write_fold_cache


def _folds(cache, k: int) -> dict[str, int]:
    patients = sorted({r["patient_id"] for part in ("train", "val") for r in open_split(cache, part).rows})
    return {p: i % k for i, p in enumerate(patients)}


def test_the_fold_holds_out_its_patients_and_keeps_every_sample(tiny_cache, tmp_path):
    folds = _folds(tiny_cache, 3)
    out = tmp_path / "fold1"
    counts = write_fold_cache(tiny_cache, folds, 1, out)
    val, train = open_split(out, "val"), open_split(out, "train")
    assert {folds[r["patient_id"]] for r in val.rows} == {1}
    assert 1 not in {folds[r["patient_id"]] for r in train.rows}
    assert counts == {"train": len(train), "val": len(val), "test": 12} and len(train) + len(val) == 36
    # The images travel with their rows, unchanged.
    source = {r["series_key"]: (part, i) for part in ("train", "val") for i, r in enumerate(open_split(tiny_cache, part).rows)}
    for split in (train, val):
        for i, row in enumerate(split.rows):
            part, j = source[row["series_key"]]
            np.testing.assert_array_equal(split.images[i], open_split(tiny_cache, part).images[j])
    np.testing.assert_array_equal(open_split(out, "test").images, open_split(tiny_cache, "test").images)
    meta = read_meta(out)
    assert meta["fold"] == {"fold": 1, "k": 3} and meta["counts"] == counts
    assert meta["roi"] == read_meta(tiny_cache)["roi"]


def test_a_cached_patient_without_a_fold_is_refused(tiny_cache, tmp_path):
    folds = _folds(tiny_cache, 2)
    folds.pop(next(iter(folds)))
    with pytest.raises(FoldError, match="must belong to a fold of split.csv.*run preprocess again"):
        write_fold_cache(tiny_cache, folds, 0, tmp_path / "f")


def test_split_csv_of_another_folds_setting_is_refused(tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("patient_id,split,label,fold\nA,train,0,0\nB,val,1,1\nC,test,0,\n")
    assert read_folds(split, k=2) == {"A": 0, "B": 1}
    with pytest.raises(FoldError, match=r"folds 0 to 2 \(split.folds: 3\); it holds folds \[0, 1\].*dvc repro split"):
        read_folds(split, k=3)
