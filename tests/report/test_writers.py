"""The writers: exactly the declared paths, each replaced whole, with the JSON DVC and readers expect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report import writers
from pipeline.report.evaluation import evaluate_table
from pipeline.report.provenance import collect_provenance
from pipeline.report.writers import jsonable, plot_rows, write_outputs
from pipeline.schema import PLOT_KINDS, MetricsRecord
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
def written(tmp_path_factory, evaluation):
    root = tmp_path_factory.mktemp("written")
    predictions = root / "predictions.csv"
    predictions.write_text("hashed only\n")
    outputs = outputs_in(root / "out")
    return root / "out", outputs, write_outputs(evaluation, collect_provenance(predictions), outputs)


def test_exactly_the_declared_paths_are_written(written):
    root, outputs, paths = written
    plot_files = {outputs.plot_file(kind, split) for kind in PLOT_KINDS for split in ("val", "test")}
    expected = plot_files | {outputs.metrics, outputs.roc_png, outputs.pr_png, outputs.calibration_png, outputs.report,
                             outputs.methods}
    assert set(paths) == expected and len(paths) == len(expected) == 14
    assert _files(root) == expected
    folders = {outputs.roc_plots, outputs.pr_plots, outputs.calibration_plots, outputs.confusion_plots}
    assert all(path.parent in folders or path in outputs.paths().values() for path in paths)


def test_metrics_json_is_the_record_and_reads_back(written, evaluation):
    _, outputs, _ = written
    text = outputs.metrics.read_text()
    assert text == json.dumps(jsonable(evaluation.metrics.to_json()), indent=2) + "\n"
    assert MetricsRecord.read(outputs.metrics).test.confusion == evaluation.metrics.test.confusion


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
