"""``localisation.json``: whether the Grad-CAM peak of each true-positive test case lies on its lesion.

Written by ``pipeline.stages.localise`` where lesion ground truth exists (the demo's
``data/demo/lesions.csv``); for a cohort without it, ``cases`` is 0 and ``note`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.schema.json_records import JsonFile
from pipeline.schema.threshold import ThresholdRecord


@dataclass(frozen=True)
class LocalisationRecord(JsonFile):
    """The localisation check on one split.

    Attributes:
        split: ``test``.
        cases: true-positive cases with a lesion centre, whose map was scored.
        layer: the ResNet stage the Grad-CAM map comes from.
        layer_cells: that stage's cells along each axis of the model input.
        peak_in_lesion: share of ``cases`` whose map peak lies inside the lesion or
            within ``margin_mm`` of it; ``None`` when ``cases`` is 0.
        chance: mean share of each case's body voxels within the same reach: what a
            peak dropped at random in the body would score; ``None`` when ``cases`` is 0.
        margin_mm: the reach beyond the lesion's edge, mm.
        threshold_score: the validation-chosen cut that made a case a true positive;
            ``None`` when there is none on the score scale (``operating_point`` says why).
        true_positives: true-positive test series, with or without ground truth.
        flat_maps: of ``cases``, those whose map was flat (no positive Grad-CAM evidence
            anywhere at ``layer``): counted as misses.
        operating_point: the rule applied, chosen on the validation split by the function
            evaluate uses, as ``threshold.json`` records it; the report refuses a check
            made at another operating point or from other predictions.
        model_digest: the sealed digest of the model file whose maps these are.
        note: why ``cases`` is 0 (no ground truth, a 2D model...), or how many true positives
            could not be read and why; "" otherwise.
    """

    WHAT: ClassVar[str] = "localisation file"
    FIX: ClassVar[str] = "It is written by the localise stage: run it again (dvc repro localise)."

    split: str
    cases: int
    layer: str
    layer_cells: tuple[int, ...]
    peak_in_lesion: float | None
    chance: float | None
    margin_mm: float
    threshold_score: float | None
    true_positives: int
    flat_maps: int
    operating_point: ThresholdRecord
    model_digest: str
    note: str
