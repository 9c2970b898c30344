"""External validation: each declared site side by side with the internal test split, at the internal threshold."""

from __future__ import annotations

from pipeline.report.evaluation import Evaluation
from pipeline.report.external import ExternalResults
from pipeline.report.html.markup import ci_num, ci_pct, esc, num, pct, value_or_na
from pipeline.report.html.results import threshold_text
from pipeline.schema import SplitMetrics


def _row(name: str, m: SplitMetrics, scored: str) -> str:
    return (
        f"<tr><td class='l'>{name}</td><td>{m.n_patients} ({m.n_positive})</td>"
        f"<td>{num(m.auc)}<br><small>{ci_num(m.auc_ci95)}</small></td>"
        f"<td>{pct(m.sensitivity)}<br><small>{ci_pct(m.sensitivity_ci95)}</small></td>"
        f"<td>{pct(m.specificity)}<br><small>{ci_pct(m.specificity_ci95)}</small></td>"
        f"<td>{value_or_na(m, 'brier')}</td><td>{value_or_na(m, 'ece')}</td><td class='l'>{scored}</td></tr>"
    )


def external_section(ev: Evaluation, external: ExternalResults) -> str:
    """The section "External validation": a table of the internal test split and every site."""
    test = ev.metrics.test
    head = "<h2>External validation</h2>"
    if not external.sites:
        return head + (
            "<p>No external cohort is declared (<code>external: []</code> in params.yaml). An external cohort is "
            "ingested and preprocessed as the training data were, scored by this model and called positive at the "
            "threshold chosen on the internal validation split; see the README, \"External validation\".</p>"
        )
    rows = [_row("Internal test", test, "")]
    for record in external.sites:
        s = record.scoring
        missing = s.n_patients - s.n_patients_scored
        scored = f"{s.n_series_scored} of {s.n_series} series" + (
            f"; {missing} patient(s) without a scored series, not evaluated" if missing else "")
        rows.append(_row(esc(record.site), record.metrics, scored))
    return head + (
        "<p>Each external site was ingested with the internal cohort's ingest settings and pseudonym key, "
        "preprocessed with the settings recorded in the model file, scored by the frozen model, and called positive "
        f"at the <b>internal threshold</b>: {threshold_text(test)}, chosen on the internal validation split and "
        f"never re-tuned on external data, with the internal recalibration map "
        f"({esc(test.calibration_method)}) applied unchanged. A drop from the internal test split is what a new "
        "site should expect from the model as it is.</p>"
        "<table><tr><th class='l'>Cohort</th><th>Patients (positive)</th><th>AUC</th><th>Sensitivity</th>"
        "<th>Specificity</th><th>Brier</th><th>ECE</th><th class='l'>Scored</th></tr>"
        + "".join(rows) + "</table>"
        f"<p class='sub'>Per-site files: <code>{esc(external.index_file)}</code> and the folder of each site "
        "(metrics.json, predictions.csv, ledger.csv).</p>"
    )
