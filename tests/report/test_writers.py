"""The writers: exactly the declared paths, each replaced whole, with the JSON DVC and readers expect."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.report import writers
from pipeline.report.evaluation import evaluate_table
from pipeline.report.operating_point import rule_of_record, threshold_record
from pipeline.report.provenance import collect_provenance
from pipeline.report.writers import jsonable, plot_rows, write_outputs
from pipeline.schema import PLOT_KINDS, MetricsRecord, ThresholdRecord
from tests.report.test_html import _config, _table
from tests.stages.test_evaluate import outputs_in

FIELDS = {
    "roc": {"fpr", "tpr", "threshold"},
    "pr": {"recall", "precision", "threshold"},
    "calibration": {"mean_predicted", "fraction_positive", "count", "bin_lower", "bin_upper"},
    "confusion": {"actual", "predicted"},
}


@pytest.fixture(scope="module")
def evaluation():
    return evaluate_table(_table(), _config())


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def written(module_tmp, evaluation):
    root = module_tmp("written")
    predictions = root / "predictions.csv"
    predictions.write_text("hashed only\n")
    outputs = outputs_in(root / "out")
    return root / "out", outputs, write_outputs(evaluation, collect_provenance(predictions), outputs)


def test_exactly_the_declared_paths_are_written(written):
    root, outputs, paths = written
    plot_files = {outputs.plot_file(kind, split) for kind in PLOT_KINDS for split in ("val", "test")}
    expected = plot_files | {outputs.metrics, outputs.roc_png, outputs.pr_png, outputs.calibration_png, outputs.report,
                             outputs.methods, outputs.threshold_file}
    assert set(paths) == expected and len(paths) == len(expected) == 15
    assert _files(root) == expected
    folders = {outputs.roc_plots, outputs.pr_plots, outputs.calibration_plots, outputs.confusion_plots}
    assert all(path.parent in folders or path in outputs.paths().values() for path in paths)


def test_metrics_json_is_the_record_and_reads_back(written, evaluation):
    _, outputs, _ = written
    text = outputs.metrics.read_text()
    assert text == json.dumps(jsonable(evaluation.metrics.to_json()), indent=2) + "\n"
    assert MetricsRecord.read(outputs.metrics).test.confusion == evaluation.metrics.test.confusion


@pytest.mark.parametrize("calibration", ["none", "platt", "isotonic"])
def test_threshold_json_holds_the_rule_exactly_and_rebuilds_it(tmp_path, calibration):
    """Every digit of the threshold and the map: the rule read back calls the same patients positive."""
    table = _table()
    evaluation = evaluate_table(table, _config(calibration=calibration))
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("hashed only\n")
    outputs = outputs_in(tmp_path / "out")
    write_outputs(evaluation, collect_provenance(predictions), outputs)
    record = ThresholdRecord.read(outputs.threshold_file)
    rule = evaluation.operating_point
    assert record.threshold == rule.threshold == evaluation.metrics.val.threshold
    assert record.threshold_score == rule.threshold_score == evaluation.metrics.val.threshold_score
    assert record.model_digest is None  # no train_summary.json given
    assert record.calibration.method == calibration and record.calibration.n_fitted == rule.calibrator.n_fitted
    rebuilt = rule_of_record(record)
    assert rebuilt == rule
    test = table.select("test")
    assert np.array_equal(rebuilt.positive(test.score).astype(int), evaluation.curves["test"].predicted)


def test_a_cut_that_does_not_exist_on_the_score_scale_is_null_with_its_reason():
    rule = evaluate_table(_table(), _config(calibration="none")).operating_point
    flat = replace(rule, threshold_score=float("-inf"))
    record = threshold_record(flat, model_digest="ab" * 32, predictions_sha256="0" * 64)
    assert record.threshold_score is None and "every score is called positive" in record.threshold_score_reason
    assert rule_of_record(record).threshold_score == float("-inf")
    data = json.loads(json.dumps(record.to_json(), allow_nan=False))
    assert ThresholdRecord.from_json(data, file="t.json") == record


def test_a_failing_write_leaves_the_previous_outputs_whole(tmp_path, evaluation, monkeypatch):
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("hashed only\n")
    outputs = outputs_in(tmp_path / "out")
    write_outputs(evaluation, collect_provenance(predictions), outputs)
    before = {path: path.read_bytes() for path in _files(tmp_path / "out")}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(writers, "render_html", broken)
    with pytest.raises(RuntimeError, match="disk full while rendering"):
        write_outputs(evaluate_table(_table(), _config(calibration="none")), collect_provenance(predictions), outputs)
    after = {path: path.read_bytes() for path in _files(tmp_path / "out")}
    assert set(after) == set(before)  # no temporary file left beside them
    assert after[outputs.report] == before[outputs.report] and after[outputs.methods] == before[outputs.methods]
    # Those written before the failure are the new run's, complete.
    assert json.loads(after[outputs.metrics])["test"]["calibration_method"] == "none"


def test_plot_rows_have_the_fields_dvc_draws_and_no_identifiers(evaluation):
    rows = plot_rows(evaluation)
    assert set(rows) == {(kind, split) for kind in PLOT_KINDS for split in ("test", "val")}
    for (kind, split), points in rows.items():
        assert points and all(set(p) == FIELDS[kind] for p in points), (kind, split)
    test = evaluation.metrics.test
    assert len(rows["confusion", "test"]) == test.n_patients
    assert sum(r["actual"] == r["predicted"] == 1 for r in rows["confusion", "test"]) == test.confusion.tp
    assert rows["roc", "test"][0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None}  # nobody called positive
    assert "secret-id" not in json.dumps(list(rows.values()))


def test_thresholds_keep_every_digit_and_other_numbers_six():
    assert jsonable({"threshold": 1.23456789e-7, "auc": 0.123456789, "rows": [{"threshold": 0.1234567891}]}) == {
        "threshold": 1.23456789e-7, "auc": 0.123457, "rows": [{"threshold": 0.1234567891}],
    }
    assert jsonable({"threshold": float("inf")}) == {"threshold": None}
    with pytest.raises(ValueError, match="metric values must not be NaN; got NaN"):
        jsonable([0.5, float("nan")])
