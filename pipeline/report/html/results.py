"""The results sections: the main result, the cohort, the figures, the metrics table, the subgroups."""

from __future__ import annotations

from typing import Mapping

from pipeline.report.evaluation import Evaluation
from pipeline.report.html.markup import ci_num, ci_pct, esc, img, num, pct, value_or_na
from pipeline.schema import SplitMetrics
from pipeline.schema.tables import SCORED_PARTS


def threshold_text(m: SplitMetrics) -> str:
    if m.calibration_method == "none":
        return f"<b>{m.threshold:.4g}</b>"
    cut = m.threshold_score
    on_score = "" if cut is None else f", i.e. a model score of at least {cut:.4g}"
    return f"<b>{m.threshold:.3f}</b> on the recalibrated probability{on_score}"


def rule_text(m: SplitMetrics) -> str:
    rule = m.threshold_rule
    if rule == "youden":
        return "maximising Youden's J (sensitivity + specificity &minus; 1) on the validation patients"
    return f"the highest threshold reaching {esc(rule.split('>=')[-1])} sensitivity on the validation patients"


def main_result(ev: Evaluation) -> str:
    t = ev.metrics.test
    cards = [
        ("Test AUC", num(t.auc), ci_num(t.auc_ci95) + f" ({esc(t.auc_ci_method)})"),
        ("Sensitivity", pct(t.sensitivity), ci_pct(t.sensitivity_ci95)),
        ("Specificity", pct(t.specificity), ci_pct(t.specificity_ci95)),
        ("PPV", pct(t.ppv), ci_pct(t.ppv_ci95)),
        ("NPV", pct(t.npv), ci_pct(t.npv_ci95)),
        ("Brier score", value_or_na(t, "brier"), f"ECE {value_or_na(t, 'ece')}"
         + ("" if t.calibration_method == "none" else f" (after {esc(t.calibration_method)})")),
    ]
    card_html = "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="ci">{ci}</div></div>'
        for label, value, ci in cards
    )
    c = t.confusion
    lead = (
        f'<p class="lead">On <b>{t.n_patients}</b> held-out test patients ({t.n_positive} positive, '
        f"{t.n_negative} negative), the model separates positive from negative patients with an AUC of "
        f"<b>{num(t.auc)}</b> ({ci_num(t.auc_ci95)}). At the threshold {threshold_text(t)}, fixed "
        f"before looking at the test set by {rule_text(t)}, it detects {c.tp} of {c.tp + c.fn} "
        f"positive patients and correctly clears {c.tn} of {c.tn + c.fp} negative patients.</p>"
    )
    return lead + f'<div class="cards">{card_html}</div>'


