"""pipeline.calibration against fits computed another way (scikit-learn, score equations)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from pipeline.calibration import CalibrationError, fit_calibrator, intercept_and_slope
from pipeline.errors import ConfigError


def _firth_by_definition(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Maximise log L + 1/2 log det I (Firth 1993) with a general-purpose optimiser."""
    design = np.stack([np.ones_like(x), x], axis=1)

    def negative(beta):
        eta = design @ beta
        p = expit(eta)
        info = design.T @ (design * (p * (1 - p))[:, None])
        return np.sum(np.logaddexp(0, eta) - y * eta) - 0.5 * np.linalg.slogdet(info)[1]

    return minimize(negative, np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12,
                                                                         "maxiter": 20_000}).x


def test_platt_is_the_firth_penalised_logistic_fit_on_the_logit():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    p = expit(-9.0 + 1.5 * (y - 0.5) + rng.normal(0, 1.0, y.size))  # all near 0, ranked well
    cal = fit_calibrator("platt", y, p, probabilities=True)
    a, b = _firth_by_definition(logit(p), y.astype(float))
    assert cal.slope == pytest.approx(b, rel=1e-5) and cal.intercept == pytest.approx(a, rel=1e-5)
    # Firth's estimate sits between zero and the (finite, here) maximum-likelihood one.
    mle = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(logit(p)[:, None], y)
    assert 0 < cal.slope < mle.coef_[0, 0]
    calibrated = cal.apply(p)
    assert np.all(np.diff(calibrated[np.argsort(p)]) >= 0)  # ranking kept
    assert abs(calibrated.mean() - y.mean()) < 0.02


def test_platt_stays_finite_when_validation_is_perfectly_separated():
    y = np.array([0] * 10 + [1] * 10)
    s = np.r_[np.linspace(1e-9, 1e-8, 10), np.linspace(1e-6, 1e-5, 10)]
    cal = fit_calibrator("platt", y, s, probabilities=True)
    out = cal.apply(s)
    assert np.isfinite(cal.slope) and cal.slope > 0
    assert out[:10].max() < 0.25 and out[10:].min() > 0.75


def test_isotonic_is_non_decreasing_and_its_score_cut_reproduces_the_calls():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = 2.0 * y + rng.normal(0, 1.5, y.size)  # logits, not probabilities
    cal = fit_calibrator("isotonic", y, s, probabilities=False)
    c = cal.apply(s)
    assert np.all(np.diff(c[np.argsort(s)]) >= -1e-12) and c.min() >= 0 and c.max() <= 1
    assert len(np.unique(c)) < len(np.unique(s))  # steps: ties the model did not have
    new = rng.normal(1.0, 2.0, 200)
    for threshold in np.unique(c):
        cut = cal.score_cut(threshold, s)
        np.testing.assert_array_equal(cal.apply(new) >= threshold, new >= cut)


def test_intercept_and_slope_of_known_miscalibration():
    rng = np.random.default_rng(2)
    true_p = expit(rng.normal(-0.5, 1.5, 20_000))
    y = (rng.random(true_p.size) < true_p).astype(int)
    ideal = intercept_and_slope(y, true_p)
    assert abs(ideal["calibration_intercept"]) < 0.05 and abs(ideal["calibration_slope"] - 1) < 0.05
    too_extreme = expit(2.0 * logit(true_p))
    assert intercept_and_slope(y, too_extreme)["calibration_slope"] == pytest.approx(0.5, abs=0.03)
    too_high = expit(logit(true_p) + 1.0)
    fitted = intercept_and_slope(y, too_high)
    # Calibration-in-the-large solves sum(y - expit(logit(p) + a)) = 0.
    assert np.sum(y - expit(logit(too_high) + fitted["calibration_intercept"])) == pytest.approx(0, abs=1e-6)
    assert fitted["calibration_intercept"] == pytest.approx(-1.0, abs=0.05)


def test_separated_probabilities_have_no_slope_and_say_why():
    out = intercept_and_slope(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9]))
    assert out["calibration_slope"] is None and "separate the classes perfectly" in out["calibration_slope_reason"]
    assert out["calibration_intercept"] is not None


def test_an_unknown_method_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"'method' must be one of \['none', 'platt', 'isotonic'\]; got 'beta'"):
        fit_calibrator("beta", np.array([0, 1]), np.array([0.2, 0.8]), probabilities=True)


def test_one_class_cannot_be_recalibrated():
    with pytest.raises(CalibrationError, match=r"needs both classes in the validation patients; got 0 positive and 4"):
        fit_calibrator("platt", np.zeros(4), np.linspace(0, 1, 4), probabilities=True)


def test_platt_converges_on_four_nearly_tied_validation_scores():
    """An untrained model's val set from the e2e run: Fisher scoring oscillated and the stage stopped."""
    y = np.array([0, 0, 1, 1])
    s = np.array([0.57132993, 0.57211141, 0.57158435, 0.57140704])
    cal = fit_calibrator("platt", y, s, probabilities=True)
    a, b = _firth_by_definition(logit(s), y.astype(float))
    assert cal.slope == pytest.approx(b, rel=1e-3) and cal.intercept == pytest.approx(a, rel=1e-3)
    assert not cal.monotone()  # it ranks val the wrong way round, which the report says


def test_platt_keeps_the_ranking_of_an_overconfident_models_tiny_probabilities():
    # A model whose every validation logit is near -130 (a demo run on an AVX2 CPU wrote
    # probabilities of 1e-60 to 1e-50, val AUC 0.92): clipped at 1e-15 before the logit
    # they all tied and the slope came out 0, calling every patient positive.
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 12)
    logits = -130.0 + 6.0 * y + rng.normal(0.0, 3.0, y.size)
    scores = expit(logits)
    assert scores.max() < 1e-45
    platt = fit_calibrator("platt", y, scores, probabilities=True)
    assert platt.slope > 0
    calibrated = platt.apply(scores)
    assert len(np.unique(calibrated)) == y.size  # no ties made
    assert np.array_equal(np.argsort(calibrated), np.argsort(scores))
    assert 0.05 < calibrated.mean() < 0.95
