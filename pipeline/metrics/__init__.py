"""Binary-classification metrics a clinical reviewer asks for, from scores alone (numpy, scipy).

Everything here takes patient-level arrays: ``y_true`` of shape ``(N,)`` holding 0/1 and
``y_score`` of shape ``(N,)`` holding finite real scores. Rank-based metrics (AUC, its
intervals, the DeLong test, ROC and PR curves, thresholds) accept any such score: a
probability, a logit, a reader's 1-5 rating. Probability-only metrics (Brier score,
reliability curve, ECE) require scores in [0, 1]; :func:`probability_reason` says why a
score is not one. Nothing here knows about models, files or params, so predictions
from any source can be evaluated.

Conventions, fixed once so every number in a report means the same thing:

* A case is called positive when ``score >= threshold``.
* AUC intervals are two-sided at ``level`` (:data:`CI_LEVEL`, 0.95, by default). DeLong
  intervals use the normal approximation on the AUC scale, clipped to [0, 1], as pROC does.
* Proportions (sensitivity, specificity, PPV, NPV) carry Wilson score intervals, which
  keep their coverage near 0 and 1 where the Wald interval collapses (Brown, Cai &
  DasGupta 2001).
* A metric that is undefined on the data (one class, no predicted positives) raises
  :class:`UndefinedMetricError` or is returned as ``None`` with a reason; never NaN.

One module per job: ``inputs`` (checks), ``auc`` (AUC, DeLong, bootstrap, paired test),
``curves`` (ROC, PR), ``thresholds`` (the operating point and its proportions),
``probabilities`` (Brier, reliability, ECE) and ``subgroups``.
"""

from __future__ import annotations

from pipeline.metrics.auc import PairedDelongResult, delong_auc_covariance, delong_test, roc_auc_ci
from pipeline.metrics.curves import average_precision, pr_curve, roc_curve
from pipeline.metrics.inputs import CI_LEVEL, MetricInputError, UndefinedMetricError, check_binary
from pipeline.metrics.probabilities import (
    brier_score,
    expected_calibration_error,
    probability_reason,
    reliability_curve,
)
from pipeline.metrics.subgroups import subgroup_auc
from pipeline.metrics.thresholds import choose_threshold, threshold_metrics, wilson_ci

__all__ = [
    "CI_LEVEL",
    "MetricInputError",
    "UndefinedMetricError",
    "PairedDelongResult",
    "check_binary",
    "probability_reason",
    "delong_auc_covariance",
    "roc_auc_ci",
    "delong_test",
    "roc_curve",
    "pr_curve",
    "average_precision",
    "choose_threshold",
    "wilson_ci",
    "threshold_metrics",
    "brier_score",
    "reliability_curve",
    "expected_calibration_error",
    "subgroup_auc",
]
