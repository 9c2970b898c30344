"""The evaluate stage's outputs: their paths (:class:`EvaluateOutputs`) and ``metrics.json``.

The stage builds :class:`EvaluateOutputs` from its command line in ``dvc.yaml`` and the
writers take every path from it. :class:`MetricsRecord` is ``metrics.json``: the report
reads it by attribute, the writer dumps it, and any tool can read the file back with
:meth:`MetricsRecord.read`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from pipeline.schema.json_records import JsonFile


#: Curves written per split as DVC plot files, ``<folder>/<split>.json`` (one file per
#: curve and split: DVC's templates draw one line per file and revision).
PLOT_KINDS: tuple[str, ...] = ("roc", "pr", "calibration", "confusion")
#: The split whose ROC is the headline curve, written to :attr:`EvaluateOutputs.roc`.
HEADLINE_SPLIT = "test"


def _out(help_text: str) -> Any:
    """A required field with the help text of its command-line option."""
    return field(metadata={"help": help_text})


@dataclass(frozen=True)
class EvaluateOutputs:
    """Every path the evaluate stage writes, each one given on its command line in ``dvc.yaml``.

    The field names are the stage's options (``roc_png`` is ``--roc-png``), and each value
    is one ``outs``/``metrics``/``plots`` entry of the stage in ``dvc.yaml``.
    """

    metrics: Path = _out("metrics.json: every number of the evaluation, per split")
    roc: Path = _out(f"DVC plot JSON of the {HEADLINE_SPLIT} split's ROC curve (the headline curve)")
    roc_plots: Path = _out(f"folder of the other splits' ROC curves, <split>.json (the {HEADLINE_SPLIT} one is --roc)")
    pr_plots: Path = _out("folder of precision-recall curves, <split>.json")
    calibration_plots: Path = _out("folder of reliability curves after recalibration, <split>.json")
    confusion_plots: Path = _out("folder of (actual, predicted) rows per patient, <split>.json")
    roc_png: Path = _out("ROC figure (PNG)")
    pr_png: Path = _out("precision-recall figure (PNG)")
    calibration_png: Path = _out("reliability diagram with the score histogram (PNG)")
    report: Path = _out("report.html: the self-contained page for clinicians and reviewers")
    methods: Path = _out("methods.md: the methods paragraph and TRIPOD+AI checklist of this run")
    threshold_file: Path = _out("threshold.json: the operating point chosen on val, on the model's score scale, "
                                "with the recalibration map and the model's digest (what predict applies)")

    def __post_init__(self) -> None:
        for name, value in self.paths().items():
            object.__setattr__(self, name, Path(value))

    def paths(self) -> dict[str, Path]:
        """Field name -> path, in declaration order: the stage's declared outputs."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def plot_file(self, kind: str, split: str) -> Path:
        """The DVC plot file of one curve (one of :data:`PLOT_KINDS`) and one split."""
        if kind == "roc" and split == HEADLINE_SPLIT:
            return self.roc
        return getattr(self, f"{kind}_plots") / f"{split}.json"


# Intervals are two-sided at 95% (pipeline.metrics.CI_LEVEL), hence the ``_ci95`` names.
Interval = tuple[float, float]


@dataclass(frozen=True)
class Confusion:
    """Patients per cell at the threshold: true/false positives and negatives."""

    tp: int
    fp: int
    tn: int
    fn: int


@dataclass(frozen=True)
class SubgroupLevel:
    """One level of a subgroup column (``auc`` or its interval ``None`` where undefined, ``reason`` says why)."""

    n_patients: int
    n_positive: int
    n_negative: int
    auc: float | None
    auc_ci95: Interval | None
    reason: str | None
    sensitivity: float | None
    specificity: float | None


@dataclass(frozen=True)
class OperatingPoint:
    """A reader's sensitivity and specificity when calling ratings ``>= cut`` positive."""

    cut: float
    sensitivity: float
    specificity: float


@dataclass(frozen=True)
class ReaderComparison:
    """A reader against the model on the patients the reader rated (paired DeLong test; reader minus model)."""

    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"missing_reason"})

    n: int
    n_positive: int
    n_missing: int
    auc: float | None
    auc_ci95: Interval | None
    model_auc: float | None
    delta_auc_vs_model: float | None
    delta_auc_ci95: Interval | None
    p_value: float | None
    operating_points: tuple[OperatingPoint, ...] | None
    reason: str | None
    missing_reason: str | None