def cohort(ev: Evaluation) -> str:
    table = ev.table
    rows = []
    for split in SCORED_PARTS:
        part = table.select(split)
        rows.append((split, part.label.size, int(part.label.sum()), int(part.label.size - part.label.sum()),
                     int(part.n_series.sum())))
    total = tuple(sum(r[i] for r in rows) for i in range(1, 5))
    body = "".join(
        f'<tr><td class="l">{esc(name)}</td>' + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
        for name, *values in rows + [("total", *total)]
    )
    out = [
        "<table><tr><th class='l'>Split</th><th>Patients</th><th>Positive</th><th>Negative</th><th>Series</th></tr>"
        f"{body}</table>",
        f"<p class='sub'>Scores of a patient's series are combined by <b>{esc(table.aggregate)}</b> before any "
        "metric; every number in this report is per patient.</p>",
    ]
    for column in ev.subgroups:
        values = table.attributes[column].astype(str)
        levels = sorted(set(values.tolist()))
        head = "".join(f"<th>{s} +</th><th>{s} &minus;</th>" for s in SCORED_PARTS)
        lines = []
        for level in levels:
            cells = []
            for split in SCORED_PARTS:
                mask = (values == level) & (table.split == split)
                pos = int(table.label[mask].sum())
                cells += [pos, int(mask.sum()) - pos]
            lines.append(f'<tr><td class="l">{esc(level)}</td>' + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
        out.append(
            f"<h3>By {esc(column)}</h3><table><tr><th class='l'>{esc(column)}</th>{head}</tr>{''.join(lines)}</table>"
        )
    if ev.subgroups_skipped:
        items = "".join(f"<li><code>{esc(c)}</code>: {esc(r)}</li>" for c, r in ev.subgroups_skipped.items())
        out.append(f"<p class='sub'>Columns not used as subgroups:</p><ul class='sub'>{items}</ul>")
    return "".join(out)


def figure_grid(figures: Mapping[str, bytes]) -> str:
    captions = {
        "roc": "ROC curve of the model's score per patient. Circles: the operating point at the threshold chosen on "
        "validation. Other markers: readers' operating points on the test patients they rated.",
        "calibration": "Reliability diagram: observed fraction of positives against the mean predicted probability "
        "in equal-width bins, before (hollow, dotted) and after recalibration (filled); the histogram shows how the "
        "calibrated probabilities are spread.",
        "pr": "Precision-recall curve; dotted lines show the prevalence (a model without skill).",
    }
    return '<div class="figs">' + "".join(
        f"<figure>{img(figures[name], name)}<figcaption>{captions[name]}</figcaption></figure>"
        for name in ("roc", "calibration", "pr")
        if name in figures
    ) + "</div>"


def metrics_table(ev: Evaluation) -> str:
    splits = SCORED_PARTS
    m = {s: ev.metrics.split(s) for s in splits}

    def row(label: str, render) -> str:
        return f'<tr><td class="l">{label}</td>' + "".join(f"<td>{render(m[s])}</td>" for s in splits) + "</tr>"

    def prop(name: str):
        def render(x: SplitMetrics) -> str:
            if getattr(x, name) is None:
                reason = x.undefined.get(name, "")
                return f'<span title="{esc(reason)}">undefined: {esc(reason)}</span>'
            return f"{pct(getattr(x, name))}<br><small>{ci_pct(getattr(x, name + '_ci95'))}</small>"

        return render

    rows = [
        row("Patients (positive)", lambda x: f"{x.n_patients} ({x.n_positive})"),
        row("AUC", lambda x: f"{num(x.auc)}<br><small>{ci_num(x.auc_ci95)}</small>"),
        row("Threshold (chosen on val)", lambda x: f"{x.threshold:.4g}"
            + ("" if x.threshold_score is None or x.calibration_method == "none"
               else f"<br><small>score &ge; {x.threshold_score:.4g}</small>")),
        row("Sensitivity", prop("sensitivity")),
        row("Specificity", prop("specificity")),
        row("PPV (precision)", prop("ppv")),
        row("NPV", prop("npv")),
        row("Average precision", lambda x: num(x.average_precision)),
        row("Brier score", lambda x: value_or_na(x, "brier")),
        row(f"ECE ({ev.settings['calibration_bins']} bins)", lambda x: value_or_na(x, "ece")),
    ]
    table = "<table><tr><th class='l'>Metric</th><th>Validation</th><th>Test</th></tr>" + "".join(rows) + "</table>"
    cms = []
    for split in splits:
        c = m[split].confusion
        cms.append(
            f'<div class="cm"><h3>Confusion matrix, {split}</h3><table>'
            "<tr><th></th><th>Called positive</th><th>Called negative</th></tr>"
            f'<tr><th class="l">Positive</th><td>{c.tp}</td><td>{c.fn}</td></tr>'
            f'<tr><th class="l">Negative</th><td>{c.fp}</td><td>{c.tn}</td></tr></table></div>'
        )
    return table + "".join(cms)


def subgroup_tables(ev: Evaluation) -> str:
    if not ev.subgroups:
        return "<p class='sub'>No subgroup columns in the predictions.</p>"
    out = []
    for column in ev.subgroups:
        lines = []
        for split in ("test", "val"):
            for level, r in ev.metrics.split(split).subgroups[column].items():
                if r.auc is None:
                    auc, ci = "&mdash;", "&mdash;"
                else:
                    auc = num(r.auc)
                    ci = ci_num(r.auc_ci95) if r.auc_ci95 is not None else "&mdash;"
                lines.append(
                    f'<tr><td class="l">{split}</td><td class="l">{esc(level)}</td><td>{r.n_patients}</td>'
                    f'<td>{r.n_positive}</td><td>{auc}</td><td class="l"><small>{ci}</small></td>'
                    f"<td>{pct(r.sensitivity)}</td><td>{pct(r.specificity)}</td>"
                    f'<td class="undef">{esc(r.reason or "")}</td></tr>'
                )
        out.append(
            f"<h3>By {esc(column)}</h3><table><tr><th class='l'>Split</th><th class='l'>{esc(column)}</th>"
            "<th>Patients</th><th>Positive</th><th>AUC</th><th class='l'>95% CI</th><th>Sensitivity</th>"
            f"<th>Specificity</th><th class='l'>Note</th></tr>{''.join(lines)}</table>"
        )
    out.append(
        "<p class='sub'>Sensitivity and specificity use the single threshold chosen on validation. Small subgroups "
        "give wide intervals; differences between levels are descriptive, not tested.</p>"
    )
    return "".join(out)
