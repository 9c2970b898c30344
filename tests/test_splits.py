from __future__ import annotations

import pytest

from pipeline.splits import SplitError, assign_splits, summarise


def _rows(n_patients: int, series_per_patient: int = 1, positive_every: int = 2) -> list[dict[str, str]]:
    rows = []
    for p in range(n_patients):
        for s in range(series_per_patient):
            rows.append({"patient_id": f"P{p:03d}", "series_key": f"S{p:03d}_{s}", "label": str(int(p % positive_every == 0))})
    return rows


def test_every_patient_of_the_index_gets_exactly_one_part():
    rows = _rows(40, series_per_patient=3)
    splits = assign_splits(rows, seed=1, val_fraction=0.2, test_fraction=0.3)
    assert sorted(s.patient_id for s in splits) == sorted({r["patient_id"] for r in rows})  # each once, none invented
    counts = summarise(splits)
    assert counts["val"]["patients"] == 8 and counts["test"]["patients"] == 12 and counts["train"]["patients"] == 20


def test_stratified_by_label():
    splits = assign_splits(_rows(40), seed=3, val_fraction=0.2, test_fraction=0.3)
    counts = summarise(splits)
    for part in ("train", "val", "test"):
        assert counts[part]["positive"] * 2 == counts[part]["patients"]


def test_seeded_and_seed_matters():
    rows = _rows(30)
    a = assign_splits(rows, seed=5, val_fraction=0.2, test_fraction=0.3)
    b = assign_splits(rows, seed=5, val_fraction=0.2, test_fraction=0.3)
    c = assign_splits(rows, seed=6, val_fraction=0.2, test_fraction=0.3)
    assert a == b
    assert a != c


def test_small_classes_still_reach_val_and_test():
    rows = _rows(6)  # 3 positive, 3 negative
    counts = summarise(assign_splits(rows, seed=0, val_fraction=0.1, test_fraction=0.1))
    for part in ("train", "val", "test"):
        assert counts[part]["positive"] >= 1
        assert counts[part]["patients"] - counts[part]["positive"] >= 1


def test_manifest_split_column_is_honoured():
    rows = _rows(20)
    for row in rows:
        if row["patient_id"] in ("P000", "P001"):
            row["split"] = "test"
    parts = {s.patient_id: s.split for s in assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2)}
    assert parts["P000"] == "test" and parts["P001"] == "test"


def test_patient_in_two_parts_is_refused():
    rows = _rows(4, series_per_patient=2)
    rows[0]["split"], rows[1]["split"] = "train", "test"
    with pytest.raises(SplitError, match=r"one part only; 1 patient\(s\) are in several: P000: \['test', 'train'\]"):
        assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2)


def test_unknown_split_value_and_bad_label_are_named():
    rows = _rows(4)
    rows[2]["split"] = "holdout"
    with pytest.raises(SplitError, match=r"row 3: 'holdout'"):
        assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2)
    rows = _rows(4)
    rows[1]["label"] = "yes"
    with pytest.raises(SplitError, match=r"row 2 \(patient 'P001'\): label 'yes'"):
        assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2)


def test_patient_positive_if_any_series_positive():
    rows = [
        {"patient_id": "A", "label": "0"}, {"patient_id": "A", "label": "1"},
        {"patient_id": "B", "label": "0"},
    ]
    labels = {s.patient_id: s.label for s in assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2)}
    assert labels == {"A": 1, "B": 0}


def test_a_duplicate_group_moves_as_one_unit_and_keeps_the_counts():
    rows = _rows(40)
    groups = [("P001", "P002", "P007"), ("P010", "P033")]
    for seed in range(10):
        parts = {s.patient_id: s.split for s in assign_splits(rows, seed=seed, val_fraction=0.2, test_fraction=0.3,
                                                              groups=groups)}
        assert all(len({parts[p] for p in g}) == 1 for g in groups)
        assert sorted(parts) == sorted({r["patient_id"] for r in rows})
    assert assign_splits(rows, seed=4, val_fraction=0.2, test_fraction=0.3, groups=()) == assign_splits(
        rows, seed=4, val_fraction=0.2, test_fraction=0.3)


def test_a_group_follows_its_fixed_member_and_a_conflict_is_refused():
    rows = _rows(20)
    rows[3]["split"] = "test"
    parts = {s.patient_id: s.split for s in assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2,
                                                          groups=[("P003", "P011")])}
    assert parts["P003"] == parts["P011"] == "test"
    rows[11]["split"] = "train"
    with pytest.raises(SplitError, match=r"same image must share one part; .* 1 such group\(s\) in several: "
                                         r"\[P003: test, P011: train\]"):
        assign_splits(rows, seed=0, val_fraction=0.2, test_fraction=0.2, groups=[("P003", "P011")])