@dataclass(frozen=True)
class SplitMetrics:
    """One split's block: discrimination of the model's score, the operating point chosen on
    val (on the calibrated score), calibration before and after, counts, subgroups, readers.

    ``not_applicable`` and ``undefined`` give the reason for each metric that is ``None``.
    """

    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"not_applicable", "readers", "subgroups_skipped", "undefined"})

    auc: float
    auc_ci95: Interval
    auc_ci95_low: float
    auc_ci95_high: float
    auc_ci_method: str
    auc_calibrated: float
    threshold: float
    threshold_scale: str
    threshold_score: float | None
    threshold_rule: str
    threshold_source: str
    sensitivity: float | None
    sensitivity_ci95: Interval | None
    specificity: float | None
    specificity_ci95: Interval | None
    ppv: float | None
    ppv_ci95: Interval | None
    npv: float | None
    npv_ci95: Interval | None
    confusion: Confusion
    calibration_method: str
    calibration_fitted_on: str
    brier: float | None
    ece: float | None
    calibration_intercept: float | None
    calibration_slope: float | None
    brier_uncalibrated: float | None
    ece_uncalibrated: float | None
    calibration_intercept_uncalibrated: float | None
    calibration_slope_uncalibrated: float | None
    not_applicable: Mapping[str, str]
    average_precision: float
    n_patients: int
    n_positive: int
    n_negative: int
    n_series: int
    subgroups: Mapping[str, Mapping[str, SubgroupLevel]]
    readers: Mapping[str, ReaderComparison]
    subgroups_skipped: Mapping[str, str]
    undefined: Mapping[str, str]


@dataclass(frozen=True)
class CalibrationFit:
    """The recalibration map fitted on val: Platt's ``intercept``/``slope`` or isotonic ``steps``."""

    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"intercept", "slope", "estimator", "steps", "note"})

    method: str
    regressor: str
    n_fitted: int
    intercept: float | None
    slope: float | None
    estimator: str | None
    steps: int | None
    fitted_on: str
    note: str | None


@dataclass(frozen=True)
class ModelComparison:
    """This model (``auc``) against another model's predictions on the same patients."""

    split: str
    method: str
    n_patients: int
    n_positive: int
    auc: float
    auc_other: float
    auc_difference: float
    auc_difference_ci95: Interval
    z: float | None
    p_value: float


@dataclass(frozen=True)
class FoldAuc:
    """One cross-validation fold: its model's AUC on the patients it held out."""

    fold: int
    auc: float
    auc_ci95: Interval
    n_patients: int
    n_positive: int


@dataclass(frozen=True)
class CrossValidation:
    """``metrics.json``'s ``cv`` block (``split.folds`` >= 2).

    ``auc`` and ``auc_ci95`` are those of the pooled out-of-fold predictions (every patient
    outside test scored once, by the fold model that did not train on them); ``auc_mean``
    and ``auc_sd`` summarise the per-fold AUCs. ``oof`` is the pooled patients' full block,
    with the threshold and the recalibration map chosen on them; ``test`` is the test split
    scored by the mean of the fold models' probabilities, called at that threshold.
    """

    k: int
    auc: float
    auc_ci95: Interval
    auc_mean: float
    auc_sd: float
    folds: tuple[FoldAuc, ...]
    calibration: CalibrationFit
    oof: SplitMetrics
    test: SplitMetrics


@dataclass(frozen=True)
class MetricsRecord(JsonFile):
    """``metrics.json``: ``test`` and ``val`` blocks, the calibration map, the optional comparison
    and cross-validation (``cv``, only with ``split.folds`` >= 2)."""

    WHAT: ClassVar[str] = "metrics file"
    FIX: ClassVar[str] = "It is written by the evaluate stage: run it again (dvc repro evaluate)."
    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"comparison", "cv"})

    test: SplitMetrics
    val: SplitMetrics
    calibration: CalibrationFit
    comparison: ModelComparison | None
    cv: CrossValidation | None

    def split(self, name: str) -> SplitMetrics:
        """The block of split ``name`` (``"val"`` or ``"test"``)."""
        return {"val": self.val, "test": self.test}[name]
