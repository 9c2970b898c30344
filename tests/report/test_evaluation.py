"""Threshold from val applied to test, one-class splits, paired comparison, provenance, HTML."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy.special import expit

from pipeline.calibration import fit_calibrator
from pipeline.config import EvaluateConfig
from tests.params import config
from pipeline.report.evaluation import EvaluationError, compare_tables, evaluate_table
from pipeline.report.predictions import PatientTable
from pipeline.report.provenance import REDACTED, collect_provenance, read_lock, redact_params
from pipeline.report.writers import jsonable, write_outputs
from pipeline.schema import ArtifactError
from tests.stages.test_evaluate import TRAIN_SUMMARY, outputs_in, write_train_summary

# The model's own scores, unrecalibrated: these tests are about the threshold rule and the
# outputs; recalibration has its own tests below.
SETTINGS = config(
    EvaluateConfig, seed=0, aggregate="max", threshold="youden", target_sensitivity=0.9, ci_method="delong",
    n_boot=200, calibration_bins=5, subgroups=[], calibration="none", reader_columns=[],
)


def _table(seed: int = 0, n_val: int = 40, n_test: int = 50) -> PatientTable:
    rng = np.random.default_rng(seed)
    n = n_val + n_test
    label = rng.integers(0, 2, n).astype(np.int8)
    label[:2] = [0, 1]
    label[n_val : n_val + 2] = [0, 1]
    score = np.clip(0.5 + 0.25 * (label - 0.5) + rng.normal(0, 0.2, n), 0, 1).round(3)
    site = np.array(["A" if i % 2 else "B" for i in range(n)], dtype=object)
    site[-3:] = "C"
    label[-3:] = 0
    return PatientTable(
        patient_id=np.array([f"p{i:03d}" for i in range(n)], dtype=object),
        split=np.array(["val"] * n_val + ["test"] * n_test, dtype=object),
        label=label,
        score=score,
        n_series=np.ones(n, int),
        attributes={"site": site},
        aggregate="max",
        n_rows=n,
    )


def test_threshold_chosen_on_val_and_applied_unchanged_to_test():
    table = _table()
    ev = evaluate_table(table, SETTINGS)
    test, val = ev.metrics.test, ev.metrics.val
    assert test.threshold == val.threshold
    v = table.select("val")
    j = {c: np.mean(v.score[v.label == 1] >= c) + np.mean(v.score[v.label == 0] < c) for c in np.unique(v.score)}
    assert val.threshold == max(j, key=lambda c: (j[c], c))
    t = table.select("test")
    called = t.score >= test.threshold
    assert test.sensitivity == np.mean(called[t.label == 1])
    assert test.specificity == np.mean(~called[t.label == 0])
    assert test.n_patients == 50 and test.n_positive == int(t.label.sum())
    site_c = test.subgroups["site"]["C"]
    assert site_c.auc is None and "only negative" in site_c.reason
    assert "C" not in val.subgroups["site"]


def test_split_with_one_class_stops_with_a_message():
    table = _table()
    label = table.label.copy()
    label[table.split == "test"] = 1
    one_class = PatientTable(**{**table.__dict__, "label": label})
    with pytest.raises(EvaluationError, match=r"split 'test' must contain both classes; got 50 patient\(s\), all positive"):
        evaluate_table(one_class, SETTINGS)


def test_split_with_a_single_positive_names_the_counts_and_the_fix():
    table = _table()
    label = table.label.copy()
    test_rows = np.flatnonzero(table.split == "test")
    label[test_rows] = 0
    label[test_rows[0]] = 1
    one_positive = PatientTable(**{**table.__dict__, "label": label})
    with pytest.raises(EvaluationError, match=r"split 'test' must have at least 2 positive and 2 negative patients "
                                              r"for an AUC interval; got 1 positive and 49 negative\. Re-split"):
        evaluate_table(one_positive, SETTINGS)


def test_missing_split_stops_with_a_message():
    table = _table().select("test")
    with pytest.raises(EvaluationError, match="split 'val' must have patients; got none"):
        evaluate_table(table, SETTINGS)


def test_comparison_requires_the_same_patients():
    table = _table(0)
    noise = np.random.default_rng(9).random(table.score.size)
    other = PatientTable(**{**table.__dict__, "score": noise})
    result = compare_tables(table, other)
    assert result.n_patients == 50 and result.auc == pytest.approx(evaluate_table(table, SETTINGS).metrics.test.auc)
    assert result.auc_difference == pytest.approx(result.auc - result.auc_other)
    relabelled = PatientTable(**{**table.__dict__, "label": 1 - table.label})
    with pytest.raises(EvaluationError, match=r"must give each patient the same label; got 50 patient\(s\)"):
        compare_tables(table, relabelled)
    fewer = other.select("test")
    fewer = PatientTable(**{**fewer.__dict__, "patient_id": np.array([f"x{i}" for i in range(50)], dtype=object)})
    with pytest.raises(EvaluationError, match="must hold the same 'test' patients; got 50 only in this file"):
        compare_tables(table, fewer)


def test_secrets_are_redacted_and_lock_is_read(tmp_path):
    params = {"ingest": {"pseudonym_key": "s3cret-value", "workers": 2}, "base": {"seed": 1}}
    assert redact_params(params) == {"ingest": {"pseudonym_key": REDACTED, "workers": 2}, "base": {"seed": 1}}
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  ingest:\n    cmd: x\n    deps:\n    - path: data/raw\n      hash: md5\n"
        "      md5: abc.dir\n      size: 10\n      nfiles: 2\n    outs:\n    - path: data/index.csv\n      md5: def\n"
        "  report_v2:\n    cmd: y\n    outs:\n    - path: reports/metrics.json\n      md5: old\n"
    )
    # The running stage's own entry is found by its outputs, whatever dvc.yaml names it.
    entries = read_lock(lock, own_outputs=[tmp_path / "reports" / "metrics.json"])
    assert [(e.stage, e.kind, e.path, e.digest, e.nfiles) for e in entries] == [
        ("ingest", "dep", "data/raw", "abc.dir", 2),
        ("ingest", "out", "data/index.csv", "def", None),
    ]
    # Paths in the lock are relative to its folder, not to the working directory.
    assert [e.stage for e in read_lock(lock, own_outputs=["reports/metrics.json"])][-1] == "report_v2"
    assert {e.stage for e in read_lock(lock, own_outputs=[])} == {"ingest", "report_v2"}


def test_outputs_written_with_random_init_banner_and_no_secret(tmp_path):
    ev = evaluate_table(_table(), SETTINGS)
    preds = tmp_path / "predictions.csv"
    preds.write_text("unused for hashing only\n")
    summary = tmp_path / "train_summary.json"
    write_train_summary(summary, source="none", warning="no <ImageNet> checkpoint")
    prov = collect_provenance(preds, params={"ingest": {"pseudonym_key": "s3cret-value"}}, train_summary=summary,
                              lock=tmp_path / "absent.lock")
    write_outputs(ev, prov, outputs_in(tmp_path / "out"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert "RANDOM INITIALISATION" in page and "no &lt;ImageNet&gt; checkpoint" in page
    assert "s3cret-value" not in page and "p000" not in page
    assert "dvc.lock not found" in page
    rows = json.loads((tmp_path / "out" / "roc.json").read_text())
    assert rows[0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None} and rows[-1]["fpr"] == 1.0


def test_inputs_not_given_are_each_stated_once(tmp_path):
    ev = evaluate_table(_table(), SETTINGS)
    preds = tmp_path / "predictions.csv"
    preds.write_text("unused for hashing only\n")
    write_outputs(ev, collect_provenance(preds), outputs_in(tmp_path / "out"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("Params not given (--params).") == 1
    assert page.count("dvc.lock was not given or not found") == 1
    assert page.count("Weight provenance unknown") == 1


def test_a_summary_without_a_weights_source_stops_naming_the_file_and_the_key(tmp_path):
    preds = tmp_path / "predictions.csv"
    preds.write_text("unused for hashing only\n")
    summary = tmp_path / "train_summary.json"
    weights = {k: v for k, v in TRAIN_SUMMARY["weights"].items() if k != "source"}
    summary.write_text(json.dumps({**TRAIN_SUMMARY, "weights": weights}))
    with pytest.raises(ArtifactError, match=rf"train summary '{re.escape(str(summary))}' must have the key "
                                            r"'weights\.source'; it is missing\. It is written by the train stage"):
        collect_provenance(preds, train_summary=summary)
    # A source recorded as empty is stated as unknown, never as random initialisation.
    ev = evaluate_table(_table(), SETTINGS)
    write_outputs(ev, collect_provenance(preds, train_summary=write_train_summary(summary, source="")),
                  outputs_in(tmp_path / "out"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert "records no weights source" in page and "RANDOM INITIALISATION" not in page


def test_nan_never_reaches_a_file():
    with pytest.raises(ValueError, match="must not be NaN"):
        jsonable({"auc": float("nan")})


def _near_zero_table(seed: int = 4, n_val: int = 40, n_test: int = 60) -> PatientTable:
    """The positive control's failure: perfect-ish ranking, every probability near 0."""
    rng = np.random.default_rng(seed)
    n = n_val + n_test
    label = (np.arange(n) % 2).astype(np.int8)
    score = expit(-12.0 + 3.0 * label + rng.normal(0, 1.0, n))
    return PatientTable(
        patient_id=np.array([f"p{i:03d}" for i in range(n)], dtype=object),
        split=np.array(["val"] * n_val + ["test"] * n_test, dtype=object),
        label=label, score=score, n_series=np.ones(n, int), attributes={}, aggregate="max", n_rows=n,
    )


