"""The calibration section: the recalibration map and the measures before and after it."""

from __future__ import annotations

from pipeline.report.evaluation import Evaluation
from pipeline.report.html.markup import esc, num, value_or_na
from pipeline.schema.tables import SCORED_PARTS

CALIBRATION_TEXT = {
    "none": "No recalibration (evaluate.calibration: none): the model's scores are used as they are.",
    "platt": "Platt scaling: a logistic regression of the outcome on the model's score (on its logit when the "
    "scores are probabilities), estimated by Firth's penalised likelihood (finite even when the validation patients "
    "are perfectly separated), fitted on the validation patients only and applied unchanged to the test patients. "
    "With a positive slope it is strictly increasing, so the ranking and the AUC do not change.",
    "isotonic": "Isotonic regression: a non-decreasing step function of the model's score fitted on the validation "
    "patients only and applied unchanged to the test patients. It maps ranges of scores to one probability, so the "
    "calibrated score has ties: the AUC of the calibrated score (below) can be lower than the model's AUC, which the "
    "report headlines; sensitivity and specificity use the calibrated score.",
}


def calibration_section(ev: Evaluation) -> str:
    method = ev.metrics.test.calibration_method
    fit = ev.metrics.calibration
    out = [f"<p>{CALIBRATION_TEXT[method]}</p>"]
    if method == "platt":
        out.append(f"<p class='sub'>Fitted on {fit.n_fitted} validation patients: intercept "
                   f"{fit.intercept:.4g}, slope {fit.slope:.4g} (regressor: {esc(fit.regressor)}).</p>")
    if fit.note:
        out.append(f"<div class='note'>{esc(fit.note)}</div>")
    cols = [("val", "Validation, before"), ("val", "Validation, after (in-sample)"),
            ("test", "Test, before"), ("test", "Test, after")]
    if method == "none":
        cols = [("val", "Validation"), ("test", "Test")]
    rows = []
    for label, key in (("Brier score", "brier"), ("ECE", "ece"), ("Calibration-in-the-large (ideal 0)",
                       "calibration_intercept"), ("Calibration slope (ideal 1)", "calibration_slope")):
        cells = []
        for i, (split, _) in enumerate(cols):
            suffix = "_uncalibrated" if method != "none" and i % 2 == 0 else ""
            cells.append(f"<td>{value_or_na(ev.metrics.split(split), key + suffix)}</td>")
        rows.append(f'<tr><td class="l">{label}</td>{"".join(cells)}</tr>')
    if method == "isotonic":
        rows.append('<tr><td class="l">AUC of the calibrated score (ties count one half)</td>' + "".join(
            f"<td>{num(ev.metrics.split(s).auc)}</td>" if i % 2 == 0
            else f"<td>{num(ev.metrics.split(s).auc_calibrated)}</td>"
            for i, (s, _) in enumerate(cols)) + "</tr>")
    head = "".join(f"<th>{esc(name)}</th>" for _, name in cols)
    out.append(f"<table><tr><th class='l'>Measure</th>{head}</tr>{''.join(rows)}</table>")
    reasons = sorted({r for s in SCORED_PARTS for r in ev.metrics.split(s).not_applicable.values()})
    out += [f"<p class='sub'>n/a: {esc(r)}.</p>" for r in reasons]
    if method != "none":
        out.append("<p class='sub'>The validation columns after recalibration are in-sample (the map was fitted on "
                   "those patients) and therefore optimistic; the test columns are the estimate to report.</p>")
    return "".join(out)
