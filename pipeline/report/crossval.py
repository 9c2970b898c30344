"""Cross-validation results: the folds' predictions pooled, evaluated as one out-of-fold set.

Every patient outside test is scored once, by the fold model that never saw them; those
rows pooled are evaluated as a validation split is (:func:`pipeline.report.evaluate_table`):
AUC with its CI, the threshold and the recalibration map chosen on them. The test split,
scored by each fold model, gets the mean of the fold models' probabilities per series and
is called at that threshold. Each fold's own AUC on the patients it held out gives the
spread between folds (mean and SD), which the pooled AUC alone hides.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import EvaluateConfig
from pipeline.errors import PipelineInputError
from pipeline.metrics import roc_auc_ci, roc_curve
from pipeline.report.evaluation import Evaluation, evaluate_table
from pipeline.report.predictions import read_predictions
from pipeline.schema import CrossValidation, FoldAuc
from pipeline.schema.crossval import (
    CV_PREDICTION_COLUMNS, CV_ROC_PNG, FOLD_FILE, FOLD_PREDICTIONS, CrossValidationFile, FoldRecord,
)
from pipeline.schema.json_records import read_json_object
from pipeline.schema.tables import PREDICTION_COLUMNS
from pipeline.tables import read_rows, write_rows


class CrossValidationError(PipelineInputError):
    """The fold folders do not add up to one cross-validation of ``split.folds`` folds."""


@dataclass(frozen=True)
class PooledFolds:
    """The folds' rows pooled: ``rows`` as the crossval stage's predictions.csv holds them."""

    k: int
    rows: list[dict[str, str]]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class CrossValidationResults:
    """The crossval stage's folder as evaluate reads it: ``cv.json`` and the ROC figure."""

    file: str
    k: int
    cv: CrossValidation | None
    roc_png: bytes


def read_cross_validation(cv_file: str | Path) -> CrossValidationResults:
    """``cv.json`` and ``roc.png`` beside it, as the crossval stage wrote them."""
    cv_file = Path(cv_file)
    record = CrossValidationFile.from_json(
        read_json_object(cv_file, CrossValidationFile.WHAT, CrossValidationFile.FIX), file=str(cv_file))
    png = cv_file.parent / CV_ROC_PNG
    if not png.is_file():
        raise CrossValidationError(f"{str(png)!r} must exist beside {str(cv_file)!r}; it was not found. "
                                   f"{CrossValidationFile.FIX}")
    return CrossValidationResults(file=str(cv_file), k=record.k, cv=record.cv, roc_png=png.read_bytes())


def read_fold_records(folds_dir: str | Path) -> list[FoldRecord]:
    """``fold.json`` of every slot folder under ``folds_dir``, by slot."""
    paths = sorted(Path(folds_dir).glob(f"*/{FOLD_FILE}"))
    records = [FoldRecord.from_json(read_json_object(p, FoldRecord.WHAT, FoldRecord.FIX), file=str(p)) for p in paths]
    return sorted(records, key=lambda r: r.slot)


def pool_folds(folds_dir: str | Path, *, k: int) -> PooledFolds:
    """Pool the predictions of the ``k`` slots in use: out-of-fold val rows, fold-mean test rows.

    Raises:
        CrossValidationError: slots in use other than 0 to ``k - 1`` (a fold stage of an
            older ``split.folds``), or folds that scored different test series.
    """
    in_use = [r for r in read_fold_records(folds_dir) if r.in_use]
    if [r.slot for r in in_use] != list(range(k)) or any(r.k != k for r in in_use):
        raise CrossValidationError(
            f"the fold folders of {str(folds_dir)!r} must hold folds 0 to {k - 1} in use (split.folds: {k}); got "
            f"{[(r.slot, r.k) for r in in_use]} as (slot, k). Run the train_fold stages again (dvc repro)."
        )
    rows: list[dict[str, str]] = []
    test: dict[str, list[float]] = defaultdict(list)
    test_rows: dict[str, dict[str, str]] = {}
    extra: tuple[str, ...] = ()
    for record in in_use:
        fold_rows = read_rows(Path(folds_dir) / str(record.slot) / FOLD_PREDICTIONS, required=PREDICTION_COLUMNS)
        extra = tuple(c for c in (fold_rows[0] if fold_rows else ()) if c not in PREDICTION_COLUMNS)
        for row in fold_rows:
            if row["split"] == "val":
                rows.append({**row, "fold": str(record.slot)})
            elif row["split"] == "test":
                test[row["series_key"]].append(float(row["score"]))
                test_rows.setdefault(row["series_key"], row)
    uneven = sorted(key for key, scores in test.items() if len(scores) != k)
    if uneven:
        raise CrossValidationError(
            f"every fold model must score the same test series; {len(uneven)} were scored by fewer than {k} folds "
            f"(first: {uneven[0]!r}). The folds ran on different caches: run them again (dvc repro -f train_fold)."
        )
    for key in sorted(test):
        rows.append({**test_rows[key], "score": format(float(np.mean(test[key])), ".17g"), "fold": ""})
    return PooledFolds(k=k, rows=rows, columns=(*CV_PREDICTION_COLUMNS, *extra))


def write_pooled(pooled: PooledFolds, path: str | Path) -> None:
    write_rows(path, pooled.rows, pooled.columns)


def evaluate_pooled(pooled: PooledFolds, config: EvaluateConfig) -> tuple[CrossValidation, Evaluation, dict]:
    """The ``cv`` block of the pooled rows, the evaluation behind it, and each fold's ROC curve.

    Returns:
        ``(cv, evaluation, curves)``; ``curves`` maps ``"fold <i>"`` and ``"pooled"`` to
        ``(fpr, tpr)`` arrays.
    """
    with tempfile.TemporaryDirectory() as scratch:
        # Without the fold column, which evaluate would otherwise detect as a subgroup.
        path = Path(scratch) / "pooled.csv"
        write_rows(path, ({k: v for k, v in r.items() if k != "fold"} for r in pooled.rows),
                   [c for c in pooled.columns if c != "fold"])
        table = read_predictions(path, aggregate=config.aggregate)
    evaluation = evaluate_table(table, config)
    oof = table.select("val")
    fold_of = {r["patient_id"]: int(r["fold"]) for r in pooled.rows if r["fold"] != ""}
    patient_fold = np.array([fold_of[p] for p in oof.patient_id])
    folds, curves = [], {}
    for fold in range(pooled.k):
        mask = patient_fold == fold
        y, s = oof.label[mask], oof.score[mask]
        auc, lo, hi = roc_auc_ci(y, s, method=config.ci_method, n_boot=config.n_boot, seed=config.seed)
        folds.append(FoldAuc(fold=fold, auc=auc, auc_ci95=(lo, hi), n_patients=int(mask.sum()), n_positive=int(y.sum())))
        fpr, tpr, _ = roc_curve(y, s)
        curves[f"fold {fold}"] = (fpr, tpr)
    fpr, tpr, _ = roc_curve(oof.label, oof.score)
    curves["pooled"] = (fpr, tpr)
    block = evaluation.metrics.val
    aucs = [f.auc for f in folds]
    cv = CrossValidation(
        k=pooled.k, auc=block.auc, auc_ci95=block.auc_ci95, auc_mean=statistics.fmean(aucs),
        auc_sd=statistics.stdev(aucs), folds=tuple(folds), calibration=evaluation.metrics.calibration,
        oof=block, test=evaluation.metrics.test,
    )
    return cv, evaluation, curves