def test_platt_fitted_on_val_repairs_calibration_on_test_and_keeps_the_auc():
    table = _near_zero_table()
    raw = evaluate_table(table, SETTINGS).metrics
    platt = evaluate_table(table, EvaluateConfig(**{**SETTINGS.__dict__, "calibration": "platt"})).metrics
    test = platt.test
    assert raw.test.ece > 0.45 and raw.test.brier > 0.45
    assert test.ece < 0.10 and test.brier < 0.15
    assert test.ece_uncalibrated == raw.test.ece and test.brier_uncalibrated == raw.test.brier
    assert test.auc == raw.test.auc and test.auc_calibrated == pytest.approx(test.auc, abs=1e-12)
    assert test.calibration_method == "platt" and test.calibration_fitted_on == "val"
    assert platt.val.calibration_fitted_on.startswith("val (in-sample")
    assert abs(test.calibration_intercept) < abs(test.calibration_intercept_uncalibrated)
    # The map is applied to test unchanged: refit it by hand on val and call the test patients.
    cal = fit_calibrator("platt", table.select("val").label, table.select("val").score, probabilities=True)
    t = table.select("test")
    called = cal.apply(t.score) >= test.threshold
    assert test.confusion.tp == int(np.sum(called & (t.label == 1)))
    assert np.array_equal(called, t.score >= test.threshold_score)


