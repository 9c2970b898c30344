"""The explain stage's folder: Grad-CAM overlays of chosen test cases, and the record that lists them.

The stage gets its output folder from ``dvc.yaml`` (``reports/gallery``) and writes::

    gallery.json                  GalleryRecord: the cases, the layer, the operating point
    <group>-<rank>.png            one overlay per case (the slice where the map peaks, in 3D)

The cases are test patients at the operating point chosen on the internal validation
split (the one :func:`pipeline.report.operating_point.operating_point` chooses, as
evaluate and the external stage do): the most confident true positives, the highest-
scored false positives and the lowest-scored false negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pipeline.schema.json_records import JsonFile
from pipeline.schema.threshold import ThresholdRecord

GALLERY_FILE = "gallery.json"
#: The groups, in the order the report shows them, with the words it uses.
GALLERY_GROUPS: dict[str, str] = {
    "true_positive": "true positives (highest scores)",
    "false_positive": "false positives (highest scores)",
    "false_negative": "false negatives (lowest scores)",
}


@dataclass(frozen=True)
class GalleryCase:
    """One overlay of the gallery.

    Attributes:
        group: a key of :data:`GALLERY_GROUPS`.
        rank: 1 for the most confident case of its group.
        patient_id: the patient's pseudonym, as in ``predictions.csv``.
        series_key: the series drawn: the patient's highest-scored test series.
        score: that series' score in ``predictions.csv``.
        patient_score: the patient's aggregated score (``evaluate.aggregate``), the one
            the operating point was applied to.
        slice_index: the axial slice drawn (where the map peaks) on the model's input
            grid; ``None`` for a 2D model.
        flat: the map held no positive evidence at ``layer`` (drawn as no overlay).
        image: the PNG's file name in the gallery's folder; "" when the case could not be
            read (``reason`` says why).
        reason: why there is no image; "" otherwise.
    """

    group: str
    rank: int
    patient_id: str
    series_key: str
    score: float
    patient_score: float
    slice_index: int | None
    flat: bool
    image: str
    reason: str


@dataclass(frozen=True)
class GalleryRecord(JsonFile):
    """``gallery.json``: the explained test cases and how they were chosen.

    Attributes:
        split: ``test``.
        layer: the ResNet stage the Grad-CAM maps come from (``explain.layer``).
        layer_cells: that stage's cells along each axis of the model input.
        per_group: cases asked for per group (``explain.cases_per_group``).
        true_positives, false_positives, false_negatives: test patients in each group
            at the operating point (the gallery shows at most ``per_group`` of each).
        operating_point: the rule applied, as ``threshold.json`` records it; the report
            refuses a gallery chosen at another operating point or from other predictions.
        model_digest: the sealed digest of the model file whose maps these are.
        cases: the overlays, by group then rank.
        note: what the reader should know (no case in a group, a case not read); "" otherwise.
    """

    WHAT: ClassVar[str] = "Grad-CAM gallery"
    FIX: ClassVar[str] = "It is written by the explain stage: run it again (dvc repro explain)."

    split: str
    layer: str
    layer_cells: tuple[int, ...]
    per_group: int
    true_positives: int
    false_positives: int
    false_negatives: int
    operating_point: ThresholdRecord
    model_digest: str
    cases: tuple[GalleryCase, ...]
    note: str
