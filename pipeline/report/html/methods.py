"""The methods section: the paragraph and TRIPOD+AI checklist of this run, and the definitions."""

from __future__ import annotations

from typing import Mapping

from pipeline.report.evaluation import Evaluation
from pipeline.report.html.markup import esc
from pipeline.report.methods import methods_paragraphs, tripod_rows
from pipeline.report.provenance import EvaluationProvenance


DEFINITIONS = """
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


def methods_section(ev: Evaluation, p: EvaluationProvenance, ledger: Mapping[str, int] | None) -> str:
    paragraphs = "".join(f"<p>{esc(text)}</p>" for text in methods_paragraphs(ev, p, ledger))
    rows = "".join(
        f"<tr><td class='l'>{esc(item)}</td><td class='l'>{esc(topic)}</td><td class='l'>{esc(where)}</td></tr>"
        for item, topic, where in tripod_rows(ev, p, ledger)
    )
    return (
        f"<h3>Methods paragraph (generated from this run)</h3>{paragraphs}<h3>TRIPOD+AI checklist</h3>"
        "<p class='sub'>Item numbers follow TRIPOD+AI (Collins et al., BMJ 2024); check them against the official "
        f"checklist.</p><table><tr><th class='l'>Item</th><th class='l'>Topic</th><th class='l'>Where</th></tr>{rows}"
        "</table>"
    )