def test_isotonic_ties_are_reported_and_the_calls_use_the_calibrated_score():
    table = _near_zero_table(seed=5)
    ev = evaluate_table(table, EvaluateConfig(**{**SETTINGS.__dict__, "calibration": "isotonic"}))
    test = ev.metrics.test
    assert test.calibration_method == "isotonic"
    assert test.auc_calibrated <= test.auc
    t = table.select("test")
    called = ev.curves["test"].score >= test.threshold
    assert np.array_equal(called, t.score >= test.threshold_score)
    assert test.confusion.fp == int(np.sum(called & (t.label == 0)))


def test_logits_are_evaluated_and_probability_metrics_say_why_not():
    table = _table()
    logits = PatientTable(**{**table.__dict__, "score": 8.0 * (table.score - 0.5)})
    plain = evaluate_table(logits, SETTINGS).metrics.test
    assert plain.auc == pytest.approx(evaluate_table(table, SETTINGS).metrics.test.auc, abs=1e-12)
    assert plain.brier is None and plain.ece is None and plain.calibration_slope is None
    assert plain.not_applicable["brier"].startswith("not applicable: the scores range from -4")
    recalibrated = evaluate_table(logits, EvaluateConfig(**{**SETTINGS.__dict__, "calibration": "platt"}))
    test = recalibrated.metrics.test
    assert 0 <= test.brier <= 1 and test.ece is not None
    assert test.brier_uncalibrated is None and "not probabilities" in test.not_applicable["brier_uncalibrated"]


def test_an_unknown_reader_column_is_named_with_the_columns_available():
    config = EvaluateConfig(**{**SETTINGS.__dict__, "reader_columns": ("reader_1",)})
    with pytest.raises(EvaluationError, match=r"'evaluate.reader_columns' must name columns of the predictions file; "
                                              r"got unknown \['reader_1'\], available \['site'\]"):
        evaluate_table(_table(), config)
