"""DVC stage ``evaluate``: predictions -> metrics.json, DVC plots, figures, report.html.

Usage: the ``cmd`` of the evaluate stage in ``dvc.yaml``, which names every output
(``--help`` lists the options, one per declared out)::

    python -m pipeline.stages.evaluate PREDICTIONS --metrics PATH --roc PATH --roc-plots DIR ... \
        [--train-summary JSON] [--params YAML] [--lock dvc.lock] [--ledger CSV] [--compare OTHER_PREDICTIONS] \
        [--external reports/external/index.json] [--cv reports/cv/cv.json]
        [--gallery reports/gallery/gallery.json] [--localisation reports/localisation.json]

Reads ``base.seed`` and ``evaluate.*`` from params. Bad input stops the stage with one
message naming the rule and the fix (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("evaluate")

from pipeline.config import EvaluateConfig, load_params  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402
from pipeline.report import run_evaluation  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402
from pipeline.schema import EvaluateOutputs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="predictions.csv written by the train stage")
    outputs = parser.add_argument_group("outputs (each one an out of the stage in dvc.yaml)")
    for output in fields(EvaluateOutputs):
        outputs.add_argument(f"--{output.name.replace('_', '-')}", type=Path, required=True, metavar="PATH",
                             help=output.metadata["help"])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--train-summary", type=Path, default=None, help="train_summary.json, for weight provenance")
    parser.add_argument("--lock", type=Path, default=None, help="dvc.lock, for data hashes in the report")
    parser.add_argument("--ledger", type=Path, default=None, help="ingest's ledger.csv, for the methods paragraph")
    parser.add_argument("--compare", type=Path, default=None, help="another predictions.csv for a paired DeLong test")
    parser.add_argument("--external", type=Path, default=None,
                        help="the external stage's index.json: its sites beside the test split in the report")
    parser.add_argument("--cv", type=Path, default=None,
                        help="the crossval stage's cv.json: metrics.json's cv block and the report's section")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="the explain stage's gallery.json: its Grad-CAM overlays in the report")
    parser.add_argument("--localisation", type=Path, default=None,
                        help="the localise stage's localisation.json: its check of the Grad-CAM peaks in the report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stage("evaluate", lambda: evaluate(args))


def output_paths(args: argparse.Namespace) -> EvaluateOutputs:
    """The output options of the command line as one record."""
    return EvaluateOutputs(**{output.name: getattr(args, output.name) for output in fields(EvaluateOutputs)})


def evaluate(args: argparse.Namespace) -> str:
    outputs = output_paths(args)
    refuse_overlap(
        outputs.paths(),
        {"predictions": args.predictions, "train_summary": args.train_summary, "params": args.params,
         "lock": args.lock, "compare": args.compare, "ledger": args.ledger, "external": args.external,
         "cv": args.cv, "gallery": args.gallery, "localisation": args.localisation},
        stage="evaluate",
    )
    params = load_params(args.params)
    config = EvaluateConfig.from_params(params)
    evaluation = run_evaluation(
        args.predictions,
        outputs,
        config,
        compare=args.compare,
        train_summary=args.train_summary,
        params=params,
        params_file=args.params,
        lock=args.lock,
        ledger=args.ledger,
        external=args.external,
        cv=args.cv,
        gallery=args.gallery,
        localisation=args.localisation,
    )
    test = evaluation.metrics.test
    lo, hi = test.auc_ci95
    method = test.calibration_method
    if method == "none":
        at = f"threshold {test.threshold:.4g}"
    else:
        cut = test.threshold_score
        at = f"calibrated threshold {test.threshold:.4g} ({method}; score >= {cut:.4g})" if cut is not None else (
            f"calibrated threshold {test.threshold:.4g} ({method})"
        )
    ece = "n/a" if test.ece is None else f"{test.ece:.3f}"
    cv = evaluation.metrics.cv
    folds = "" if cv is None else (
        f" Cross-validation: pooled out-of-fold AUC {cv.auc:.3f} (95% CI {cv.auc_ci95[0]:.3f}-{cv.auc_ci95[1]:.3f}) "
        f"over {cv.k} folds.")
    return (
        f"evaluate: test AUC {test.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {test.n_patients} patients; "
        f"sensitivity {test.sensitivity:.3f}, specificity {test.specificity:.3f} at {at} chosen on val; "
        f"test ECE {ece}.{folds} Report: {outputs.report}"
    )

if __name__ == "__main__":
    sys.exit(main())
