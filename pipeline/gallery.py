"""The report's Grad-CAM gallery: where the model looked in the test cases it got most right and most wrong.

Cases are chosen per patient, as every decision of the report is made: the test
patients are called positive by the operating point chosen on the internal validation
split (:func:`pipeline.report.operating_point.operating_point`, the rule evaluate and the
external stage apply), and of each group the most telling are kept: the true positives
and the false positives with the highest scores, the false negatives with the lowest.
Each is drawn from its highest-scored test series, scored again by the model file with
its Grad-CAM map (:mod:`pipeline.explain`), on the axial slice where the map peaks.

A re-scored series must get the score ``predictions.csv`` holds for it: a model file
that is not the one those predictions came from (a stale output) is refused rather than
explained.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import EvaluateConfig, ExplainConfig
from pipeline.digests import sha256_file
from pipeline.errors import PipelineInputError
from pipeline.outputs import staged_folder, write_atomic
from pipeline.rescoring import check_rescored
from pipeline.report.operating_point import DecisionRule, operating_point, threshold_record
from pipeline.report.predictions import PatientTable, read_predictions
from pipeline.schema.gallery import GALLERY_FILE, GALLERY_GROUPS, GalleryCase, GalleryRecord
from pipeline.schema.tables import PREDICTION_REQUIRED
from pipeline.tables import read_rows


class GalleryError(PipelineInputError):
    """The gallery cannot be drawn from these files (a series ingest did not list).

    A model file whose scores are not those of the predictions raises
    :class:`pipeline.rescoring.StaleScoresError` instead.
    """


@dataclass(frozen=True)
class GallerySummary:
    """What one run drew; :meth:`line` is the stage's one-line report."""

    out_dir: Path
    record: GalleryRecord

    def line(self) -> str:
        r = self.record
        drawn = sum(1 for c in r.cases if c.image)
        counts = f"{r.true_positives} TP, {r.false_positives} FP, {r.false_negatives} FN test patients"
        flat = sum(1 for c in r.cases if c.flat)
        flat_note = f"; {flat} map(s) flat (no positive evidence at {r.layer})" if flat else ""
        note = f"; {r.note}" if r.note else ""
        return (f"explain: {drawn} Grad-CAM overlays ({r.layer}, {'x'.join(map(str, r.layer_cells))} cells) of "
                f"{counts} at the validation-chosen operating point{flat_note}{note}; {self.out_dir / GALLERY_FILE}")


def rank_groups(table: PatientTable, rule: DecisionRule) -> dict[str, list[int]]:
    """Indices into ``table`` of its test patients in each group, most telling first.

    True and false positives by score, highest first; false negatives by score, lowest
    first. Ties keep the table's order (patient pseudonym), so the choice is reproducible.
    """
    test = np.flatnonzero(table.split == "test")
    called = rule.positive(table.score[test])
    label = table.label[test]
    members = {
        "true_positive": test[called & (label == 1)],
        "false_positive": test[called & (label == 0)],
        "false_negative": test[~called & (label == 1)],
    }
    ranked = {}
    for group, indices in members.items():
        scores = table.score[indices]
        order = np.argsort(scores if group == "false_negative" else -scores, kind="stable")
        ranked[group] = [int(i) for i in indices[order]]
    return ranked


