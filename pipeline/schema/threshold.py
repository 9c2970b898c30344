"""``threshold.json``: the operating point evaluate chose on the validation split, kept with the model.

``metrics.json`` reports what the operating point does; this file is the rule itself, for
whoever applies it to new cases (``predict``, ``load_classifier``, another platform): the
cut on the model's own score scale, the same cut on the recalibrated scale, the rule that
chose it, every parameter of the recalibration map, the split it was chosen on, and the
digest of the model file whose scores it was chosen from (``train_summary.json``'s
``model_digest``), so that it is never applied to another model by mistake.

Floats are written with every digit (``repr``): a threshold is one of the observed scores
and a confident model's can be 1e-7, and the map's parameters rebuild the map exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.schema.json_records import JsonFile


@dataclass(frozen=True)
class CalibrationMap:
    """The recalibration map fitted on val (:class:`pipeline.calibration.Calibrator`), every parameter.

    Attributes:
        method: ``none``, ``platt`` or ``isotonic``.
        regressor: ``logit`` (the scores were probabilities; the map works on their logit)
            or ``score``.
        n_fitted: validation patients it was fitted on.
        intercept, slope: Platt's ``a`` and ``b`` in ``expit(a + b * regressor)``; ``None`` otherwise.
        knots_x, knots_y: the isotonic steps on the regressor's scale (linear between
            knots, clipped outside); empty otherwise.
    """

    method: str
    regressor: str
    n_fitted: int
    intercept: float | None
    slope: float | None
    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]


@dataclass(frozen=True)
class ThresholdRecord(JsonFile):
    """``threshold.json``: a series (or patient) is positive when its score is ``>= threshold_score``.

    Attributes:
        threshold_score: the cut on the model's score scale; ``None`` when there is no such
            cut, with the reason in ``threshold_score_reason``.
        threshold: the same cut on the recalibrated scale (``val.threshold`` of metrics.json).
        threshold_scale: what ``threshold`` is measured on.
        rule: ``youden`` or ``sensitivity>=<target>`` (``evaluate.threshold``).
        chosen_on: the split it was chosen on (``val``, the internal validation split).
        n_patients, n_positive: the patients it was chosen on.
        aggregate: how a patient's series scores were combined when choosing it.
        calibration: the recalibration map fitted on the same patients.
        model_digest: the sealed digest of the model file whose scores were used; ``None``
            when evaluate was not given ``train_summary.json``.
        predictions_sha256: SHA-256 of the ``predictions.csv`` it was chosen from.
    """

    WHAT: ClassVar[str] = "threshold file"
    FIX: ClassVar[str] = "It is written by the evaluate stage: run it again (dvc repro evaluate)."
    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"threshold_score_reason"})

    threshold_score: float | None
    threshold_score_reason: str | None
    threshold: float
    threshold_scale: str
    rule: str
    chosen_on: str
    n_patients: int
    n_positive: int
    aggregate: str
    calibration: CalibrationMap
    model_digest: str | None
    predictions_sha256: str
