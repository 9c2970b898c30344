"""Measures of probabilities: the Brier score, the reliability curve and the ECE."""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError
from pipeline.metrics.inputs import check_binary


def probability_reason(y_score: np.ndarray) -> str | None:
    """Why scores are not probabilities (``None`` when they all lie in [0, 1]).

    The reason is written into metrics.json and the report in place of a Brier score or
    ECE, so a reader of either sees why the number is missing.
    """
    s = np.asarray(y_score, dtype=float)
    if s.size and np.all((s >= 0.0) & (s <= 1.0)):
        return None
    return (
        f"not applicable: the scores range from {s.min():.4g} to {s.max():.4g}, so they are not probabilities in "
        "[0, 1] (logits or ratings); Brier score, ECE and calibration need probabilities"
    )


def brier_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean squared difference between probability and outcome; 0 is perfect, 0.25 is a coin."""
    y, s = check_binary(y_true, y_score, probability=True)
    return float(np.mean((s - y) ** 2))


def reliability_curve(y_true: np.ndarray, y_score: np.ndarray, *, n_bins: int) -> dict[str, np.ndarray]:
    """Observed event rate against mean predicted probability in equal-width bins.

    Bins are ``[0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]``; empty bins are left out.

    Returns:
        Arrays of shape ``(B',)`` for the ``B'`` non-empty bins: ``bin_lower``,
        ``bin_upper``, ``mean_predicted``, ``fraction_positive``, ``count``.
    """
    y, s = check_binary(y_true, y_score, probability=True)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"'n_bins' must be a positive integer; got {n_bins!r}.")
    index = np.minimum((s * n_bins).astype(int), n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    sum_pred = np.bincount(index, weights=s, minlength=n_bins)
    sum_pos = np.bincount(index, weights=y.astype(float), minlength=n_bins)
    keep = count > 0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "bin_lower": edges[:-1][keep],
        "bin_upper": edges[1:][keep],
        "mean_predicted": sum_pred[keep] / count[keep],
        "fraction_positive": sum_pos[keep] / count[keep],
        "count": count[keep],
    }


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, *, n_bins: int) -> float:
    """ECE: bin-size-weighted mean of ``|observed rate - mean predicted|`` over equal-width bins."""
    curve = reliability_curve(y_true, y_score, n_bins=n_bins)
    weights = curve["count"] / curve["count"].sum()
    return float(np.sum(weights * np.abs(curve["fraction_positive"] - curve["mean_predicted"])))
