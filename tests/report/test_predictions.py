"""Reading predictions.csv: every bad row named by line, patients aggregated, subgroups chosen."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.report.predictions import PredictionsError, read_predictions, subgroup_columns

HEADER = "patient_id,series_key,split,label,score,site,age\n"


def _write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "predictions.csv"
    path.write_text(header + body)
    return path


def test_bad_scores_are_rejected_naming_their_lines(tmp_path):
    path = _write(
        tmp_path,
        "p1,s1,val,0,0.2,A,50\n"
        "p2,s2,val,1,inf,A,51\n"  # line 3
        "p3,s3,test,0,nan,B,52\n"  # line 4
        "p4,s4,test,1,abc,B,53\n"  # line 5
        "p5,s5,test,1,,B,54\n"  # line 6
        "p6,s6,test,1,-3.5,B,55\n",  # a logit: valid
    )
    with pytest.raises(PredictionsError, match=r"'score' must be a finite number \(a probability, logit or rating\): "
                                                r"line\(s\) 3, 4, 5, 6\."):
        read_predictions(path, aggregate="max")


def test_any_real_score_and_no_series_key_are_accepted(tmp_path):
    """Another group's file: one row per patient, logits, no series_key column."""
    path = _write(tmp_path, "p1,val,0,-2.5,A\np2,val,1,3.25,B\np3,test,1,17,B\n",
                  header="patient_id,split,label,score,site\n")
    table = read_predictions(path, aggregate="max")
    assert table.score.tolist() == [-2.5, 3.25, 17.0]
    assert table.n_series.tolist() == [1, 1, 1] and list(table.attributes) == ["site"]


def test_all_rules_reported_at_once(tmp_path):
    path = _write(tmp_path, "p1,s1,train,0,0.2,A,50\np2,s2,val,2,0.5,A,51\np3,s3,test,1,0.5,B\n")
    with pytest.raises(PredictionsError, match=r"predictions file '.*predictions\.csv' has rows breaking the rules: "
                                                r"rows must have 7 fields: line\(s\) 4; 'split' must be one of "
                                                r"\['val', 'test'\]: line\(s\) 2; 'label' must be 0 or 1: line\(s\) 3\. Fix or remove "
                                                r"these rows and run the stage again\.$"):
        read_predictions(path, aggregate="max")


def test_missing_columns_and_file_are_named(tmp_path):
    path = _write(tmp_path, "p1,val,0\n", header="patient_id,split,label\n")
    with pytest.raises(PredictionsError, match=r"must have columns \['patient_id', 'split', 'label', 'score'\]; missing \['score'\]"):
        read_predictions(path, aggregate="max")
    with pytest.raises(PredictionsError, match="must exist; it was not found. Run the train stage"):
        read_predictions(tmp_path / "absent.csv", aggregate="max")


def test_an_unknown_aggregate_is_refused_with_the_shared_vocabulary(tmp_path):
    path = _write(tmp_path, "p1,s1,val,0,0.2,A,50\n")
    with pytest.raises(ConfigError, match=r"'aggregate' must be one of \['max', 'mean'\]; got 'median'"):
        read_predictions(path, aggregate="median")


def test_series_are_aggregated_per_patient(tmp_path):
    path = _write(
        tmp_path,
        "p1,s1,val,1,0.2,A,50\np1,s2,val,1,0.8,B,50\np2,s3,test,0,0.4,B,60\n",
    )
    by_max = read_predictions(path, aggregate="max")
    by_mean = read_predictions(path, aggregate="mean")
    assert by_max.patient_id.tolist() == ["p1", "p2"]  # val before test
    assert by_max.score.tolist() == [0.8, 0.4]
    assert by_mean.score.tolist() == pytest.approx([0.5, 0.4])
    assert by_max.n_series.tolist() == [2, 1] and by_max.n_rows == 3
    assert by_max.attributes["site"].tolist() == ["A+B", "B"]


def test_patient_in_two_splits_or_with_two_labels_stops(tmp_path):
    path = _write(tmp_path, "p1,s1,val,1,0.2,A,50\np1,s2,test,0,0.8,A,50\n")
    with pytest.raises(PredictionsError, match=r"patient 'p1' has split \['test', 'val'\] on line\(s\) 2, 3.*leaks"):
        read_predictions(path, aggregate="max")


def test_subgroup_columns_detected_and_skipped_with_reasons(tmp_path):
    rows = "".join(f"p{i},s{i},{'val' if i % 2 else 'test'},{i % 3 % 2},0.5,{'AB'[i % 2]},{20 + i}\n" for i in range(30))
    table = read_predictions(_write(tmp_path, rows), aggregate="max")
    used, skipped = subgroup_columns(table, requested=(), readers=())
    assert used == ["site"]
    assert skipped == {"age": "30 levels (more than 20); name it in evaluate.subgroups to force it"}
    assert subgroup_columns(table, requested=("age",), readers=()) == (["age"], {})
    used, skipped = subgroup_columns(table, requested=(), readers=("site",))
    assert used == [] and skipped["site"].startswith("reader column (evaluate.reader_columns)")
    with pytest.raises(PredictionsError, match=r"unknown \['scanner'\], available \['age', 'site'\]"):
        subgroup_columns(table, requested=("scanner",), readers=())
