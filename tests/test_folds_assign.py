"""split.folds: patients outside test dealt into k folds, stratified, seeded, groups kept together."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.splits import PatientSplit, SplitError, assign_folds, assign_splits


def _splits(n: int, positive_every: int = 3) -> list[PatientSplit]:
    rows = [{"patient_id": f"P{p:03d}", "series_key": f"S{p}", "label": str(int(p % positive_every == 0))}
            for p in range(n)]
    return assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.3)


def test_every_patient_outside_test_gets_one_fold_and_test_none():
    splits = _splits(60)
    folds = assign_folds(splits, k=5, seed=1)
    outside = {s.patient_id for s in splits if s.split != "test"}
    assert set(folds) == outside
    assert set(folds.values()) == set(range(5))


def test_folds_are_stratified_and_balanced():
    splits = _splits(90)
    folds = assign_folds(splits, k=5, seed=2)
    label = {s.patient_id: s.label for s in splits}
    positives = Counter(folds[p] for p in folds if label[p])
    sizes = Counter(folds.values())
    assert max(positives.values()) - min(positives.values()) <= 1
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_seeded_and_the_seed_matters():
    splits = _splits(60)
    assert assign_folds(splits, k=4, seed=7) == assign_folds(splits, k=4, seed=7)
    assert assign_folds(splits, k=4, seed=7) != assign_folds(splits, k=4, seed=8)


def test_a_duplicate_group_shares_one_fold():
    splits = _splits(60)
    outside = sorted(s.patient_id for s in splits if s.split != "test")
    group = outside[:3]
    for seed in range(5):
        folds = assign_folds(splits, k=5, seed=seed, groups=[group])
        assert len({folds[p] for p in group}) == 1


def test_too_few_positives_for_the_folds_is_refused_with_the_fix():
    splits = _splits(60, positive_every=10)  # 6 positives in all, 4 or so outside test
    with pytest.raises(SplitError, match=r"split.folds: 5 needs at least 10 positive patients outside test.*Lower split.folds"):
        assign_folds(splits, k=5, seed=0)


@pytest.mark.parametrize("folds", [1, 11, -2, True, "5", 2.5])
def test_split_folds_outside_0_and_2_to_10_is_refused_by_the_config(folds):
    from pipeline.config import SplitConfig
    from pipeline.errors import ConfigError
    from tests.params import config

    with pytest.raises(ConfigError, match=r"'split.folds' must be 0 .* from 2 to 10 .*Use e.g. 5"):
        config(SplitConfig, folds=folds)
