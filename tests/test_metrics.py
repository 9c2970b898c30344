"""pipeline.metrics against independent definitions written here (no shared code paths)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline import metrics as M
from pipeline.errors import ConfigError, PipelineInputError


def _tied_sample(rng: np.random.Generator, m: int, n: int, decimals: int = 1):
    """Scores rounded to ``decimals`` so many ties occur within and across classes."""
    pos = np.clip(rng.normal(0.6, 0.2, m), 0, 1).round(decimals)
    neg = np.clip(rng.normal(0.4, 0.2, n), 0, 1).round(decimals)
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    s = np.r_[pos, neg]
    order = rng.permutation(m + n)
    return y[order], s[order]


def _structural_components(y: np.ndarray, scores: np.ndarray):
    """DeLong et al. (1988) by definition: the O(m n) kernel psi, V10, V01 and S = S10/m + S01/n."""
    scores = np.atleast_2d(scores)
    k = scores.shape[0]
    pos = [scores[r][y == 1] for r in range(k)]
    neg = [scores[r][y == 0] for r in range(k)]
    m, n = len(pos[0]), len(neg[0])
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    aucs = np.zeros(k)
    for r in range(k):
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                psi[i, j] = 1.0 if pos[r][i] > neg[r][j] else (0.5 if pos[r][i] == neg[r][j] else 0.0)
        aucs[r] = psi.mean()
        v10[r] = psi.mean(axis=1)
        v01[r] = psi.mean(axis=0)
    s10 = np.zeros((k, k))
    s01 = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            s10[a, b] = np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1)
            s01[a, b] = np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1)
    return aucs, s10 / m + s01 / n


def test_delong_variance_and_ci_match_structural_components_with_ties():
    rng = np.random.default_rng(3)
    y, s = _tied_sample(rng, 23, 31)
    assert len(np.unique(s)) < 15  # the sample really has ties
    auc_ref, cov_ref = _structural_components(y, s)
    auc, cov = M.delong_auc_covariance(y, s)
    np.testing.assert_allclose(auc, auc_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-10, atol=0)

    z = stats.norm.ppf(0.975)
    a, lo, hi = M.roc_auc_ci(y, s, method="delong")
    assert a == pytest.approx(auc_ref[0], abs=1e-12)
    assert lo == pytest.approx(auc_ref[0] - z * np.sqrt(cov_ref[0, 0]), abs=1e-10)
    assert hi == pytest.approx(auc_ref[0] + z * np.sqrt(cov_ref[0, 0]), abs=1e-10)


def test_delong_covariance_of_two_scores_matches_definition():
    rng = np.random.default_rng(5)
    y, s1 = _tied_sample(rng, 17, 22)
    s2 = np.clip(s1 + rng.normal(0, 0.15, s1.size), 0, 1).round(1)
    aucs_ref, cov_ref = _structural_components(y, np.stack([s1, s2]))
    aucs, cov = M.delong_auc_covariance(y, np.stack([s1, s2]))
    np.testing.assert_allclose(aucs, aucs_ref, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-10)

    result = M.delong_test(y, s1, s2)
    var = cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1]
    z = (aucs_ref[0] - aucs_ref[1]) / np.sqrt(var)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_delong_test_detects_a_better_model_and_not_an_identical_one():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 600)
    good = np.clip(0.5 + 0.35 * (y - 0.5) + rng.normal(0, 0.15, y.size), 0, 1)
    noise = rng.random(y.size)
    better = M.delong_test(y, good, noise)
    assert better.difference > 0.2 and better.p_value < 1e-6
    same = M.delong_test(y, good, good)
    assert same.difference == 0.0 and same.p_value == 1.0 and same.z is None


def test_auc_matches_mann_whitney_u():
    rng = np.random.default_rng(0)
    y, s = _tied_sample(rng, 40, 60)
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert M.roc_auc_ci(y, s, method="delong")[0] == pytest.approx(u / (40 * 60), abs=1e-12)


def test_bootstrap_ci_is_close_to_delong_on_a_large_sample():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    s = np.clip(rng.normal(0.45 + 0.15 * y, 0.2), 0, 1).round(2)
    auc, lo_d, hi_d = M.roc_auc_ci(y, s, method="delong")
    auc_b, lo_b, hi_b = M.roc_auc_ci(y, s, method="bootstrap", n_boot=1000, seed=4)
    assert auc_b == auc
    assert abs(lo_b - lo_d) < 0.006 and abs(hi_b - hi_d) < 0.006
    assert lo_b < auc < hi_b
    assert M.roc_auc_ci(y, s, method="bootstrap", n_boot=200, seed=4) == M.roc_auc_ci(
        y, s, method="bootstrap", n_boot=200, seed=4
    )


def test_perfect_separation_gives_a_degenerate_but_finite_interval():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert M.roc_auc_ci(y, s, method="delong") == (1.0, 1.0, 1.0)


def test_one_class_is_an_error_not_nan():
    with pytest.raises(M.UndefinedMetricError, match="one class only"):
        M.roc_auc_ci(np.zeros(5, int), np.linspace(0, 1, 5), method="delong")
    with pytest.raises(M.UndefinedMetricError, match="at least 2 positive"):
        M.roc_auc_ci(np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3]), method="delong")


def test_bad_scores_and_labels_are_rejected_with_positions():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(M.MetricInputError, match=r"scores must be finite real numbers; got \[inf, nan\] at positions \[1, 3\]"):
        M.roc_auc_ci(y, np.array([0.1, np.inf, 0.2, np.nan]), method="delong")
    with pytest.raises(M.MetricInputError, match=r"scores must be probabilities in \[0, 1\] for this metric; got "
                                                 r"\[1\.5, -2\.0\] at positions \[1, 3\]\. It does not apply to logits"):
        M.brier_score(y, np.array([0.1, 1.5, 0.2, -2.0]))
    with pytest.raises(M.MetricInputError, match=r"must be probabilities in \[0, 1\]"):
        M.expected_calibration_error(y, np.array([0.1, 1.5, 0.2, 0.3]), n_bins=10)
    with pytest.raises(M.MetricInputError, match=r"labels must be 0 or 1; got \[2\] at positions \[2\]"):
        M.roc_auc_ci(np.array([0, 1, 2, 1]), np.array([0.1, 0.5, 0.2, 0.3]), method="delong")
    with pytest.raises(M.MetricInputError, match=r"'groups' must have shape \(4,\); got \(3,\)"):
        M.subgroup_auc(y, np.array([0.1, 0.5, 0.2, 0.3]), np.array(["a", "b", "c"]), method="delong")
    with pytest.raises(M.MetricInputError, match=r"'successes' must be in \[0, 10\]; got 11"):
        M.wilson_ci(11, 10)
    # Input errors, shown to a user as one line by the stage edge.
    assert issubclass(M.MetricInputError, PipelineInputError) and issubclass(M.UndefinedMetricError, PipelineInputError)


def test_interval_and_threshold_settings_are_required_where_they_matter():
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.5, 0.2, 0.3])
    with pytest.raises(ConfigError, match=r"'method' must be one of \['delong', 'bootstrap'\]; got 'wald'"):
        M.roc_auc_ci(y, s, method="wald")
    with pytest.raises(ConfigError, match=r"'n_boot' must be a positive integer with method='bootstrap'; got None"):
        M.roc_auc_ci(y, s, method="bootstrap", seed=0)
    with pytest.raises(ConfigError, match=r"'seed' must be an integer with method='bootstrap'; got None\. Pass base"):
        M.roc_auc_ci(y, s, method="bootstrap", n_boot=100)
    with pytest.raises(ConfigError, match=r"'level' must be in \(0, 1\); got 95"):
        M.roc_auc_ci(y, s, method="delong", level=95)
    # Checked before the data: a subgroup whose levels all have one class still refuses.
    with pytest.raises(ConfigError, match=r"'n_boot' must be a positive integer with method='bootstrap'; got 0"):
        M.subgroup_auc(y, s, np.array(["a", "b", "c", "d"]), method="bootstrap", n_boot=0, seed=1)
    with pytest.raises(ConfigError, match=r"'rule' must be one of \['youden', 'sensitivity'\]; got 'f1'"):
        M.choose_threshold(y, s, rule="f1")
    with pytest.raises(ConfigError, match=r"'target_sensitivity' must be in \(0, 1\] with rule='sensitivity'; got None"):
        M.choose_threshold(y, s, rule="sensitivity")
    with pytest.raises(ConfigError, match=r"'n_bins' must be a positive integer; got 0"):
        M.reliability_curve(y, s, n_bins=0)


def test_roc_curve_matches_counting_by_hand():
    rng = np.random.default_rng(2)
    y, s = _tied_sample(rng, 12, 15)
    fpr, tpr, thr = M.roc_curve(y, s)
    assert thr[0] == np.inf and fpr[0] == 0 and tpr[0] == 0
    assert np.all(np.diff(thr) < 0)
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:]):
        assert t == pytest.approx(np.mean(s[y == 1] >= th))
        assert f == pytest.approx(np.mean(s[y == 0] >= th))
    assert fpr[-1] == 1 and tpr[-1] == 1


def test_youden_threshold_recomputed_by_hand_and_applied():
    rng = np.random.default_rng(8)
    y, s = _tied_sample(rng, 30, 40, decimals=2)
    t = M.choose_threshold(y, s, rule="youden")
    best = max(
        (np.mean(s[y == 1] >= c) + np.mean(s[y == 0] < c) - 1, c) for c in np.unique(s)
    )
    assert t == best[1]

    at = M.threshold_metrics(y, s, t)
    tp = sum(1 for yi, si in zip(y, s) if yi == 1 and si >= t)
    fn = sum(1 for yi, si in zip(y, s) if yi == 1 and si < t)
    tn = sum(1 for yi, si in zip(y, s) if yi == 0 and si < t)
    fp = sum(1 for yi, si in zip(y, s) if yi == 0 and si >= t)
    assert (at["tp"], at["fn"], at["tn"], at["fp"]) == (tp, fn, tn, fp)
    assert at["sensitivity"] == tp / (tp + fn)
    assert at["specificity"] == tn / (tn + fp)
    assert at["ppv"] == tp / (tp + fp)
    assert at["npv"] == tn / (tn + fn)
    lo, hi = at["sensitivity_ci95"]
    assert lo < at["sensitivity"] < hi


def test_target_sensitivity_threshold_is_the_highest_reaching_the_target():
    rng = np.random.default_rng(9)
    y, s = _tied_sample(rng, 50, 50, decimals=2)
    t = M.choose_threshold(y, s, rule="sensitivity", target_sensitivity=0.9)
    assert np.mean(s[y == 1] >= t) >= 0.9
    higher = np.unique(s[s > t])
    assert all(np.mean(s[y == 1] >= h) < 0.9 for h in higher)


def test_wilson_interval_known_values():
    # 8/10: Wilson 95% interval 0.4902-0.9433 (Newcombe 1998, Table I method 3).
    lo, hi = M.wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = M.wilson_ci(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    with pytest.raises(M.UndefinedMetricError, match="'total' must be positive"):
        M.wilson_ci(0, 0)


def test_undefined_ppv_is_none_with_a_reason():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    at = M.threshold_metrics(y, s, 0.9)
    assert at["ppv"] is None and at["ppv_ci95"] is None
    assert "no case called positive" in at["undefined"]["ppv"]
    assert at["npv"] == 0.5


def test_brier_ece_and_reliability_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.05, 0.15, 0.15, 0.85, 0.95, 1.0])
    assert M.brier_score(y, s) == pytest.approx(np.mean((s - y) ** 2))
    curve = M.reliability_curve(y, s, n_bins=2)
    np.testing.assert_allclose(curve["count"], [3, 3])
    np.testing.assert_allclose(curve["mean_predicted"], [0.35 / 3, 2.8 / 3])
    np.testing.assert_allclose(curve["fraction_positive"], [1 / 3, 2 / 3])
    expected = 0.5 * abs(1 / 3 - 0.35 / 3) + 0.5 * abs(2 / 3 - 2.8 / 3)
    assert M.expected_calibration_error(y, s, n_bins=2) == pytest.approx(expected)


def test_average_precision_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # Ranked: 1 (P=1, R=.5), 0, 1 (P=2/3, R=1), 0 -> AP = .5*1 + .5*2/3
    assert M.average_precision(y, s) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_subgroups_report_undefined_levels_with_reason():
    rng = np.random.default_rng(4)
    y = np.r_[rng.integers(0, 2, 40), [0, 0, 0], [1, 0]]
    y[:2] = [0, 1]
    y[2:4] = [0, 1]
    s = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, y.size), 0, 1)
    groups = np.array(["A"] * 20 + ["B"] * 20 + ["C"] * 3 + ["D"] * 2)
    out = M.subgroup_auc(y, s, groups, method="delong", threshold=0.5)
    assert list(out) == ["A", "B", "C", "D"]
    assert out["C"]["auc"] is None and out["C"]["auc_ci95"] is None
    assert "only negative cases" in out["C"]["reason"]
    assert out["C"]["n_patients"] == 3 and out["C"]["sensitivity"] is None
    assert out["C"]["specificity"] == pytest.approx(np.mean(s[groups == "C"] < 0.5))
    assert out["D"]["auc"] in (0.0, 1.0) and out["D"]["auc_ci95"] is None
    assert "fewer than 2 cases" in out["D"]["reason"]
    mask = groups == "A"
    assert out["A"]["auc"] == pytest.approx(M.roc_auc_ci(y[mask], s[mask], method="delong")[0])
    assert out["A"]["reason"] is None and len(out["A"]["auc_ci95"]) == 2


def _ratings(rng: np.random.Generator, m: int, n: int):
    """A reader's 1-5 ratings: five levels, so nearly every pair across classes is a tie or a step."""
    pos = np.clip(np.round(rng.normal(3.6, 1.1, m)), 1, 5)
    neg = np.clip(np.round(rng.normal(2.4, 1.1, n)), 1, 5)
    y = np.r_[np.ones(m, int), np.zeros(n, int)]
    order = rng.permutation(m + n)
    return y[order], np.r_[pos, neg][order]


