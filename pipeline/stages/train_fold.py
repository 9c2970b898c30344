"""DVC stage ``train_fold@SLOT``: the model of one cross-validation fold, and its predictions.

Usage: ``python -m pipeline.stages.train_fold SLOT CACHE_DIR SPLIT_CSV MODEL_DIR RESULT_DIR``

``dvc.yaml`` runs one such stage per slot (DVC's ``foreach`` loops over a list, not a
number, so the slots are fixed and ``split.folds`` says how many are in use). A slot at or
past ``split.folds`` writes a ``fold.json`` saying so and nothing else, in well under a
second. A slot in use trains as the train stage does, with ``model`` and ``train`` of
params.yaml, on the other folds, selecting its epoch on this fold (pipeline/folds.py).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages (and the pinned torch
# release): a problem ends the stage with one line naming the interpreter and the fix.
require("train_fold")

from pipeline.cli import run_stage  # noqa: E402
from pipeline.config import ModelConfig, SplitConfig, TrainConfig, load_params  # noqa: E402
from pipeline.folders import empty_folder  # noqa: E402
from pipeline.outputs import refuse_overlap, write_atomic  # noqa: E402
from pipeline.schema.crossval import FOLD_FILE, FOLD_LIVE, FOLD_PREDICTIONS, FOLD_SUMMARY, FoldRecord  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slot", type=int, help="the fold this stage trains (0 to MAX_FOLDS - 1)")
    parser.add_argument("cache_dir", help="folder written by preprocess")
    parser.add_argument("split_csv", help="split.csv written by split, with its fold column")
    parser.add_argument("model_dir", help="the fold's checkpoints (best.ckpt, last.ckpt)")
    parser.add_argument("result_dir", help="fold.json, predictions.csv, train_summary.json, dvclive/")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("train_fold", lambda: train_fold(args))


def train_fold(args: argparse.Namespace) -> str:
    model_dir, result_dir = Path(args.model_dir), Path(args.result_dir)
    refuse_overlap({"model_dir": model_dir, "result_dir": result_dir},
                   {"cache_dir": args.cache_dir, "split_csv": args.split_csv, "params": args.params}, stage="train_fold")
    params = load_params(args.params)
    k = SplitConfig.from_params(params).folds
    empty_folder(result_dir, name="result_dir", example="cv/folds/0")
    if args.slot >= k:
        # No checkpoints either: a slot that fell out of use must not keep a stale model.
        empty_folder(model_dir, name="model_dir", example="cv/models/0")
        reason = "split.folds is 0: cross-validation is off" if k == 0 else f"split.folds is {k}"
        _write_record(result_dir, FoldRecord(slot=args.slot, k=k, in_use=False, reason=reason, samples={},
                                             best_epoch=None, best_val_auc=None))
        return f"train_fold: slot {args.slot} not in use ({reason})"
    return _train(args.slot, k, args, params, model_dir, result_dir)


def _train(slot: int, k: int, args: argparse.Namespace, params: dict, model_dir: Path, result_dir: Path) -> str:
    # Imported here: a slot not in use answers without loading torch.
    from pipeline.folds import read_folds, write_fold_cache
    from pipeline.training import train_and_predict

    fold_cache = model_dir.parent / f"{model_dir.name}.fold-cache"  # beside the outs, never one of them
    try:
        samples = write_fold_cache(args.cache_dir, read_folds(args.split_csv, k=k), slot, fold_cache)
        print(f"train_fold: fold {slot} of {k}: train on {samples['train']} series of the other folds, "
              f"select on {samples['val']} of this one, score {samples['test']} of test")
        summary = train_and_predict(
            fold_cache, model_dir, result_dir / FOLD_PREDICTIONS, result_dir / FOLD_SUMMARY, result_dir / FOLD_LIVE,
            model=ModelConfig.from_params(params), train=TrainConfig.from_params(params),
        )
    finally:
        shutil.rmtree(fold_cache, ignore_errors=True)
    _write_record(result_dir, FoldRecord(slot=slot, k=k, in_use=True, reason=None, samples=samples,
                                         best_epoch=summary.best_epoch,
                                         best_val_auc=None if math.isnan(summary.best_val_auc) else summary.best_val_auc))
    return f"train_fold: fold {slot} of {k}: " + summary.line().removeprefix("train: ")


def _write_record(result_dir: Path, record: FoldRecord) -> None:
    write_atomic(result_dir / FOLD_FILE, json.dumps(record.to_json(), indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
