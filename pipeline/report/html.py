"""One self-contained HTML page a clinician can read: results first, methods and provenance after.

No scripts, no external fonts or stylesheets, figures embedded as base64 PNG: the file
can be e-mailed, archived with the study, or opened on an offline hospital workstation.
Every value that comes from the data (column names, subgroup levels, paths, params) is
HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Mapping

import yaml

from pipeline.report.evaluation import Evaluation
from pipeline.report.methods import methods_paragraphs, tripod_rows
from pipeline.report.provenance import Provenance
from pipeline.schema import SplitMetrics, record_to_json

_CSS = """
:root { --ink:#1d2733; --muted:#5b6776; --line:#d7dde4; --accent:#1f5fa8; --warn:#8a1c1c; --warnbg:#fdecec;
        --note:#7a5b00; --notebg:#fff6da; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f5f7fa; line-height: 1.45; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 14px; overflow-wrap: anywhere; }
.banner { border-left: 6px solid var(--warn); background: var(--warnbg); color: var(--warn); padding: 10px 14px;
          margin: 10px 0; font-weight: 600; }
.note { border-left: 6px solid #d4a400; background: var(--notebg); color: var(--note); padding: 8px 14px; margin: 8px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 24px; font-weight: 700; color: var(--accent); }
.card .ci { color: var(--muted); font-size: 13px; }
.lead { font-size: 15.5px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: right; vertical-align: top; }
th { background: #eef2f6; }
td.l, th.l { text-align: left; }
td small { white-space: nowrap; }
td.undef { color: var(--muted); font-style: italic; text-align: left; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; align-items: start; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.cm { display: inline-block; margin-right: 28px; vertical-align: top; }
pre { background: #f3f5f8; border: 1px solid var(--line); padding: 10px; font-size: 12.5px; overflow-x: auto;
      white-space: pre-wrap; overflow-wrap: anywhere; }
code, .mono { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 6px 0 12px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
.methods li { margin-bottom: 4px; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 30px; }
@media print { body { background: #fff; } main { padding: 0; } h2 { break-after: avoid; } figure, table { break-inside: avoid; } }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "undefined" if value is None else f"{100 * value:.1f}%"


def _ci_pct(ci: list[float] | None) -> str:
    return "" if ci is None else f"95% CI {100 * ci[0]:.1f}&ndash;{100 * ci[1]:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def _ci_num(ci: list[float] | None, digits: int = 3) -> str:
    return "" if ci is None else f"95% CI {ci[0]:.{digits}f}&ndash;{ci[1]:.{digits}f}"


def _na(m: SplitMetrics, name: str, digits: int = 3) -> str:
    """The measure ``name`` of ``m``, or "n/a" with the reason metrics.json gives for it."""
    value = getattr(m, name)
    if value is not None:
        return f"{value:.{digits}f}"
    reason = m.not_applicable.get(name, "")
    return f'<span title="{_e(reason)}">n/a</span>'


def _threshold_text(m: SplitMetrics) -> str:
    if m.calibration_method == "none":
        return f"<b>{m.threshold:.4g}</b>"
    cut = m.threshold_score
    on_score = "" if cut is None else f", i.e. a model score of at least {cut:.4g}"
    return f"<b>{m.threshold:.3f}</b> on the recalibrated probability{on_score}"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _rule_text(m: SplitMetrics) -> str:
    rule = m.threshold_rule
    if rule == "youden":
        return "maximising Youden's J (sensitivity + specificity &minus; 1) on the validation patients"
    return f"the highest threshold reaching {_e(rule.split('>=')[-1])} sensitivity on the validation patients"


def _weights_banners(p: Provenance) -> list[str]:
    out = []
    if p.train_summary is None:
        out.append(
            '<div class="banner">Weight provenance unknown: the training summary was not given to the '
            "evaluate stage (--train-summary). Whether the model started from pretrained or random weights "
            "cannot be stated.</div>"
        )
        return out
    warning = p.train_summary.weights.warning
    source = p.train_summary.weights.source
    if source == "none":  # what build_backbone records for random initialisation
        out.append(
            '<div class="banner">The model was trained from RANDOM INITIALISATION (no pretrained weights; '
            "weights source: none). Results do not reflect transfer learning.</div>"
        )
    elif not source:
        out.append(
            '<div class="banner">Weight provenance unknown: the training summary records no weights source, '
            "so whether the model started from pretrained or random weights cannot be stated.</div>"
        )
    if warning:
        out.append(f'<div class="banner">Weights warning from training: {_e(warning)}</div>')
    return out


def _summary(ev: Evaluation) -> str:
    t = ev.metrics.test
    cards = [
        ("Test AUC", _num(t.auc), _ci_num(t.auc_ci95) + f" ({_e(t.auc_ci_method)})"),
        ("Sensitivity", _pct(t.sensitivity), _ci_pct(t.sensitivity_ci95)),
        ("Specificity", _pct(t.specificity), _ci_pct(t.specificity_ci95)),
        ("PPV", _pct(t.ppv), _ci_pct(t.ppv_ci95)),
        ("NPV", _pct(t.npv), _ci_pct(t.npv_ci95)),
        ("Brier score", _na(t, "brier"), f"ECE {_na(t, 'ece')}"
         + ("" if t.calibration_method == "none" else f" (after {_e(t.calibration_method)})")),
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
        f"<b>{_num(t.auc)}</b> ({_ci_num(t.auc_ci95)}). At the threshold {_threshold_text(t)}, fixed "
        f"before looking at the test set by {_rule_text(t)}, it detects {c.tp} of {c.tp + c.fn} "
        f"positive patients and correctly clears {c.tn} of {c.tn + c.fp} negative patients.</p>"
    )
    return lead + f'<div class="cards">{card_html}</div>'


def _cohort(ev: Evaluation) -> str:
    table = ev.table
    rows = []
    for split in ("val", "test"):
        part = table.select(split)
        rows.append((split, part.label.size, int(part.label.sum()), int(part.label.size - part.label.sum()),
                     int(part.n_series.sum())))
    total = tuple(sum(r[i] for r in rows) for i in range(1, 5))
    body = "".join(
        f'<tr><td class="l">{_e(name)}</td>' + "".join(f"<td>{v}</td>" for v in values) + "</tr>"
        for name, *values in rows + [("total", *total)]
    )
    out = [
        "<table><tr><th class='l'>Split</th><th>Patients</th><th>Positive</th><th>Negative</th><th>Series</th></tr>"
        f"{body}</table>",
        f"<p class='sub'>Scores of a patient's series are combined by <b>{_e(table.aggregate)}</b> before any "
        "metric; every number in this report is per patient.</p>",
    ]
    for column in ev.subgroups:
        values = table.attributes[column].astype(str)
        levels = sorted(set(values.tolist()))
        head = "".join(f"<th>{s} +</th><th>{s} &minus;</th>" for s in ("val", "test"))
        lines = []
        for level in levels:
            cells = []
            for split in ("val", "test"):
                mask = (values == level) & (table.split == split)
                pos = int(table.label[mask].sum())
                cells += [pos, int(mask.sum()) - pos]
            lines.append(f'<tr><td class="l">{_e(level)}</td>' + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
        out.append(
            f"<h3>By {_e(column)}</h3><table><tr><th class='l'>{_e(column)}</th>{head}</tr>{''.join(lines)}</table>"
        )
    if ev.subgroups_skipped:
        items = "".join(f"<li><code>{_e(c)}</code>: {_e(r)}</li>" for c, r in ev.subgroups_skipped.items())
        out.append(f"<p class='sub'>Columns not used as subgroups:</p><ul class='sub'>{items}</ul>")
    return "".join(out)


def _figures(figures: Mapping[str, bytes]) -> str:
    captions = {
        "roc": "ROC curve of the model's score per patient. Circles: the operating point at the threshold chosen on "
        "validation. Other markers: readers' operating points on the test patients they rated.",
        "calibration": "Reliability diagram: observed fraction of positives against the mean predicted probability "
        "in equal-width bins, before (hollow, dotted) and after recalibration (filled); the histogram shows how the "
        "calibrated probabilities are spread.",
        "pr": "Precision-recall curve; dotted lines show the prevalence (a model without skill).",
    }
    return '<div class="figs">' + "".join(
        f"<figure>{_img(figures[name], name)}<figcaption>{captions[name]}</figcaption></figure>"
        for name in ("roc", "calibration", "pr")
        if name in figures
    ) + "</div>"


def _metrics_table(ev: Evaluation) -> str:
    splits = ("val", "test")
    m = {s: ev.metrics.split(s) for s in splits}

    def row(label: str, render) -> str:
        return f'<tr><td class="l">{label}</td>' + "".join(f"<td>{render(m[s])}</td>" for s in splits) + "</tr>"

    def prop(name: str):
        def render(x: SplitMetrics) -> str:
            if getattr(x, name) is None:
                reason = x.undefined.get(name, "")
                return f'<span title="{_e(reason)}">undefined: {_e(reason)}</span>'
            return f"{_pct(getattr(x, name))}<br><small>{_ci_pct(getattr(x, name + '_ci95'))}</small>"

        return render

    rows = [
        row("Patients (positive)", lambda x: f"{x.n_patients} ({x.n_positive})"),
        row("AUC", lambda x: f"{_num(x.auc)}<br><small>{_ci_num(x.auc_ci95)}</small>"),
        row("Threshold (chosen on val)", lambda x: f"{x.threshold:.4g}"
            + ("" if x.threshold_score is None or x.calibration_method == "none"
               else f"<br><small>score &ge; {x.threshold_score:.4g}</small>")),
        row("Sensitivity", prop("sensitivity")),
        row("Specificity", prop("specificity")),
        row("PPV (precision)", prop("ppv")),
        row("NPV", prop("npv")),
        row("Average precision", lambda x: _num(x.average_precision)),
        row("Brier score", lambda x: _na(x, "brier")),
        row(f"ECE ({ev.settings['calibration_bins']} bins)", lambda x: _na(x, "ece")),
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


def _subgroups(ev: Evaluation) -> str:
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
                    auc = _num(r.auc)
                    ci = _ci_num(r.auc_ci95) if r.auc_ci95 is not None else "&mdash;"
                lines.append(
                    f'<tr><td class="l">{split}</td><td class="l">{_e(level)}</td><td>{r.n_patients}</td>'
                    f'<td>{r.n_positive}</td><td>{auc}</td><td class="l"><small>{ci}</small></td>'
                    f"<td>{_pct(r.sensitivity)}</td><td>{_pct(r.specificity)}</td>"
                    f'<td class="undef">{_e(r.reason or "")}</td></tr>'
                )
        out.append(
            f"<h3>By {_e(column)}</h3><table><tr><th class='l'>Split</th><th class='l'>{_e(column)}</th>"
            "<th>Patients</th><th>Positive</th><th>AUC</th><th class='l'>95% CI</th><th>Sensitivity</th>"
            f"<th>Specificity</th><th class='l'>Note</th></tr>{''.join(lines)}</table>"
        )
    out.append(
        "<p class='sub'>Sensitivity and specificity use the single threshold chosen on validation. Small subgroups "
        "give wide intervals; differences between levels are descriptive, not tested.</p>"
    )
    return "".join(out)


_CALIBRATION_TEXT = {
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


def _calibration(ev: Evaluation) -> str:
    method = ev.metrics.test.calibration_method
    fit = ev.metrics.calibration
    out = [f"<p>{_CALIBRATION_TEXT[method]}</p>"]
    if method == "platt":
        out.append(f"<p class='sub'>Fitted on {fit.n_fitted} validation patients: intercept "
                   f"{fit.intercept:.4g}, slope {fit.slope:.4g} (regressor: {_e(fit.regressor)}).</p>")
    if fit.note:
        out.append(f"<div class='note'>{_e(fit.note)}</div>")
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
            cells.append(f"<td>{_na(ev.metrics.split(split), key + suffix)}</td>")
        rows.append(f'<tr><td class="l">{label}</td>{"".join(cells)}</tr>')
    if method == "isotonic":
        rows.append('<tr><td class="l">AUC of the calibrated score (ties count one half)</td>' + "".join(
            f"<td>{_num(ev.metrics.split(s).auc)}</td>" if i % 2 == 0
            else f"<td>{_num(ev.metrics.split(s).auc_calibrated)}</td>"
            for i, (s, _) in enumerate(cols)) + "</tr>")
    head = "".join(f"<th>{_e(name)}</th>" for _, name in cols)
    out.append(f"<table><tr><th class='l'>Measure</th>{head}</tr>{''.join(rows)}</table>")
    reasons = sorted({r for s in ("val", "test") for r in ev.metrics.split(s).not_applicable.values()})
    out += [f"<p class='sub'>n/a: {_e(r)}.</p>" for r in reasons]
    if method != "none":
        out.append("<p class='sub'>The validation columns after recalibration are in-sample (the map was fitted on "
                   "those patients) and therefore optimistic; the test columns are the estimate to report.</p>")
    return "".join(out)


def _readers(ev: Evaluation) -> str:
    columns = ev.settings["reader_columns"]
    if not columns:
        return ""
    lines = []
    for split in ("test", "val"):
        for column in columns:
            r = ev.metrics.split(split).readers[column]
            if r.auc is None:
                cells = f'<td colspan="5" class="undef">{_e(r.reason)}</td>'
            else:
                cells = (f"<td>{_num(r.auc)}<br><small>{_ci_num(r.auc_ci95)}</small></td>"
                         f"<td>{_num(r.model_auc)}</td><td>{r.delta_auc_vs_model:+.3f}<br><small>"
                         f"{_ci_num(r.delta_auc_ci95)}</small></td><td>{r.p_value:.3g}</td>")
                points = r.operating_points or ()
                cells += "<td class='l'><small>" + "<br>".join(
                    f"&ge;{p.cut:g}: sens {_pct(p.sensitivity)}, spec {_pct(p.specificity)}"
                    for p in points[:-1]) + "</small></td>"
            missing = f"<br><small>{r.n_missing} without a rating</small>" if r.n_missing else ""
            lines.append(f'<tr><td class="l">{split}</td><td class="l">{_e(column)}</td>'
                         f"<td>{r.n} ({r.n_positive}){missing}</td>{cells}</tr>")
    return (
        "<h2>Readers compared with the model</h2>"
        "<p>Each reader's rating and the model's score on the same patients (those the reader rated), compared with "
        "the paired DeLong test; the difference is reader minus model. The reader's operating points are drawn on "
        "the ROC figure.</p><table><tr><th class='l'>Split</th><th class='l'>Reader</th><th>Patients (positive)</th>"
        "<th>Reader AUC</th><th>Model AUC, same patients</th><th>Difference</th><th>p (two-sided)</th>"
        f"<th class='l'>Operating points</th></tr>{''.join(lines)}</table>"
    )


def _comparison(ev: Evaluation, p: Provenance) -> str:
    c = ev.metrics.comparison
    if c is None:
        return ""
    return (
        "<h2>Comparison with another model</h2>"
        f"<p>Paired DeLong test on the same {c.n_patients} {_e(c.split)} patients ({c.n_positive} positive). "
        f"Other predictions: <code>{_e(p.compare_file)}</code> (SHA-256 <code>{_e((p.compare_sha256 or '')[:16])}</code>&hellip;).</p>"
        "<table><tr><th class='l'>This model AUC</th><th>Other model AUC</th><th>Difference</th><th>95% CI</th>"
        "<th>p (two-sided)</th></tr>"
        f"<tr><td>{_num(c.auc)}</td><td>{_num(c.auc_other)}</td><td>{c.auc_difference:+.3f}</td>"
        f"<td>{_ci_num(c.auc_difference_ci95)}</td><td>{c.p_value:.3g}</td></tr></table>"
    )


def _kv(items: Mapping[str, Any]) -> str:
    return '<dl class="kv">' + "".join(
        f"<dt>{_e(k)}</dt><dd>{'<i>not recorded</i>' if v is None else _e(v)}</dd>" for k, v in items.items()
    ) + "</dl>"


def _provenance(ev: Evaluation, p: Provenance) -> str:
    out = ["<h3>Weights and training</h3>"]
    if p.train_summary is None:
        out.append("<p class='note'>Training summary not given (--train-summary).</p>")
    else:
        s = p.train_summary
        w = s.weights
        out.append(f"<p class='sub'>From <code>{_e(p.train_summary_file)}</code>.</p>")
        out.append(_kv({"source": w.source, "file": w.file, "sha256": w.sha256, "url": w.url, "licence": w.licence,
                        "warning": w.warning}))
        out.append(_kv({"best epoch": s.best_epoch, "best validation AUC": s.best_val_auc}))
        out.append("<p class='sub'>Model:</p>" + _kv(record_to_json(s.model)))
    out.append("<h3>Evaluation settings</h3>" + _kv(ev.settings))
    out.append("<h3>Inputs</h3>" + _kv({"predictions": p.predictions_file, "predictions SHA-256": p.predictions_sha256}))
    out.append("<h3>Params</h3>")
    if p.params is None:
        out.append("<p class='note'>Params not given (--params).</p>")
    else:
        dumped = yaml.safe_dump(p.params, sort_keys=False, default_flow_style=False)
        out.append(f"<p class='sub'>From <code>{_e(p.params_file)}</code>; secrets redacted.</p><pre>{_e(dumped)}</pre>")
    out.append("<h3>Data and code hashes (dvc.lock)</h3>")
    if p.lock is None:
        out.append("<p class='note'>Data hashes are not shown: dvc.lock was not given or not found.</p>")
    else:
        def is_code(e) -> bool:
            return e.path.endswith(".py") or e.path.startswith("pipeline/")

        def rows(entries) -> str:
            return "".join(
                f"<tr><td class='l'>{_e(e.stage)}</td><td class='l'>{e.kind}</td><td class='l mono'>{_e(e.path)}</td>"
                f"<td class='l mono'>{_e(e.digest or 'not recorded')}</td><td>{'' if e.size is None else e.size}</td>"
                f"<td>{'' if e.nfiles is None else e.nfiles}</td></tr>"
                for e in entries
            )

        head = ("<tr><th class='l'>Stage</th><th class='l'>Kind</th><th class='l'>Path</th><th class='l'>Hash</th>"
                "<th>Bytes</th><th>Files</th></tr>")
        data = [e for e in p.lock if not is_code(e)]
        code = [e for e in p.lock if is_code(e)]
        out.append(f"<p class='sub'>From <code>{_e(p.lock_file)}</code>.</p><table>{head}{rows(data)}</table>")
        if code:
            out.append(f"<details><summary>{len(code)} code dependencies</summary><table>{head}{rows(code)}</table></details>")
    return "".join(out)


_METHODS = """
<ul class="methods">
<li><b>Unit of analysis.</b> The patient: scores of several series are combined (max or mean) first.</li>
<li><b>AUC interval.</b> DeLong et al. (Biometrics 1988) variance, computed with the midrank algorithm of Sun &amp;
Xu (IEEE SPL 2014), normal approximation, clipped to [0, 1]; or, when chosen, a stratified percentile bootstrap.</li>
<li><b>Threshold.</b> Chosen once on the validation patients and applied unchanged to the test patients; a patient
is called positive when the score is at or above it.</li>
<li><b>Proportions.</b> Sensitivity, specificity, PPV and NPV with Wilson score 95% intervals. PPV and NPV depend
on the prevalence of this cohort.</li>
<li><b>Calibration.</b> Brier score (mean squared error of the probability; 0.25 is a coin flip at 50% prevalence),
expected calibration error (bin-size-weighted mean gap between observed rate and mean prediction),
calibration-in-the-large (intercept of a logistic regression of the outcome with the logit of the probability as
offset) and calibration slope (its coefficient when fitted), before and after the recalibration fitted on the
validation patients. Probability-only measures are not applicable to logits or ratings, and say so.</li>
<li><b>Scores.</b> Any real-valued score is accepted: AUC, ROC and the DeLong test use ranks only (ties count one
half), so a logit or a reader's 1-5 rating is evaluated as it is.</li>
<li><b>Subgroups.</b> AUC per level with the same interval method; a level with one class only has no AUC and the
reason is stated.</li>
</ul>
"""


def _methods_from_run(ev: Evaluation, p: Provenance, ledger: Mapping[str, int] | None) -> str:
    paragraphs = "".join(f"<p>{_e(text)}</p>" for text in methods_paragraphs(ev, p, ledger))
    rows = "".join(
        f"<tr><td class='l'>{_e(item)}</td><td class='l'>{_e(topic)}</td><td class='l'>{_e(where)}</td></tr>"
        for item, topic, where in tripod_rows(ev, p, ledger)
    )
    return (
        f"<h3>Methods paragraph (generated from this run)</h3>{paragraphs}<h3>TRIPOD+AI checklist</h3>"
        "<p class='sub'>Item numbers follow TRIPOD+AI (Collins et al., BMJ 2024); check them against the official "
        f"checklist.</p><table><tr><th class='l'>Item</th><th class='l'>Topic</th><th class='l'>Where</th></tr>{rows}"
        "</table>"
    )


def render_html(
    evaluation: Evaluation,
    provenance: Provenance,
    figures: Mapping[str, bytes],
    ledger: Mapping[str, int] | None = None,
) -> str:
    """The full report page.

    Args:
        evaluation: metrics, curves and cohort.
        provenance: weights, params and hashes (items not given are stated as such).
        figures: name (``roc``, ``calibration``, ``pr``) -> PNG bytes, embedded as base64.
        ledger: files per ingest status, for the methods paragraph (``None``: not given).

    Returns:
        HTML5 text, UTF-8, with no external resources.
    """
    ev, p = evaluation, provenance
    summary = p.train_summary
    model_text = "model" if summary is None else f"arch {summary.model.arch}, spatial_dims {summary.model.spatial_dims}"
    subtitle = (
        f"{_e(model_text)}; weights: {_e('unknown' if summary is None else summary.weights.source)}. "
        f"Predictions: <code>{_e(p.predictions_file)}</code> (SHA-256 <code>{_e(p.predictions_sha256[:16])}</code>&hellip;)."
    )
    notes = "".join(f"<div class='note'>{_e(n)}</div>" for n in p.notes)
    body = [
        "<h1>Evaluation report</h1>",
        f"<p class='sub'>{subtitle}</p>",
        *_weights_banners(p),
        notes,
        "<h2>Main result (test set)</h2>",
        _summary(ev),
        "<h2>Cohort</h2>",
        _cohort(ev),
        "<h2>Figures</h2>",
        _figures(figures),
        "<h2>Metrics with 95% confidence intervals</h2>",
        _metrics_table(ev),
        "<h2>Subgroups</h2>",
        _subgroups(ev),
        "<h2>Calibration before and after recalibration</h2>",
        _calibration(ev),
        _readers(ev),
        _comparison(ev, p),
        "<h2>Methods</h2>",
        _methods_from_run(ev, p, ledger),
        "<h3>Definitions</h3>",
        _METHODS,
        "<h2>Provenance</h2>",
        _provenance(ev, p),
        "<footer>Generated by the evaluate stage of medimg-pipeline from predictions alone. Patient identifiers are "
        "not included in this report.</footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Evaluation report</title><style>{_CSS}</style></head><body><main>"
        + "\n".join(body)
        + "</main></body></html>\n"
    )