def test_auc_and_delong_interval_of_integer_ratings_match_the_definition():
    rng = np.random.default_rng(21)
    y, rating = _ratings(rng, 26, 34)
    assert set(np.unique(rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    auc_ref, cov_ref = _structural_components(y, rating)
    auc, lo, hi = M.roc_auc_ci(y, rating, method="delong")
    z = stats.norm.ppf(0.975)
    assert auc == pytest.approx(auc_ref[0], abs=1e-12)
    assert lo == pytest.approx(auc_ref[0] - z * np.sqrt(cov_ref[0, 0]), abs=1e-10)
    assert hi == pytest.approx(min(1.0, auc_ref[0] + z * np.sqrt(cov_ref[0, 0])), abs=1e-10)
    # Any strictly increasing transform leaves rank metrics unchanged: a logit is as good as its probability.
    assert M.roc_auc_ci(y, 10.0 * rating - 33.0, method="delong") == (auc, lo, hi)


def test_paired_delong_between_a_rating_and_a_logit_matches_the_definition():
    rng = np.random.default_rng(22)
    y, rating = _ratings(rng, 30, 30)
    model_logit = 2.0 * (y - 0.5) + rng.normal(0, 1.3, y.size)  # roughly -5..5, not a probability
    aucs_ref, cov_ref = _structural_components(y, np.stack([rating, model_logit]))
    result = M.delong_test(y, rating, model_logit)
    var = cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1]
    z = (aucs_ref[0] - aucs_ref[1]) / np.sqrt(var)
    assert (result.auc_a, result.auc_b) == pytest.approx(tuple(aucs_ref), abs=1e-12)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_thresholds_and_curves_work_on_ratings_and_probability_metrics_say_why_not():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    rating = np.array([1, 2, 3, 3, 4, 5, 2, 5], dtype=float)
    t = M.choose_threshold(y, rating, rule="youden")
    assert t in (3.0, 4.0)
    _, _, thr = M.roc_curve(y, rating)
    assert thr.tolist() == [np.inf, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert M.probability_reason(rating) == (
        "not applicable: the scores range from 1 to 5, so they are not probabilities in [0, 1] (logits or ratings); "
        "Brier score, ECE and calibration need probabilities"
    )
    assert M.probability_reason(np.array([0.0, 0.3, 1.0])) is None
