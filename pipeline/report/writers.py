"""Write the evaluation to disk: ``metrics.json``, DVC plot files, PNGs and ``report.html``.

Every path comes from :class:`pipeline.schema.EvaluateOutputs`, which the stage builds
from its command line in ``dvc.yaml``; nothing here names a file. DVC plot files follow
iterative/example-get-started: one file per curve and split, because DVC's built-in
templates draw one line per file and per revision; a single file with a ``split``
column would be drawn as one zig-zag line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.outputs import write_atomic
from pipeline.report.crossval import CrossValidationResults
from pipeline.report.evaluation import Evaluation
from pipeline.report.external import ExternalResults
from pipeline.report.figures import calibration_png, pr_png, roc_png
from pipeline.report.gallery import GalleryResults
from pipeline.report.html import render_html
from pipeline.report.methods import methods_markdown
from pipeline.report.operating_point import threshold_record
from pipeline.report.provenance import EvaluationProvenance
from pipeline.schema import EvaluateOutputs
from pipeline.schema.localisation import LocalisationRecord

_DIGITS = 6


def jsonable(value: Any, *, exact: bool = False) -> Any:
    """Plain JSON types; numpy scalars and arrays converted, floats rounded, ``inf`` -> ``None``.

    Values under a key naming a threshold keep every digit (``exact``): a threshold is
    one of the observed scores, which can be 1e-7 for a confident model, and rounded to
    6 decimals it became 0.0, calling every case positive for anyone who applies it to
    predictions.csv.

    Raises:
        ValueError: a NaN reached the writer (a metric should have been ``None`` with a reason).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, exact=exact or "threshold" in str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v, exact=exact) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            raise ValueError("metric values must not be NaN; got NaN. An undefined metric must be None with a reason.")
        if math.isinf(value):
            return None
        return float(value) if exact else round(float(value), _DIGITS)
    return value


def plot_rows(evaluation: Evaluation) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """DVC plot data: ``(kind, split)`` -> list of points (kinds: :data:`pipeline.schema.PLOT_KINDS`).

    ``roc``: ``fpr, tpr, threshold`` of the model's own score (threshold ``null`` at the
    origin, where nobody is called positive); ``pr``: ``recall, precision, threshold``; ``calibration``
    (after recalibration): ``mean_predicted, fraction_positive, count, bin_lower, bin_upper``; ``confusion``:
    one row per patient, ``actual, predicted`` (0/1, no identifiers).
    """
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for split, c in evaluation.curves.items():
        out["roc", split] = [
            {"fpr": f, "tpr": t, "threshold": th} for f, t, th in zip(c.roc["fpr"], c.roc["tpr"], c.roc["threshold"])
        ]
        out["pr", split] = [
            {"recall": r, "precision": p, "threshold": th}
            for r, p, th in zip(c.pr["recall"], c.pr["precision"], c.pr["threshold"])
        ]
        # Calibrated probabilities; empty when the scores are not probabilities and were
        # not recalibrated (metrics.json says why).
        cal = c.calibration or {"count": []}
        out["calibration", split] = [
            {
                "mean_predicted": cal["mean_predicted"][i],
                "fraction_positive": cal["fraction_positive"][i],
                "count": cal["count"][i],
                "bin_lower": cal["bin_lower"][i],
                "bin_upper": cal["bin_upper"][i],
            }
            for i in range(len(cal["count"]))
        ]
        out["confusion", split] = [
            {"actual": a, "predicted": p} for a, p in zip(c.actual.tolist(), c.predicted.tolist())
        ]
    return {key: jsonable(rows) for key, rows in out.items()}


def write_json(path: Path, content: Any) -> None:
    """``content`` as indented JSON through :func:`jsonable` (floats rounded; a NaN is refused)."""
    write_atomic(path, json.dumps(jsonable(content), indent=2, allow_nan=False) + "\n")


def write_threshold(evaluation: Evaluation, provenance: EvaluationProvenance, path: Path) -> None:
    """``threshold.json``: the operating point, every float with all its digits (see :mod:`pipeline.schema.threshold`)."""
    summary = provenance.train_summary
    record = threshold_record(
        evaluation.operating_point, model_digest=None if summary is None else summary.model_digest,
        predictions_sha256=provenance.predictions_sha256,
    )
    write_atomic(path, json.dumps(record.to_json(), indent=2, allow_nan=False) + "\n")


def write_outputs(
    evaluation: Evaluation,
    provenance: EvaluationProvenance,
    outputs: EvaluateOutputs,
    *,
    ledger: dict[str, int] | None = None,
    external: ExternalResults | None = None,
    cv: CrossValidationResults | None = None,
    gallery: GalleryResults | None = None,
    localisation: LocalisationRecord | None = None,
) -> list[Path]:
    """Write every output of the evaluate stage to the paths of ``outputs``.

    ``metrics``, the DVC plot file of each curve and split (:meth:`EvaluateOutputs.plot_file`),
    the three PNGs, ``report`` (self-contained: figures embedded as base64) and
    ``methods`` (the generated methods section) and ``threshold_file`` (the operating
    point, for predict); ``external``, when given, adds the report's external-validation
    section, ``gallery`` the Grad-CAM overlays and ``localisation`` the check of their peaks. Each file is written aside and renamed
    into place, so a killed run leaves every file whole (old or new), never truncated.

    Returns:
        The paths written.
    """
    written: list[Path] = []
    write_json(outputs.metrics, evaluation.metrics.to_json())
    written.append(outputs.metrics)
    for (kind, split), rows in plot_rows(evaluation).items():
        write_json(outputs.plot_file(kind, split), rows)
        written.append(outputs.plot_file(kind, split))
    figures = {
        "roc": roc_png(evaluation.curves, evaluation.metrics),
        "calibration": calibration_png(evaluation.curves, evaluation.metrics),
        "pr": pr_png(evaluation.curves, evaluation.metrics),
    }
    for path, png in ((outputs.roc_png, figures["roc"]), (outputs.calibration_png, figures["calibration"]),
                      (outputs.pr_png, figures["pr"])):
        write_atomic(path, png)
        written.append(path)
    write_atomic(outputs.report, render_html(evaluation, provenance, figures, ledger, external, cv, gallery,
                                                   localisation))
    written.append(outputs.report)
    write_atomic(outputs.methods, methods_markdown(evaluation, provenance, ledger))
    written.append(outputs.methods)
    write_threshold(evaluation, provenance, outputs.threshold_file)
    written.append(outputs.threshold_file)
    return written
