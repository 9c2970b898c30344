"""A methods paragraph and a TRIPOD+AI checklist written from what actually ran.

Every sentence is filled from an input of this run (the ledger, the evaluated
predictions, params, train_summary.json, dvc.lock, installed package versions); what
the run cannot know (outcome definition, eligibility, ethics) is marked for the authors
rather than guessed. Versions are read from package metadata, never by importing torch.
"""

from __future__ import annotations

import csv
import platform
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from pipeline.report.evaluation import Evaluation
from pipeline.report.provenance import EvaluationProvenance, ProvenanceError
from pipeline.schema import TrainSummaryRecord
from pipeline.schema.tables import SCORED_PARTS

PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "monai", "pytorch-lightning", "pydicom", "nibabel", "dvc")
AUTHORS = "for the authors"


def ledger_counts(path: str | Path) -> dict[str, int]:
    """Files per ingest status from ``ledger.csv``.

    Raises:
        ProvenanceError: the file is missing or has no ``status`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"ledger {str(path)!r} must exist when --ledger is given; it was not found. Run ingest.")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if "status" not in (reader.fieldnames or []):
            raise ProvenanceError(f"ledger {str(path)!r} must have a 'status' column; found {reader.fieldnames}.")
        return dict(sorted(Counter(row["status"] for row in reader).items()))


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages the pipeline runs on."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _get(mapping: Mapping[str, Any] | None, *keys: str) -> Any:
    value: Any = mapping
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _cohort(ev: Evaluation, ledger: Mapping[str, int] | None) -> str:
    parts = []
    if ledger:
        listed = ", ".join(f"{n} {status}" for status, n in ledger.items())
        parts.append(f"Ingest examined {sum(ledger.values())} files under the raw folder ({listed}; every file has "
                     "one ledger row with its reason).")
    else:
        parts.append("The ingest ledger was not given to the evaluate stage, so file-level exclusions are not stated.")
    counts = []
    for split in SCORED_PARTS:
        m = ev.metrics.split(split)
        counts.append(f"{m.n_patients} {split} patients ({m.n_positive} positive, {m.n_series} series)")
    parts.append("The evaluation comprised " + " and ".join(counts) + ".")
    return " ".join(parts)


def _design(params: Mapping[str, Any] | None, summary: TrainSummaryRecord | None) -> str:
    split, pre = _get(params, "split") or {}, _get(params, "preprocess") or {}
    seed = _get(params, "base", "seed")
    text = (f"Patients were assigned to training, validation and test sets at patient level, stratified by label "
            f"(validation fraction {split.get('val_fraction', 'not recorded')}, test fraction "
            f"{split.get('test_fraction', 'not recorded')}, seed {seed}); parts fixed in the manifest were kept. ")
    text += (f"Images were resampled to {pre.get('pixdim', 'not recorded')} mm voxels, cropped or padded to "
             f"{pre.get('roi', 'not recorded')} voxels ({pre.get('spatial_dims', '?')}D), and scaled to [0, 1] over "
             f"the window {pre.get('hu_window', 'not recorded')} HU for CT (0.5th-99.5th percentiles otherwise). ")
    if summary is None:
        return text + "The training summary was not given, so the model and its weights are not stated."
    model, weights, train = summary.model, summary.weights, summary.config.train
    sha = weights.sha256
    text += (f"The model was a {model.arch} ({model.spatial_dims}D) initialised from "
             f"{weights.source} weights" + (f" (file SHA-256 {str(sha)[:16]}...)" if sha else "")
             + f", trained for up to {train.max_epochs} epochs (batch {train.batch_size}, "
             f"learning rate {train.lr}, weight decay {train.weight_decay}, precision "
             f"{train.precision}, augmentation {'on' if train.augment else 'off'}); the checkpoint "
             f"with the best validation AUC (epoch {summary.best_epoch + 1}) was kept.")
    return text


def _analysis(ev: Evaluation) -> str:
    s, t = ev.settings, ev.metrics.test
    ci = ("DeLong variance (normal approximation)" if s["ci_method"] == "delong"
          else f"a stratified percentile bootstrap ({s['n_boot']} resamples, seed {s['seed']})")
    calibration = {
        "none": "Scores were not recalibrated.",
        "platt": "Scores were recalibrated by logistic (Platt) regression on their logit, estimated by Firth's "
                 "penalised likelihood on the validation patients and applied unchanged to test.",
        "isotonic": "Scores were recalibrated by isotonic regression fitted on the validation patients and applied "
                    "unchanged to test.",
    }[s["calibration"]]
    rule = ("maximising Youden's J" if s["threshold_rule"] == "youden"
            else f"the highest threshold reaching sensitivity {s['target_sensitivity']}")
    text = (f"Series scores were combined per patient by their {s['aggregate']}. {calibration} The operating threshold "
            f"({t.threshold:.4g}) was chosen on the validation patients by {rule} and applied unchanged to test. "
            f"AUC intervals used {ci}; sensitivity, specificity, PPV and NPV used Wilson score intervals; calibration "
            f"was summarised by the Brier score, the ECE ({s['calibration_bins']} bins), calibration-in-the-large and "
            "the calibration slope.")
    cv = ev.metrics.cv
    if cv is not None:
        lo, hi = cv.auc_ci95
        text += (f" In addition, the patients outside test were dealt into {cv.k} folds (patient level, stratified by "
                 f"label, seeded); one model per fold was trained on the other folds with the same settings and "
                 f"selected on its own fold. The pooled out-of-fold AUC was {cv.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}; "
                 f"per fold {cv.auc_mean:.3f} ± {cv.auc_sd:.3f}, mean ± SD); the test patients, scored by the mean "
                 f"of the {cv.k} fold models' probabilities at a threshold chosen on the pooled out-of-fold patients, "
                 f"had AUC {cv.test.auc:.3f}.")
    if s["reader_columns"]:
        text += (f" Readers ({', '.join(s['reader_columns'])}) were compared with the model on the same patients by "
                 "the paired DeLong test.")
    return text


def _software(p: EvaluationProvenance) -> str:
    listed = ", ".join(f"{k} {v}" for k, v in versions().items())
    text = f"Software: {listed}."
    inputs = [e for e in (p.lock or []) if e.stage == "ingest" and e.kind == "dep" and not e.path.startswith("pipeline")]
    if inputs:
        text += " Input data (dvc.lock): " + "; ".join(f"{e.path} {e.digest}" for e in inputs) + "."
    else:
        text += " dvc.lock was not given, so data hashes are not stated."
    return text


def methods_paragraphs(ev: Evaluation, p: EvaluationProvenance, ledger: Mapping[str, int] | None = None) -> list[str]:
    """The methods section as plain-text paragraphs (cohort, design, analysis, software)."""
    return [_cohort(ev, ledger), _design(p.params, p.train_summary), _analysis(ev), _software(p)]


def tripod_rows(
    ev: Evaluation, p: EvaluationProvenance, ledger: Mapping[str, int] | None = None
) -> list[tuple[str, str, str]]:
    """``(item, topic, where)`` for TRIPOD+AI items; ``where`` is a report section or "for the authors"."""
    have_summary = p.train_summary is not None
    return [
        ("5a", "Sources of data", "Provenance: dvc.lock data hashes" if p.lock else AUTHORS),
        ("6a-b", "Participants: setting, eligibility", AUTHORS),
        ("7", "Data preparation", "Methods: preprocessing settings"),
        ("8", "Outcome definition and assessment", AUTHORS),
        ("10", "Sample size", "Cohort table (patients and events per split)"),
        ("11", "Missing data / exclusions", "Methods: ingest ledger counts" if ledger else AUTHORS),
        ("12", "Analytical methods (model, training, threshold, CIs)",
         "Methods; Provenance: weights" if have_summary else "Methods (model not stated: no training summary)"),
        ("12e", "Calibration / model updating", f"Calibration section ({ev.settings['calibration']})"),
        ("14", "Fairness: subgroups", "Subgroups section" if ev.subgroups else AUTHORS),
        ("18e-f", "Data and code availability", "Provenance: params, code and data hashes"),
        ("20a", "Flow of participants", "Methods: ledger counts; Cohort" if ledger else "Cohort (ingest flow not given)"),
        ("23a", "Model performance with CIs", "Main result; Metrics"),
        ("23b", "Performance in key subgroups", "Subgroups section" if ev.subgroups else AUTHORS),
        ("Comparison", "Comparison with clinicians", "Readers section" if ev.settings["reader_columns"] else AUTHORS),
        ("25-27", "Interpretation, limitations, implications", AUTHORS),
    ]


def methods_markdown(ev: Evaluation, p: EvaluationProvenance, ledger: Mapping[str, int] | None = None) -> str:
    """``methods.md``: the paragraphs and the checklist table."""
    lines = ["# Methods (generated from this run)", "", *[para + "\n" for para in methods_paragraphs(ev, p, ledger)]]
    lines += ["## TRIPOD+AI checklist", "",
              "Item numbers follow TRIPOD+AI (Collins et al., BMJ 2024); check them against the official checklist.", "",
              "| Item | Topic | Where |", "|---|---|---|"]
    lines += [f"| {item} | {topic} | {where} |" for item, topic, where in tripod_rows(ev, p, ledger)]
    return "\n".join(lines) + "\n"
