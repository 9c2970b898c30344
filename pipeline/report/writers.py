"""Write the evaluation to disk: ``metrics.json``, DVC plot files, PNGs and ``report.html``.

DVC plot files follow iterative/example-get-started: one file per curve and split
(``plots/pr/test.json``, ``plots/pr/val.json``), because DVC's built-in templates
draw one line per file and per revision; a single file with a ``split`` column would be
drawn as one zig-zag line. The test ROC, the study's headline curve, is ``roc.json`` at
the top of the folder (the name users and scripts look for); the val ROC is
``plots/roc/val.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.outputs import write_atomic
from pipeline.report.evaluation import Evaluation
from pipeline.report.figures import calibration_png, pr_png, roc_png
from pipeline.report.html import render_html
from pipeline.report.methods import methods_markdown
from pipeline.report.provenance import Provenance

_DIGITS = 6
OUTPUT_NAMES = ("metrics.json", "roc.json", "plots", "roc.png", "pr.png", "calibration.png", "report.html", "methods.md")
"""What :func:`write_outputs` writes at the top of its folder (the stage checks them against its inputs)."""


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


def plot_rows(evaluation: Evaluation) -> dict[str, list[dict[str, Any]]]:
    """DVC plot data: relative path ``plots/<kind>/<split>.json`` -> list of points.

    ``roc``: ``fpr, tpr, threshold`` of the model's own score (threshold ``null`` at the
    origin, where nobody is called positive); ``pr``: ``recall, precision, threshold``; ``calibration``
    (after recalibration): ``mean_predicted, fraction_positive, count, bin_lower, bin_upper``; ``confusion``:
    one row per patient, ``actual, predicted`` (0/1, no identifiers).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for split, c in evaluation.curves.items():
        out["roc.json" if split == "test" else f"plots/roc/{split}.json"] = [
            {"fpr": f, "tpr": t, "threshold": th} for f, t, th in zip(c.roc["fpr"], c.roc["tpr"], c.roc["threshold"])
        ]
        out[f"plots/pr/{split}.json"] = [
            {"recall": r, "precision": p, "threshold": th}
            for r, p, th in zip(c.pr["recall"], c.pr["precision"], c.pr["threshold"])
        ]
        # Calibrated probabilities; empty when the scores are not probabilities and were
        # not recalibrated (metrics.json says why).
        cal = c.calibration or {"count": []}
        out[f"plots/calibration/{split}.json"] = [
            {
                "mean_predicted": cal["mean_predicted"][i],
                "fraction_positive": cal["fraction_positive"][i],
                "count": cal["count"][i],
                "bin_lower": cal["bin_lower"][i],
                "bin_upper": cal["bin_upper"][i],
            }
            for i in range(len(cal["count"]))
        ]
        out[f"plots/confusion/{split}.json"] = [
            {"actual": a, "predicted": p} for a, p in zip(c.actual.tolist(), c.predicted.tolist())
        ]
    return {path: jsonable(rows) for path, rows in out.items()}


def _write_json(path: Path, content: Any) -> None:
    write_atomic(path, json.dumps(jsonable(content), indent=2, allow_nan=False) + "\n")


def write_outputs(
    evaluation: Evaluation, provenance: Provenance, out_dir: str | Path, *, ledger: dict[str, int] | None = None
) -> list[Path]:
    """Write every output of the evaluate stage into ``out_dir``.

    Files: ``metrics.json``, ``roc.json`` (test), ``plots/roc/val.json``,
    ``plots/{pr,calibration,confusion}/{val,test}.json``,
    ``roc.png``, ``pr.png``, ``calibration.png``, ``report.html`` (self-contained:
    figures embedded as base64) and ``methods.md`` (the generated methods section). Each
    file is written aside and renamed into place, so a killed run leaves every file
    whole (old or new), never truncated.

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    _write_json(out_dir / "metrics.json", evaluation.metrics)
    written.append(out_dir / "metrics.json")
    for relative, rows in plot_rows(evaluation).items():
        _write_json(out_dir / relative, rows)
        written.append(out_dir / relative)
    figures = {
        "roc": roc_png(evaluation.curves, evaluation.metrics),
        "calibration": calibration_png(evaluation.curves, evaluation.metrics),
        "pr": pr_png(evaluation.curves, evaluation.metrics),
    }
    for name, png in figures.items():
        write_atomic(out_dir / f"{name}.png", png)
        written.append(out_dir / f"{name}.png")
    write_atomic(out_dir / "report.html", render_html(evaluation, provenance, figures, ledger))
    written.append(out_dir / "report.html")
    write_atomic(out_dir / "methods.md", methods_markdown(evaluation, provenance, ledger))
    written.append(out_dir / "methods.md")
    return written
