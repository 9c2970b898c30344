"""Where the numbers came from: the weights' banners at the top, the provenance section at the end."""

from __future__ import annotations

import yaml

from pipeline.report.evaluation import Evaluation
from pipeline.report.html.markup import esc, kv
from pipeline.report.provenance import EvaluationProvenance
from pipeline.schema import record_to_json


def weights_banners(p: EvaluationProvenance) -> list[str]:
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
        out.append(f'<div class="banner">Weights warning from training: {esc(warning)}</div>')
    return out


def provenance_section(ev: Evaluation, p: EvaluationProvenance) -> str:
    out = ["<h3>Weights and training</h3>"]
    if p.train_summary is None:
        out.append("<p class='note'>Training summary not given (--train-summary).</p>")
    else:
        s = p.train_summary
        w = s.weights
        out.append(f"<p class='sub'>From <code>{esc(p.train_summary_file)}</code>.</p>")
        out.append(kv({"source": w.source, "file": w.file, "sha256": w.sha256, "url": w.url, "licence": w.licence,
                        "warning": w.warning}))
        out.append(kv({"best epoch": s.best_epoch + 1, "best validation AUC": s.best_val_auc}))
        out.append("<p class='sub'>Model:</p>" + kv(record_to_json(s.model)))
    out.append("<h3>Evaluation settings</h3>" + kv(ev.settings))
    out.append("<h3>Inputs</h3>" + kv({"predictions": p.predictions_file, "predictions SHA-256": p.predictions_sha256}))
    out.append("<h3>Params</h3>")
    if p.params is None:
        out.append("<p class='note'>Params not given (--params).</p>")
    else:
        dumped = yaml.safe_dump(p.params, sort_keys=False, default_flow_style=False)
        out.append(f"<p class='sub'>From <code>{esc(p.params_file)}</code>; secrets redacted.</p><pre>{esc(dumped)}</pre>")
    out.append("<h3>Data and code hashes (dvc.lock)</h3>")
    if p.lock is None:
        out.append("<p class='note'>Data hashes are not shown: dvc.lock was not given or not found.</p>")
    else:
        def is_code(e) -> bool:
            return e.path.endswith(".py") or e.path.startswith("pipeline/")

        def rows(entries) -> str:
            return "".join(
                f"<tr><td class='l'>{esc(e.stage)}</td><td class='l'>{e.kind}</td><td class='l mono'>{esc(e.path)}</td>"
                f"<td class='l mono'>{esc(e.digest or 'not recorded')}</td><td>{'' if e.size is None else e.size}</td>"
                f"<td>{'' if e.nfiles is None else e.nfiles}</td></tr>"
                for e in entries
            )

        head = ("<tr><th class='l'>Stage</th><th class='l'>Kind</th><th class='l'>Path</th><th class='l'>Hash</th>"
                "<th>Bytes</th><th>Files</th></tr>")
        data = [e for e in p.lock if not is_code(e)]
        code = [e for e in p.lock if is_code(e)]
        out.append(f"<p class='sub'>From <code>{esc(p.lock_file)}</code>.</p><table>{head}{rows(data)}</table>")
        if code:
            out.append(f"<details><summary>{len(code)} code dependencies</summary><table>{head}{rows(code)}</table></details>")
    return "".join(out)
