"""Cross-validation's artifacts: one folder per fold slot, and the pooled results.

``dvc.yaml`` has one ``train_fold`` stage per slot (0 to :data:`pipeline.rules.MAX_FOLDS`
- 1); a slot at or past ``split.folds`` only records that it is not in use. Each writes
its result folder (``cv/folds/<slot>``) and its checkpoints (``cv/models/<slot>``)::

    cv/folds/<slot>/fold.json            FoldRecord: in use or not, and the fold's counts
    cv/folds/<slot>/predictions.csv      PREDICTION_COLUMNS: val = the held-out fold, and test
    cv/folds/<slot>/train_summary.json   TrainSummaryRecord of the fold's model
    cv/folds/<slot>/dvclive/             the fold's training curves

The crossval stage pools the slots in use into its folder (``reports/cv``)::

    cv.json            CrossValidationFile: k, and the ``cv`` block of metrics.json
    predictions.csv    the pooled out-of-fold rows (split ``oof``, column ``fold``) and the test
                       rows scored by the mean of the fold models (split ``test``)
    roc.json           DVC plot rows: fpr, tpr, fold ("pooled" for the pooled curve)
    roc.png            every fold's ROC curve and the pooled one, in one figure
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from pipeline.schema.evaluate import CrossValidation
from pipeline.schema.json_records import JsonFile

FOLD_FILE = "fold.json"
FOLD_PREDICTIONS = "predictions.csv"
FOLD_SUMMARY = "train_summary.json"
FOLD_LIVE = "dvclive"
CV_FILE = "cv.json"
CV_PREDICTIONS = "predictions.csv"
CV_ROC = "roc.json"
CV_ROC_PNG = "roc.png"
#: The split name of the pooled out-of-fold rows in the crossval stage's predictions.csv.
OOF_SPLIT = "oof"
#: predictions.csv of the crossval stage: the train stage's columns and the fold.
CV_PREDICTION_COLUMNS: tuple[str, ...] = ("patient_id", "series_key", "split", "label", "score", "fold")


@dataclass(frozen=True)
class FoldRecord(JsonFile):
    """``fold.json`` of one slot: ``in_use`` false (with ``reason``) past ``split.folds``.

    ``samples`` counts the fold cache's series per part (train = the other folds, val =
    this fold, test); empty for a slot not in use.
    """

    WHAT: ClassVar[str] = "fold file"
    FIX: ClassVar[str] = "It is written by the train_fold stages: run them again (dvc repro)."
    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"reason", "samples", "best_epoch", "best_val_auc"})

    slot: int
    k: int
    in_use: bool
    reason: str | None
    samples: Mapping[str, int]
    best_epoch: int | None
    best_val_auc: float | None


@dataclass(frozen=True)
class CrossValidationFile(JsonFile):
    """``cv.json``: ``k`` (0 with cross-validation off) and, when on, the ``cv`` block."""

    WHAT: ClassVar[str] = "cross-validation file"
    FIX: ClassVar[str] = "It is written by the crossval stage: run it again (dvc repro crossval)."
    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset({"cv"})

    k: int
    cv: CrossValidation | None
