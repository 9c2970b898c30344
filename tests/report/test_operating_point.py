"""The one function that chooses the operating point on val, and the rule every caller applies."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration import fit_calibrator
from pipeline.config import EvaluateConfig
from pipeline.metrics import choose_threshold
from pipeline.report import DecisionRule, OperatingPointError, evaluate_table, operating_point
from pipeline.report.predictions import PatientTable
from tests.params import config
from tests.report.test_evaluation import _table


def _settings(**overrides: object) -> EvaluateConfig:
    values = {"seed": 0, "aggregate": "max", "threshold": "youden", "target_sensitivity": 0.9, "ci_method": "delong",
              "n_boot": 200, "calibration_bins": 5, "subgroups": [], "calibration": "platt", "reader_columns": []}
    return config(EvaluateConfig, **{**values, **overrides})


@pytest.mark.parametrize("calibration", ["none", "platt", "isotonic"])
@pytest.mark.parametrize(("rule", "said"), [("youden", "youden"), ("sensitivity", "sensitivity>=0.9")])
def test_the_rule_is_fitted_on_val_alone_and_is_the_one_evaluate_reports(calibration, rule, said):
    table = _table(seed=4)
    settings = _settings(calibration=calibration, threshold=rule)
    op = operating_point(table, settings)
    val = table.select("val")
    calibrator = fit_calibrator(calibration, val.label, val.score, probabilities=True)
    expected = choose_threshold(val.label, calibrator.apply(val.score), rule=rule, target_sensitivity=0.9)
    assert op.threshold == expected and op.rule == said and op.calibrator == calibrator
    assert (op.n_patients, op.n_positive, op.aggregate) == (val.label.size, int(val.label.sum()), "max")

    ev = evaluate_table(table, settings)
    for block in (ev.metrics.val, ev.metrics.test):
        assert (block.threshold, block.threshold_score, block.threshold_rule) == (op.threshold, op.threshold_score, said)
        assert block.threshold_scale == op.scale
    assert ev.operating_point == op
    test = table.select("test")
    assert np.array_equal(ev.curves["test"].predicted, op.positive(test.score).astype(int))


def test_test_patients_change_nothing_but_the_probability_verdict():
    """Only val is fitted on: other test scores (still probabilities) give the same rule."""
    table = _table(seed=2)
    other = PatientTable(**{**table.__dict__, "score": np.where(table.split == "test", 1.0 - table.score, table.score)})
    assert operating_point(table, _settings()) == operating_point(other, _settings())


@pytest.mark.parametrize("calibration", ["none", "platt", "isotonic"])
def test_the_cut_on_the_model_scale_calls_the_same_val_patients_positive(calibration):
    table = _table(seed=7)
    op = operating_point(table, _settings(calibration=calibration))
    val = table.select("val")
    assert op.threshold_score is not None
    assert np.array_equal(op.positive(val.score), val.score >= op.threshold_score)
    assert op.threshold_score in set(val.score.tolist()) or op.threshold_score == float("-inf")


def test_a_score_that_is_not_a_probability_anywhere_is_fitted_as_a_score():
    table = _table(seed=1)
    logits = PatientTable(**{**table.__dict__, "score": np.where(table.split == "test", table.score * 10 - 5, table.score)})
    assert operating_point(table, _settings()).calibrator.feature == "logit"
    assert operating_point(logits, _settings()).calibrator.feature == "score"


def test_a_one_class_val_split_is_refused_naming_the_split():
    table = _table()
    one_class = PatientTable(**{**table.__dict__, "label": np.where(table.split == "val", 0, table.label).astype(np.int8)})
    with pytest.raises(OperatingPointError, match=r"chosen on 'val' patients of both classes; got 40 patient\(s\), 0 "
                                                  r"positive\. Re-split"):
        operating_point(one_class, _settings())


def test_the_rule_is_a_frozen_record():
    op = operating_point(_table(), _settings())
    assert isinstance(op, DecisionRule)
    with pytest.raises(AttributeError):
        op.threshold = 0.0  # type: ignore[misc]
