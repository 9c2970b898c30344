"""The localise stage on a trained tiny model: its operating point is evaluate's, its result is in the report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pipeline.config import EvaluateConfig, load_params
from pipeline.demo.cohort import make_cohort, write_lesion_truth
from pipeline.digests import sha256_file
from pipeline.report import operating_point, read_predictions
from pipeline.report.localisation import LocalisationResultsError, read_localisation
from pipeline.stages import evaluate as evaluate_stage
from pipeline.stages import localise
from tests.params import PARAMS_FILE
from tests.stages.test_evaluate import output_args
from tests.trained_runs import COHORT, KEY, trained_runs


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    return trained_runs(tmp_path_factory)[3]


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """The tiny cohort's lesion positions (the same seed writes the same cohort) and params holding its key."""
    root = tmp_path_factory.mktemp("truth")
    summary = make_cohort(root / "raw", root / "manifest.csv", seed=3, **COHORT)
    lesions = root / "lesions.csv"
    assert write_lesion_truth(lesions, summary.records) > 0
    params = load_params(PARAMS_FILE)
    params["ingest"]["pseudonym_key"] = KEY  # the key trained_runs ingested with
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    return lesions, params_file


def _run(run, predictions: Path, lesions: Path, params: Path, out: Path) -> int:
    return localise.main([str(run.model), str(predictions), str(run.index_csv), str(lesions), "--out", str(out),
                          "--params", str(params)])


def _rewrite(source: Path, target: Path, change) -> Path:  # noqa: ANN001 - a row -> None callable
    with source.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        change(row)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def _val_below_test(row: dict[str, str]) -> None:
    """Validation scores ranked right and below any test score, so every label-1 test series is a true positive.

    A one-epoch model ranks its few val patients as chance has it; the test cases it
    scores are its own, and those are what the stage re-scores and maps.
    """
    if row["split"] == "val":
        row["score"] = "0.03" if row["label"] == "1" else "0.01"


def test_true_positives_are_those_of_evaluates_operating_point_and_the_report_shows_the_check(run3d, truth, tmp_path):
    lesions, params = truth
    predictions = _rewrite(run3d.predictions, tmp_path / "predictions.csv", _val_below_test)
    out = tmp_path / "localisation.json"
    assert _run(run3d, predictions, lesions, params, out) == 0
    found = json.loads(out.read_text())
    config = EvaluateConfig.from_params(load_params(params))
    rule = operating_point(read_predictions(predictions, aggregate=config.aggregate), config)
    assert found["operating_point"]["threshold"] == rule.threshold
    assert found["threshold_score"] == rule.threshold_score == pytest.approx(0.03)
    assert found["operating_point"]["predictions_sha256"] == sha256_file(predictions)
    assert found["model_digest"] == found["operating_point"]["model_digest"]
    with predictions.open() as handle:
        positives = [r for r in csv.DictReader(handle) if r["split"] == "test" and r["label"] == "1"
                     and float(r["score"]) >= rule.threshold_score]
    assert positives, "the tiny cohort's test split has lesion patients"
    assert found["true_positives"] == len(positives) and found["cases"] == len(positives)  # each has its lesion
    assert 0 <= found["peak_in_lesion"] <= 1 and 0 < found["chance"] < 1 and found["note"] == ""

    reports = tmp_path / "reports"
    args = [str(predictions), *output_args(reports), "--params", str(params)]
    assert evaluate_stage.main([*args, "--localisation", str(out)]) == 0
    html = (reports / "report.html").read_text()
    section = html[html.index("Does the map point at the lesion?"):html.index("Metrics with 95% confidence intervals")]
    assert f"{found['peak_in_lesion']:.0%}</b> of {found['cases']} true-positive test cases" in section
    assert f"chance {found['chance']:.1%}" in section
    assert f"<code>{found['layer']}</code>" in section
    # beside another evaluation (other predictions) the check is stale and refused
    with pytest.raises(LocalisationResultsError, match=r"must be made at this evaluation's operating point.*"
                                                       r"dvc repro localise"):
        read_localisation(out, rule, predictions_sha256="0" * 64, model_digest=None)


def test_a_model_that_did_not_write_these_predictions_is_refused(run3d, truth, tmp_path, capsys):
    lesions, params = truth

    def every_test_positive_sure(row: dict[str, str]) -> None:  # scores this model did not give
        _val_below_test(row)
        if row["split"] == "test" and row["label"] == "1":
            row["score"] = "0.9999999"

    stale = _rewrite(run3d.predictions, tmp_path / "predictions.csv", every_test_positive_sure)
    out = tmp_path / "localisation.json"
    assert _run(run3d, stale, lesions, params, out) == 2
    assert "different runs (a stale output)" in capsys.readouterr().err
    assert not out.exists()


def test_no_cut_on_the_score_scale_gives_zero_cases_with_the_reason_not_a_failed_stage(run3d, truth, tmp_path, capsys):
    # Validation ranked backwards (as a tiny 2-epoch run did on one CPU): Platt's slope is
    # negative, the map is not monotone, and no cut on the model's scores gives its calls.
    lesions, params = truth

    def backwards(row: dict[str, str]) -> None:
        if row["split"] == "val":
            row["score"] = "0.2" if row["label"] == "1" else "0.8"

    predictions = _rewrite(run3d.predictions, tmp_path / "predictions.csv", backwards)
    out = tmp_path / "localisation.json"
    assert _run(run3d, predictions, lesions, params, out) == 0
    found = json.loads(out.read_text())
    assert found["cases"] == 0 and found["true_positives"] == 0 and found["threshold_score"] is None
    reason = "the recalibration map fitted on val is not monotone (its slope is not positive)"
    assert found["note"].startswith("the validation-chosen operating point has no cut on the model's score scale")
    assert reason in found["note"] and reason in capsys.readouterr().out
