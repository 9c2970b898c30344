"""DVC stage ``crossval``: the fold models' predictions -> pooled out-of-fold evaluation.

Usage: ``python -m pipeline.stages.crossval FOLDS_DIR OUT_DIR``

Reads ``split.folds`` and ``evaluate.*`` from params. With ``split.folds: 0`` it writes
``cv.json`` saying ``k: 0``, an empty ROC table and a figure saying cross-validation is
off, so that its outputs, and evaluate's deps on them, stay the same in ``dvc.yaml``.
The files are listed in :mod:`pipeline.schema.crossval`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("crossval")

from pipeline.cli import run_stage  # noqa: E402
from pipeline.config import EvaluateConfig, SplitConfig, load_params  # noqa: E402
from pipeline.folders import empty_folder  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402
from pipeline.report.crossval import PooledFolds, evaluate_pooled, pool_folds, write_pooled  # noqa: E402
from pipeline.report.figures import cv_roc_png  # noqa: E402
from pipeline.report.writers import write_json  # noqa: E402
from pipeline.schema.crossval import (  # noqa: E402
    CV_FILE, CV_PREDICTION_COLUMNS, CV_PREDICTIONS, CV_ROC, CV_ROC_PNG, CrossValidationFile,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folds_dir", type=Path, help="the train_fold stages' result folders (cv/folds)")
    parser.add_argument("out_dir", type=Path, help="folder to write: cv.json, predictions.csv, roc.json, roc.png")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    return run_stage("crossval", lambda: crossval(args))


def crossval(args: argparse.Namespace) -> str:
    refuse_overlap({"out_dir": args.out_dir}, {"folds_dir": args.folds_dir, "params": args.params}, stage="crossval")
    params = load_params(args.params)
    k = SplitConfig.from_params(params).folds
    if k == 0:
        out = empty_folder(args.out_dir, name="out_dir", example="reports/cv")
        write_pooled(PooledFolds(k=0, rows=[], columns=CV_PREDICTION_COLUMNS), out / CV_PREDICTIONS)
        write_json(out / CV_FILE, CrossValidationFile(k=0, cv=None).to_json())
        write_json(out / CV_ROC, [])
        (out / CV_ROC_PNG).write_bytes(cv_roc_png({}, None))
        return "crossval: off (split.folds: 0); set split.folds: 5 for 5-fold cross-validation"
    pooled = pool_folds(args.folds_dir, k=k)
    cv, _, curves = evaluate_pooled(pooled, EvaluateConfig.from_params(params))
    out = empty_folder(args.out_dir, name="out_dir", example="reports/cv")  # emptied once all is computed
    write_pooled(pooled, out / CV_PREDICTIONS)
    write_json(out / CV_FILE, CrossValidationFile(k=k, cv=cv).to_json())
    write_json(out / CV_ROC, [{"fold": name, "fpr": float(x), "tpr": float(y)}
                               for name, (fpr, tpr) in curves.items() for x, y in zip(fpr, tpr)])
    (out / CV_ROC_PNG).write_bytes(cv_roc_png(curves, cv))
    lo, hi = cv.auc_ci95
    test_lo, test_hi = cv.test.auc_ci95
    return (f"crossval: {k} folds, pooled out-of-fold AUC {cv.auc:.3f} (95% CI {lo:.3f}-{hi:.3f}) on "
            f"{cv.oof.n_patients} patients, per fold {cv.auc_mean:.3f} ± {cv.auc_sd:.3f}; test by the folds' mean "
            f"{cv.test.auc:.3f} ({test_lo:.3f}-{test_hi:.3f}) on {cv.test.n_patients} patients")


if __name__ == "__main__":
    sys.exit(main())
