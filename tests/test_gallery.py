"""The Grad-CAM gallery: which test cases it draws, from which series, at which operating point, and its report section."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EvaluateConfig, ExplainConfig, load_params
from pipeline.gallery import build_gallery, rank_groups
from pipeline.rescoring import StaleScoresError
from pipeline.report import read_predictions
from pipeline.report.gallery import GalleryResultsError, read_gallery
from pipeline.report.operating_point import operating_point
from pipeline.stages import evaluate as evaluate_stage
from pipeline.stages import explain as explain_stage
from tests.params import PARAMS_FILE, config
from tests.stages.test_evaluate import output_args
from tests.trained_runs import trained_runs

PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = load_params(PARAMS_FILE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def _write_predictions(path: Path, rows: list[tuple[str, str, int, float]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "series_key", "split", "label", "score"])
        for i, (patient, split, label, score) in enumerate(rows):
            writer.writerow([patient, f"s{i}", split, label, score])
    return path


def test_groups_are_test_patients_at_the_val_threshold_most_telling_first(tmp_path):
    # Validation: a perfect ranking with the cut between 0.4 and 0.6 (no recalibration).
    val = [("v1", "val", 0, 0.1), ("v2", "val", 0, 0.4), ("v3", "val", 1, 0.6), ("v4", "val", 1, 0.9)]
    test = [("t1", "test", 1, 0.95), ("t2", "test", 1, 0.7), ("t3", "test", 1, 0.2), ("t4", "test", 1, 0.5),
            ("t5", "test", 0, 0.8), ("t6", "test", 0, 0.65), ("t7", "test", 0, 0.05),
            ("t8", "test", 0, 0.3), ("t8", "test", 0, 0.99)]  # t8: two series; max aggregation makes it 0.99
    table = read_predictions(_write_predictions(tmp_path / "p.csv", val + test), aggregate="max")
    rule = operating_point(table, config(EvaluateConfig, calibration="none", threshold="youden"))
    assert rule.threshold == pytest.approx(0.6)
    ranked = {group: [str(table.patient_id[i]) for i in indices] for group, indices in rank_groups(table, rule).items()}
    assert ranked == {"true_positive": ["t1", "t2"], "false_positive": ["t8", "t5", "t6"],
                      "false_negative": ["t3", "t4"]}


@pytest.mark.parametrize("spatial_dims", [3, 2])
def test_the_stage_draws_each_chosen_patients_top_series_with_the_model_and_the_report_shows_them(
    runs, tmp_path, spatial_dims
):
    run = runs[spatial_dims]
    out = tmp_path / "gallery"
    assert explain_stage.main([str(run.model), str(run.predictions), str(run.index_csv), str(out),
                               "--params", str(PARAMS_FILE)]) == 0
    record = json.loads((out / "gallery.json").read_text())
    evaluate = EvaluateConfig.from_params(PARAMS)
    table = read_predictions(run.predictions, aggregate=evaluate.aggregate)
    rule = operating_point(table, evaluate)
    ranked = rank_groups(table, rule)
    per_group = ExplainConfig.from_params(PARAMS).cases_per_group
    assert record["split"] == "test" and record["layer"] == "layer4" and record["per_group"] == per_group
    assert record["operating_point"]["threshold"] == rule.threshold
    assert [record["true_positives"], record["false_positives"], record["false_negatives"]] == [
        len(ranked[g]) for g in ("true_positive", "false_positive", "false_negative")]
    expected = [(g, str(table.patient_id[i])) for g in ("true_positive", "false_positive", "false_negative")
                for i in ranked[g][:per_group]]
    assert [(c["group"], c["patient_id"]) for c in record["cases"]] == expected
    assert record["cases"], "the tiny run has test patients in at least one group"
    with run.predictions.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "test"]
    for case in record["cases"]:
        mine = [r for r in rows if r["patient_id"] == case["patient_id"]]
        top = max(mine, key=lambda r: float(r["score"]))
        assert case["series_key"] == top["series_key"] and case["score"] == float(top["score"])
        assert (out / case["image"]).read_bytes().startswith(PNG)
        assert (case["slice_index"] is None) == (spatial_dims == 2)
    assert sorted(p.name for p in out.iterdir()) == sorted(["gallery.json", *(c["image"] for c in record["cases"])])

    # evaluate puts every overlay in the report, and only at its own operating point
    reports = tmp_path / "reports"
    args = [str(run.predictions), *output_args(reports), "--params", str(PARAMS_FILE)]
    assert evaluate_stage.main([*args, "--gallery", str(out / "gallery.json")]) == 0
    html = (reports / "report.html").read_text()
    section = html[html.index("Where the model looks"):html.index("Metrics with 95% confidence intervals")]
    assert len(re.findall(r"<img alt=", section)) == len(record["cases"])
    assert f"<code>{record['layer']}</code>" in section
    assert evaluate_stage.main(args) == 0 and "Where the model looks" not in (reports / "report.html").read_text()


def test_a_gallery_of_other_predictions_is_refused_by_the_report(runs, tmp_path):
    run = runs[3]
    out = tmp_path / "gallery"
    assert explain_stage.main([str(run.model), str(run.predictions), str(run.index_csv), str(out),
                               "--params", str(PARAMS_FILE)]) == 0
    table = read_predictions(run.predictions, aggregate="max")
    rule = operating_point(table, EvaluateConfig.from_params(PARAMS))
    with pytest.raises(GalleryResultsError, match=r"must be drawn at this evaluation's operating point.*dvc repro explain"):
        read_gallery(out / "gallery.json", rule, predictions_sha256="0" * 64, model_digest=None)
    record = json.loads((out / "gallery.json").read_text())
    drawn = [c for c in record["cases"] if c["image"]]
    (out / drawn[0]["image"]).unlink()
    with pytest.raises(GalleryResultsError, match=r"lists the overlay .* must be beside it"):
        read_gallery(out / "gallery.json", rule, predictions_sha256=record["operating_point"]["predictions_sha256"],
                     model_digest=None)


def test_a_model_that_did_not_write_these_predictions_is_refused(runs, tmp_path):
    run = runs[3]
    with run.predictions.open() as handle:
        rows = list(csv.DictReader(handle))
    # Every test score moved by the same amount: the ranking and so the chosen cases are
    # unchanged, but the model no longer gives the scores the file holds.
    for row in rows:
        if row["split"] == "test":
            row["score"] = repr(float(np.clip(float(row["score"]) * 0.5, 0.0, 1.0)))
    stale = tmp_path / "predictions.csv"
    with stale.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(StaleScoresError, match=r"must give series .* the score .* different runs \(a stale output\)"):
        build_gallery(run.model, stale, run.index_csv, tmp_path / "gallery", evaluate=EvaluateConfig.from_params(PARAMS),
                      explain=ExplainConfig.from_params(PARAMS))
    assert not (tmp_path / "gallery").exists()
