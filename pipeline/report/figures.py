"""PNG figures for the report (matplotlib, Agg backend: no display needed on a server).

Each function returns PNG bytes so the HTML can embed them and the writer can save them;
figures are closed after rendering so a long session does not leak memory.
"""

from __future__ import annotations

import io
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.report.evaluation import SplitCurves  # noqa: E402
from pipeline.schema import CrossValidation, MetricsRecord, SplitMetrics  # noqa: E402

_COLOURS = {"test": "#1f5fa8", "val": "#d9822b"}
_READER_COLOURS = ("#2a9d3a", "#9b3fb5", "#c0392b", "#6d6d6d", "#b8860b")
_READER_MARKERS = ("s", "^", "D", "v", "P")
_DPI = 110
# Fixed metadata keeps the PNG bytes identical between runs on the same data, so DVC
# does not see a change where there is none.
_PNG_METADATA = {"Software": None}


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(fig)
    return buffer.getvalue()


def roc_png(curves: Mapping[str, SplitCurves], metrics: MetricsRecord) -> bytes:
    """ROC curves of each split, AUC and its 95% CI in the legend, operating point marked.

    Args:
        curves: split -> curves.
        metrics: the content of ``metrics.json``.
    """
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", label="chance")
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics.split(split)
        lo, hi = m.auc_ci95
        ax.plot(
            c.roc["fpr"], c.roc["tpr"], color=_COLOURS[split], lw=2 if split == "test" else 1.3,
            label=f"{split}: AUC {m.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}), n={m.n_patients}",
        )
        ax.plot(
            1 - m.specificity, m.sensitivity, "o", color=_COLOURS[split], mfc="white", mew=1.5, ms=7,
        )
    ax.plot([], [], "o", color="#444444", mfc="white", label=f"threshold {metrics.test.threshold:.3g} (from val)")
    _reader_points(ax, curves.get("test"), metrics.test)
    _roc_axes(ax, "ROC curve, per patient", legend_size=7.5)
    return _png(fig)


def _roc_axes(ax: plt.Axes, title: str, *, legend_size: float) -> None:
    """Square unit axes labelled as an ROC plot, with the legend bottom right."""
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity (false positive rate)",
           ylabel="Sensitivity (true positive rate)", title=title)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)


def _reader_points(ax: plt.Axes, c: SplitCurves | None, m: SplitMetrics) -> None:
    """Each reader's operating points on the test patients they rated, joined as their empirical ROC."""
    if c is None:
        return
    for i, (column, curve) in enumerate(c.readers.items()):
        r = m.readers[column]  # a reader with a curve has an AUC
        colour, marker = _READER_COLOURS[i % len(_READER_COLOURS)], _READER_MARKERS[i % len(_READER_MARKERS)]
        ax.plot(curve.fpr, curve.tpr, color=colour, lw=0.8, ls=":")
        ax.plot(
            curve.fpr[1:-1], curve.tpr[1:-1], marker, color=colour, ms=6, ls="none",
            label=f"{column} (reader): AUC {r.auc:.3f}, n={r.n} (test)",
        )


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def calibration_png(curves: Mapping[str, SplitCurves], metrics: MetricsRecord) -> bytes:
    """Reliability diagram before (hollow, dotted) and after recalibration (filled) over a histogram.

    Probabilities only: where the scores are not probabilities and nothing recalibrated
    them, the panel says so instead of drawing.
    """
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.2, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", label="perfect calibration")
    drawn = False
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics.split(split)
        method = m.calibration_method
        in_sample = " (in-sample)" if split == "val" and method != "none" else ""
        if c.calibration_before is not None and method != "none":
            before = c.calibration_before
            ax.plot(
                before["mean_predicted"], before["fraction_positive"], "o:", color=_COLOURS[split], ms=4, mfc="white",
                lw=0.9, label=f"{split} before: Brier {_fmt(m.brier_uncalibrated)}, ECE {_fmt(m.ece_uncalibrated)}",
            )
        if c.calibration is not None:
            drawn = True
            cal = c.calibration
            label = "" if method == "none" else f" after {method}{in_sample}"
            ax.plot(
                cal["mean_predicted"], cal["fraction_positive"], "o-", color=_COLOURS[split], ms=4,
                label=f"{split}{label}: Brier {_fmt(m.brier)}, ECE {_fmt(m.ece)}",
            )
            hist.hist(c.score, bins=np.linspace(0, 1, 21), color=_COLOURS[split], alpha=0.5, label=split)
    if not drawn:
        ax.text(0.5, 0.5, "Not applicable: the scores are not\nprobabilities and were not recalibrated",
                ha="center", va="center", fontsize=9, color="#5b6776")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), ylabel="Observed fraction positive", title="Calibration, per patient")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    hist.set(xlabel="Predicted probability (calibrated)", ylabel="Patients")
    hist.grid(alpha=0.3)
    return _png(fig)


def pr_png(curves: Mapping[str, SplitCurves], metrics: MetricsRecord) -> bytes:
    """Precision-recall curves with the prevalence of each split as the no-skill line."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics.split(split)
        ax.step(c.pr["recall"], c.pr["precision"], where="post", color=_COLOURS[split],
                label=f"{split}: average precision {m.average_precision:.3f}")
        ax.axhline(m.n_positive / m.n_patients, color=_COLOURS[split], lw=0.8, ls=":")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="Recall (sensitivity)", ylabel="Precision (PPV)",
           title="Precision-recall, per patient (dotted: prevalence)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def cv_roc_png(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], cv: CrossValidation | None) -> bytes:
    """Each fold's ROC curve on the patients it held out (thin) and the pooled out-of-fold curve.

    With cross-validation off (``cv`` None) the panel says so: the file is a declared
    plot of the crossval stage either way.
    """
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", label="chance")
    if cv is None:
        ax.text(0.5, 0.5, "Cross-validation is off (split.folds: 0)", ha="center", va="center", fontsize=9,
                color="#5b6776")
    else:
        for fold in cv.folds:
            fpr, tpr = curves[f"fold {fold.fold}"]
            ax.plot(fpr, tpr, lw=1.0, alpha=0.75,
                    label=f"fold {fold.fold}: AUC {fold.auc:.3f}, n={fold.n_patients}")
        fpr, tpr = curves["pooled"]
        lo, hi = cv.auc_ci95
        ax.plot(fpr, tpr, color="#111111", lw=2.2,
                label=f"pooled out-of-fold: AUC {cv.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}), n={cv.oof.n_patients}")
        ax.plot([], [], " ", label=f"per-fold AUC {cv.auc_mean:.3f} ± {cv.auc_sd:.3f} (mean ± SD)")
    _roc_axes(ax, "Cross-validation ROC, per patient", legend_size=7)
    return _png(fig)
