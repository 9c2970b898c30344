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

_COLOURS = {"test": "#1f5fa8", "val": "#d9822b"}
_DPI = 110
# Fixed metadata keeps the PNG bytes identical between runs on the same data, so DVC
# does not see a change where there is none.
_PNG_METADATA = {"Software": None}


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(fig)
    return buffer.getvalue()


def roc_png(curves: Mapping[str, SplitCurves], metrics: Mapping[str, Mapping[str, object]]) -> bytes:
    """ROC curves of each split, AUC and its 95% CI in the legend, operating point marked.

    Args:
        curves: split -> curves.
        metrics: split -> that split's block of ``metrics.json``.
    """
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", label="chance")
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics[split]
        lo, hi = m["auc_ci95"]
        ax.plot(
            c.roc["fpr"], c.roc["tpr"], color=_COLOURS[split], lw=2 if split == "test" else 1.3,
            label=f"{split}: AUC {m['auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}), n={m['n_patients']}",
        )
        ax.plot(
            1 - m["specificity"], m["sensitivity"], "o", color=_COLOURS[split], mfc="white", mew=1.5, ms=7,
        )
    ax.plot([], [], "o", color="#444444", mfc="white", label=f"threshold {metrics['test']['threshold']:.3f} (from val)")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity (false positive rate)",
           ylabel="Sensitivity (true positive rate)", title="ROC curve, per patient")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7.5)
    return _png(fig)


def calibration_png(curves: Mapping[str, SplitCurves], metrics: Mapping[str, Mapping[str, object]]) -> bytes:
    """Reliability diagram (observed rate against mean predicted probability) over a score histogram."""
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.2, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", label="perfect calibration")
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics[split]
        cal = c.calibration
        ax.plot(
            cal["mean_predicted"], cal["fraction_positive"], "o-", color=_COLOURS[split], ms=4,
            label=f"{split}: Brier {m['brier']:.3f}, ECE {m['ece']:.3f}",
        )
        hist.hist(c.score, bins=np.linspace(0, 1, 21), color=_COLOURS[split], alpha=0.5, label=split)
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), ylabel="Observed fraction positive", title="Calibration, per patient")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    hist.set(xlabel="Predicted probability", ylabel="Patients")
    hist.grid(alpha=0.3)
    return _png(fig)


def pr_png(curves: Mapping[str, SplitCurves], metrics: Mapping[str, Mapping[str, object]]) -> bytes:
    """Precision-recall curves with the prevalence of each split as the no-skill line."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for split in ("test", "val"):
        if split not in curves:
            continue
        c, m = curves[split], metrics[split]
        ax.step(c.pr["recall"], c.pr["precision"], where="post", color=_COLOURS[split],
                label=f"{split}: average precision {m['average_precision']:.3f}")
        ax.axhline(m["n_positive"] / m["n_patients"], color=_COLOURS[split], lw=0.8, ls=":")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="Recall (sensitivity)", ylabel="Precision (PPV)",
           title="Precision-recall, per patient (dotted: prevalence)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)
