"""The model against the readers who rated the same patients, and against another model."""

from __future__ import annotations

from pipeline.report.evaluation import Evaluation
from pipeline.report.html.markup import ci_num, esc, num, pct
from pipeline.report.provenance import EvaluationProvenance


def reader_table(ev: Evaluation) -> str:
    columns = ev.settings["reader_columns"]
    if not columns:
        return ""
    lines = []
    for split in ("test", "val"):
        for column in columns:
            r = ev.metrics.split(split).readers[column]
            if r.auc is None:
                cells = f'<td colspan="5" class="undef">{esc(r.reason)}</td>'
            else:
                cells = (f"<td>{num(r.auc)}<br><small>{ci_num(r.auc_ci95)}</small></td>"
                         f"<td>{num(r.model_auc)}</td><td>{r.delta_auc_vs_model:+.3f}<br><small>"
                         f"{ci_num(r.delta_auc_ci95)}</small></td><td>{r.p_value:.3g}</td>")
                points = r.operating_points or ()
                cells += "<td class='l'><small>" + "<br>".join(
                    f"&ge;{p.cut:g}: sens {pct(p.sensitivity)}, spec {pct(p.specificity)}"
                    for p in points[:-1]) + "</small></td>"
            missing = f"<br><small>{r.n_missing} without a rating</small>" if r.n_missing else ""
            lines.append(f'<tr><td class="l">{split}</td><td class="l">{esc(column)}</td>'
                         f"<td>{r.n} ({r.n_positive}){missing}</td>{cells}</tr>")
    return (
        "<h2>Readers compared with the model</h2>"
        "<p>Each reader's rating and the model's score on the same patients (those the reader rated), compared with "
        "the paired DeLong test; the difference is reader minus model. The reader's operating points are drawn on "
        "the ROC figure.</p><table><tr><th class='l'>Split</th><th class='l'>Reader</th><th>Patients (positive)</th>"
        "<th>Reader AUC</th><th>Model AUC, same patients</th><th>Difference</th><th>p (two-sided)</th>"
        f"<th class='l'>Operating points</th></tr>{''.join(lines)}</table>"
    )


def model_comparison(ev: Evaluation, p: EvaluationProvenance) -> str:
    c = ev.metrics.comparison
    if c is None:
        return ""
    return (
        "<h2>Comparison with another model</h2>"
        f"<p>Paired DeLong test on the same {c.n_patients} {esc(c.split)} patients ({c.n_positive} positive). "
        f"Other predictions: <code>{esc(p.compare_file)}</code> (SHA-256 <code>{esc((p.compare_sha256 or '')[:16])}</code>&hellip;).</p>"
        "<table><tr><th class='l'>This model AUC</th><th>Other model AUC</th><th>Difference</th><th>95% CI</th>"
        "<th>p (two-sided)</th></tr>"
        f"<tr><td>{num(c.auc)}</td><td>{num(c.auc_other)}</td><td>{c.auc_difference:+.3f}</td>"
        f"<td>{ci_num(c.auc_difference_ci95)}</td><td>{c.p_value:.3g}</td></tr></table>"
    )
