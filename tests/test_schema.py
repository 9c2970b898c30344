"""pipeline.schema: the records read back exactly what was written, and name what is missing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.report.evaluation import evaluate_table
from pipeline.report.predictions import PatientTable
from pipeline.report.writers import jsonable
from pipeline.schema import ArtifactError, EvaluateOutputs, MetricsRecord, TrainSummaryRecord
from tests.stages.test_evaluate import TRAIN_SUMMARY

REPO = Path(__file__).resolve().parents[1]


def _evaluation(calibration: str, readers: tuple[str, ...] = ()):
    """A table that exercises every optional block: readers with a missing rating, subgroups, a comparison."""
    rng = np.random.default_rng(3)
    n = 80
    label = (np.arange(n) % 2).astype(np.int8)
    score = np.clip(0.5 + 0.3 * (label - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    rating = np.clip(np.round(3 + 2 * (label - 0.5) + rng.normal(0, 1, n)), 1, 5).astype(int).astype(str).astype(object)
    rating[45] = ""
    table = PatientTable(
        patient_id=np.array([f"p{i:03d}" for i in range(n)], dtype=object),
        split=np.array(["val"] * 30 + ["test"] * 50, dtype=object), label=label, score=score,
        n_series=np.ones(n, int), attributes={"site": np.array(["A", "B"] * 40, dtype=object), "reader": rating},
        aggregate="max", n_rows=n,
    )
    config = EvaluateConfig(seed=1, aggregate="max", threshold="youden", target_sensitivity=0.9, ci_method="delong",
                            n_boot=200, calibration_bins=5, subgroups=("site",), calibration=calibration,
                            reader_columns=readers)
    other = PatientTable(**{**table.__dict__, "score": rng.random(n)})
    return evaluate_table(table, config, other=other)


@pytest.mark.parametrize(("calibration", "readers"), [("platt", ("reader",)), ("isotonic", ()), ("none", ())])
def test_metrics_json_reads_back_to_the_record_it_was_written_from(calibration, readers):
    record = _evaluation(calibration, readers).metrics
    text = json.dumps(jsonable(record.to_json()))
    again = MetricsRecord.from_json(json.loads(text), file="metrics.json")
    assert json.dumps(jsonable(again.to_json())) == text
    assert again.test.confusion.tp + again.test.confusion.fn == again.test.n_positive
    assert ("readers" in json.loads(text)["test"]) == bool(readers)
    assert ("intercept" in json.loads(text)["calibration"]) == (calibration == "platt")
    assert again.comparison is not None and again.comparison.n_patients == 50


def test_a_missing_or_mistyped_metric_is_named_with_the_file(tmp_path):
    data = jsonable(_evaluation("platt").metrics.to_json())
    del data["val"]["auc_ci95"]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=rf"metrics file '{re.escape(str(path))}' must have the key 'val\.auc_ci95'; "
                                            r"it is missing\. It is written by the evaluate stage"):
        MetricsRecord.read(path)
    data["val"]["auc_ci95"] = [0.5]
    with pytest.raises(ArtifactError, match=r"must have 'val\.auc_ci95' as a list of 2 values; got \[0\.5\]"):
        MetricsRecord.from_json(data, file="m.json")
    data["val"]["auc_ci95"] = [0.5, 0.6]
    data["test"]["confusion"]["tp"] = "12"
    with pytest.raises(ArtifactError, match=r"must have 'test\.confusion\.tp' as a JSON integer; got '12'"):
        MetricsRecord.from_json(data, file="m.json")
    data["test"]["confusion"]["tp"] = True  # a boolean is not a count
    with pytest.raises(ArtifactError, match=r"'test\.confusion\.tp' as a JSON integer; got True"):
        MetricsRecord.from_json(data, file="m.json")
    with pytest.raises(ArtifactError, match=r"must exist; it was not found\. It is written by the evaluate stage"):
        MetricsRecord.read(tmp_path / "absent.json")
    assert issubclass(ArtifactError, PipelineInputError)


def test_train_summary_keeps_the_layout_training_writes():
    record = TrainSummaryRecord.from_json(json.loads(json.dumps(TRAIN_SUMMARY)), file="s.json")
    assert json.dumps(record.to_json()) == json.dumps(TRAIN_SUMMARY)  # every key, in the same order
    assert (record.weights.source, record.weights.licence, record.config.train.lr) == ("imagenet", "BSD-3-Clause", 0.001)
    assert record.model.spatial_dims == 3 and record.best_epoch == 2 and record.model_digest == "cd" * 32
    older = {k: v for k, v in TRAIN_SUMMARY.items() if k != "model_digest"}  # written before the digest was
    assert TrainSummaryRecord.from_json(older, file="s.json").model_digest is None


@pytest.mark.parametrize(("path", "value", "message"), [
    (("best_epoch",), None, r"must have the key 'best_epoch'; it is missing"),
    (("config", "train", "lr"), None, r"must have the key 'config\.train\.lr'; it is missing"),
    (("weights", "source"), 3, r"must have 'weights\.source' as a JSON string; got 3"),
    (("model",), [], r"must have 'model' as a JSON object; got \[\]"),
])
def test_train_summary_names_the_key_it_lacks(path, value, message):
    data = json.loads(json.dumps(TRAIN_SUMMARY))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    with pytest.raises(ArtifactError, match=r"train summary 's\.json' " + message + r"\. It is written by the train stage"):
        TrainSummaryRecord.from_json(data, file="s.json")


def test_every_plot_file_lies_in_its_declared_folder():
    outputs = EvaluateOutputs(**{f.name: f"out/{f.name}" for f in fields(EvaluateOutputs)})
    assert outputs.plot_file("roc", "test") == Path("out/roc")  # the headline curve has a path of its own
    assert outputs.plot_file("roc", "val") == Path("out/roc_plots/val.json")
    assert outputs.plot_file("confusion", "test") == Path("out/confusion_plots/test.json")
    assert all(isinstance(p, Path) for p in outputs.paths().values()) and len(outputs.paths()) == 12


def test_the_schema_imports_no_torch():
    code = "import sys, pipeline.schema; sys.exit('torch' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0
