"""Cross-validation: each fold's AUC on the patients it held out, the pooled out-of-fold AUC, and test by the folds' mean."""

from __future__ import annotations

from pipeline.report.crossval import CrossValidationResults
from pipeline.report.html.markup import ci_num, ci_pct, esc, img, num, pct


def cv_section(results: CrossValidationResults) -> str:
    """The section "Cross-validation" (a short note when ``split.folds`` is 0)."""
    head = "<h2>Cross-validation</h2>"
    cv = results.cv
    if cv is None:
        return head + (
            "<p>Cross-validation is off (<code>split.folds: 0</code> in params.yaml): the results above come from one "
            "train/validation/test split. With <code>split.folds: 5</code> the patients outside test are dealt into "
            "five folds, one model is trained per fold, and the pooled out-of-fold AUC is reported here.</p>"
        )
    rows = [
        f"<tr><td class='l'>fold {f.fold}</td><td>{f.n_patients} ({f.n_positive})</td><td>{num(f.auc)}<br>"
        f"<small>{ci_num(f.auc_ci95)}</small></td><td></td><td></td></tr>"
        for f in cv.folds
    ]
    oof, test = cv.oof, cv.test
    rows.append(
        f"<tr><td class='l'><b>pooled out-of-fold</b></td><td>{oof.n_patients} ({oof.n_positive})</td>"
        f"<td><b>{num(cv.auc)}</b><br><small>{ci_num(cv.auc_ci95)}</small></td>"
        f"<td>{pct(oof.sensitivity)}<br><small>{ci_pct(oof.sensitivity_ci95)}</small></td>"
        f"<td>{pct(oof.specificity)}<br><small>{ci_pct(oof.specificity_ci95)}</small></td></tr>"
    )
    rows.append(
        f"<tr><td class='l'>test, mean of the {cv.k} fold models</td><td>{test.n_patients} ({test.n_positive})</td>"
        f"<td>{num(test.auc)}<br><small>{ci_num(test.auc_ci95)}</small></td>"
        f"<td>{pct(test.sensitivity)}<br><small>{ci_pct(test.sensitivity_ci95)}</small></td>"
        f"<td>{pct(test.specificity)}<br><small>{ci_pct(test.specificity_ci95)}</small></td></tr>"
    )
    return head + (
        f"<p>The patients outside test were dealt into {cv.k} folds (patient level, stratified by label). Each fold's "
        "model trained on the other folds with the settings of this run and was selected on its own fold, so every "
        "patient outside test is scored once by a model that never saw them. Per-fold AUC "
        f"{num(cv.auc_mean)} ± {num(cv.auc_sd)} (mean ± SD). The threshold ({oof.threshold:.4g}, "
        f"{esc(oof.calibration_method)} recalibration) was chosen on the pooled out-of-fold patients and applied "
        "unchanged to test.</p>"
        "<table><tr><th class='l'></th><th>Patients (positive)</th><th>AUC (95% CI)</th><th>Sensitivity</th>"
        "<th>Specificity</th></tr>" + "".join(rows) + "</table>"
        + img(results.roc_png, "ROC curve of each fold and of the pooled out-of-fold predictions")
        + f"<p class='sub'>From <code>{esc(results.file)}</code>; the pooled predictions are beside it.</p>"
    )
