"""The train stage's two declared files, written in one place.

- ``predictions.csv`` (:func:`write_predictions`): ``patient_id``, ``series_key``,
  ``split``, ``label``, ``score`` and the cache's subgroup columns, one row per cached
  val and test sample, in cache order; scores with all 17 significant digits.
- ``train_summary.json`` (:func:`write_train_summary`): weight provenance, the network,
  the sealed digest of ``best.ckpt``, best epoch and its validation AUC, whether the run
  resumed, the configuration and the cache's settings.

The checkpoints and ``fingerprint.json`` in the model folder are Lightning's and
:mod:`pipeline.training.run_folder`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.outputs import write_atomic
from pipeline.schema import TrainSummaryRecord
from pipeline.schema.tables import PREDICTION_COLUMNS
from pipeline.tables import write_rows


@dataclass(frozen=True)
class TrainSummary:
    """What a run reports: its best epoch and AUC, its resume and its weights.

    ``best_epoch`` counts from 0 as Lightning does (and train_summary.json records it so);
    the summary line counts from 1, as the per-epoch lines and the report do.
    """

    best_epoch: int
    best_val_auc: float
    resumed_from_epoch: int | None
    seconds: float
    provenance: dict[str, Any]

    def line(self) -> str:
        source = self.provenance.get("source")
        resumed = f", resumed from epoch {self.resumed_from_epoch}" if self.resumed_from_epoch is not None else ""
        return (
            f"train: best epoch {self.best_epoch + 1} with val AUC {self.best_val_auc:.3f}; weights {source}"
            f"{resumed}; {self.seconds:.0f} s"
        )


def write_predictions(path: str | Path, rows: Iterable[Mapping[str, Any]], subgroup_columns: Sequence[str]) -> None:
    """Write scored rows (``score`` a float) with the prediction columns, then the subgroup columns.

    All 17 significant digits of each score are kept: rounding would tie the scores of
    confident samples near 0 or 1 and change the ROC's ranking.
    """
    formatted = ({**row, "score": format(row["score"], ".17g")} for row in rows)
    write_rows(path, formatted, (*PREDICTION_COLUMNS, *subgroup_columns))


def write_train_summary(
    path: str | Path,
    summary: TrainSummary,
    *,
    network: Mapping[str, Any],
    model_digest: str,
    config: Mapping[str, Any],
    cache_meta: Mapping[str, Any],
) -> None:
    """Write ``train_summary.json``.

    Args:
        path: the file.
        summary: the run's result.
        network: ``arch``, ``spatial_dims``, ``in_channels``, ``num_classes`` of the model.
        model_digest: the sealed digest of ``best.ckpt`` (:mod:`pipeline.modelfile`), the model
            whose scores ``predictions.csv`` holds: evaluate names the model its threshold
            belongs to with it, without loading torch.
        config: ``{"model": ..., "train": ...}``, the settings as the run used them.
        cache_meta: the cache's ``meta.json`` (its ROI, spacing and counts are recorded).
    """
    payload = {
        "weights": summary.provenance,
        "model": dict(network),
        "model_digest": model_digest,
        "best_epoch": summary.best_epoch,
        "best_val_auc": summary.best_val_auc,
        "resumed_from_epoch": summary.resumed_from_epoch,
        "seconds": round(summary.seconds, 1),
        "config": config,
        "cache": {"roi": cache_meta["roi"], "pixdim": cache_meta["pixdim"], "counts": cache_meta["counts"]},
    }
    # Through the record evaluate reads it with: a key the report needs cannot go missing here.
    record = TrainSummaryRecord.from_json(json.loads(json.dumps(payload, default=str)), file=str(path))
    write_atomic(path, json.dumps(record.to_json(), indent=2, default=str) + "\n")
