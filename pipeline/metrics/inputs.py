"""Labels and scores as every metric takes them: checked once, with the class counts.

``y_true`` has shape ``(N,)`` and holds 0/1; ``y_score`` has shape ``(N,)`` and holds
finite real scores (probabilities only where a metric says so).
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineInputError

#: Coverage of every interval the report gives (AUC, its difference, the proportions).
CI_LEVEL = 0.95


class UndefinedMetricError(PipelineInputError):
    """A metric cannot be computed on these data (for example only one class is present)."""


class MetricInputError(PipelineInputError):
    """Labels or scores a metric cannot take: shapes differ, labels not 0/1, scores not finite."""


def check_binary(
    y_true: np.ndarray, y_score: np.ndarray, *, name: str = "y", probability: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert labels and scores.

    Args:
        y_true: labels, shape ``(N,)``, values 0 or 1.
        y_score: scores, shape ``(N,)``, finite; in [0, 1] when ``probability``.
        name: what the arrays describe, used in error messages (e.g. ``"split 'test'"``).
        probability: require probabilities (Brier score, calibration).

    Returns:
        ``(y_true as int8, y_score as float64)``.

    Raises:
        MetricInputError: shapes differ, labels are not 0/1, scores are NaN or infinite, or
            (``probability``) outside [0, 1]; the message gives the first offending positions.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise MetricInputError(
            f"{name} labels and scores must be 1-D arrays of equal length; got shapes {y.shape} and {s.shape}."
        )
    bad_label = np.flatnonzero((y != 0) & (y != 1))
    if bad_label.size:
        raise MetricInputError(
            f"{name} labels must be 0 or 1; got {y[bad_label[:5]].tolist()} at positions {bad_label[:5].tolist()}."
        )
    bad_score = np.flatnonzero(~np.isfinite(s))
    if bad_score.size:
        raise MetricInputError(
            f"{name} scores must be finite real numbers; got {s[bad_score[:5]].tolist()} at positions "
            f"{bad_score[:5].tolist()}. Remove or fix these cases before evaluation."
        )
    outside = np.flatnonzero((s < 0.0) | (s > 1.0))
    if probability and outside.size:
        raise MetricInputError(
            f"{name} scores must be probabilities in [0, 1] for this metric; got {s[outside[:5]].tolist()} at "
            f"positions {outside[:5].tolist()}. It does not apply to logits or ratings: recalibrate them into "
            "probabilities first (evaluate.calibration: platt)."
        )
    return y.astype(np.int8), s


def require_both_classes(y: np.ndarray, name: str, minimum: int = 1) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < minimum or n_neg < minimum:
        what = "one class only" if min(n_pos, n_neg) == 0 else f"fewer than {minimum} cases of a class"
        raise UndefinedMetricError(
            f"{name} must contain at least {minimum} positive and {minimum} negative case(s); got {n_pos} positive "
            f"and {n_neg} negative ({what}). The AUC and its interval are undefined here."
        )
    return n_pos, n_neg