def build_gallery(
    model: str | Path,
    predictions: str | Path,
    index: str | Path,
    out_dir: str | Path,
    *,
    evaluate: EvaluateConfig,
    explain: ExplainConfig,
) -> GallerySummary:
    """Draw the gallery of ``predictions``' test split into ``out_dir`` (replaced whole).

    Args:
        model: the model file written by train (``models/best.ckpt``).
        predictions: that model's ``predictions.csv``; its validation patients give the
            operating point, its test patients the cases.
        index: ingest's ``index.csv``, which lists each series' volume.
        out_dir: the stage's folder (``reports/gallery``): ``gallery.json`` and the PNGs.
        evaluate: the ``evaluate`` settings (aggregation, recalibration, threshold rule).
        explain: the ``explain`` settings (cases per group, layer).

    Raises:
        PipelineInputError: bad predictions, no operating point, a model file refused,
            a chosen series missing from the index, or a model whose scores are not
            those of ``predictions`` (each message says which and what to do).
    """
    from pipeline.explain import choose_layer, stage_cells
    from pipeline.inference import load_classifier
    from pipeline.predict_inputs import Case

    out_dir, index = Path(out_dir), Path(index)
    table = read_predictions(predictions, aggregate=evaluate.aggregate)
    rule = operating_point(table, evaluate)
    ranked = rank_groups(table, rule)
    series = _top_series(read_rows(predictions, required=PREDICTION_REQUIRED))
    volumes = {row["series_key"]: row for row in read_rows(index, required=("series_key", "image_path"))}
    classifier = load_classifier(model)
    layer = choose_layer(classifier.network, classifier.input_shape, explain.layer)
    cells = stage_cells(classifier.network, classifier.input_shape)[layer]

    picks = [(group, rank, i) for group in GALLERY_GROUPS
             for rank, i in enumerate(ranked[group][:explain.cases_per_group], start=1)]
    cases = []
    for group, rank, i in picks:
        row = series[str(table.patient_id[i])]
        volume = volumes.get(row["series_key"])
        if volume is None:
            raise GalleryError(
                f"series {row['series_key']!r} of predictions.csv must be listed in {str(index)!r} (ingest's index); it "
                "is not. The index and the predictions come from different runs: run dvc repro."
            )
        cases.append(Case(row["patient_id"], str(predictions), series_key=row["series_key"],
                          image_path=str(index.parent / volume["image_path"]), modality=volume.get("modality", ""),
                          shape=volume.get("shape", "")))
    results = classifier.score_cases(cases, saliency=True, layer=layer, progress=False)

    records, unread = [], []
    with staged_folder(out_dir, name="out_dir", example="reports/gallery", contents=_ours(out_dir)) as temp:
        for (group, rank, i), result in zip(picks, results):
            row = series[str(table.patient_id[i])]
            recorded = float(row["score"])
            record = dict(group=group, rank=rank, patient_id=row["patient_id"], series_key=row["series_key"],
                          score=recorded, patient_score=float(table.score[i]))
            if result.saliency is None or result.score is None:
                unread.append(result.reason)
                records.append(GalleryCase(**record, slice_index=None, flat=False, image="", reason=result.reason))
                continue
            check_rescored(result.score, recorded, row["series_key"], model, predictions)
            records.append(_draw(temp, record, result.image, result.saliency))
        gallery = GalleryRecord(
            split="test", layer=layer, layer_cells=tuple(cells), per_group=explain.cases_per_group,
            true_positives=len(ranked["true_positive"]), false_positives=len(ranked["false_positive"]),
            false_negatives=len(ranked["false_negative"]),
            operating_point=threshold_record(rule, model_digest=classifier.meta["digest"],
                                             predictions_sha256=sha256_file(Path(predictions))),
            model_digest=classifier.meta["digest"], cases=tuple(records), note=_note(ranked, unread),
        )
        write_atomic(temp / GALLERY_FILE, json.dumps(gallery.to_json(), indent=2, allow_nan=False) + "\n")
    return GallerySummary(out_dir=out_dir, record=gallery)


def _top_series(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each test patient's highest-scored series row (ties: the first in the file)."""
    best: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["split"] != "test":
            continue
        held = best.get(row["patient_id"])
        if held is None or float(row["score"]) > float(held["score"]):
            best[row["patient_id"]] = row
    return best


def _draw(folder: Path, record: dict, image: np.ndarray, saliency: np.ndarray) -> GalleryCase:
    """The overlay PNG of one case: on the slice where the map peaks; a flat map on the middle slice."""
    from pipeline.explain import peak_slice, save_overlay

    flat = not float(saliency.max()) > 0.0
    slice_index = None
    if saliency.ndim == 3:
        slice_index = saliency.shape[-1] // 2 if flat else peak_slice(saliency)
    name = f"{record['group']}-{record['rank']}.png"
    save_overlay(folder / name, image, saliency, slice_index=slice_index)
    return GalleryCase(**record, slice_index=slice_index, flat=flat, image=name, reason="")


_SINGULAR = {"true_positive": "true positive", "false_positive": "false positive", "false_negative": "false negative"}


def _note(ranked: dict[str, list[int]], unread: list[str]) -> str:
    parts = [f"no {_SINGULAR[group]} in the test split" for group in GALLERY_GROUPS if not ranked[group]]
    if unread:
        parts.append(f"{len(unread)} case(s) could not be read: {unread[0]}")
    return "; ".join(parts)


def _ours(out_dir: Path) -> tuple[str, ...]:
    """Names an existing output folder may hold: the record and its overlays."""
    if not out_dir.is_dir():
        return (GALLERY_FILE,)
    return (GALLERY_FILE, *(n for n in os.listdir(out_dir) if n.endswith(".png") and n.split("-")[0] in GALLERY_GROUPS))
