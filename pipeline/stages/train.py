"""DVC stage ``train``: cache -> fine-tuned ResNet, predictions for val and test.

Usage: ``python -m pipeline.stages.train CACHE_DIR MODEL_DIR PREDICTIONS_CSV SUMMARY_JSON LIVE_DIR``
"""

from __future__ import annotations

import argparse
import sys

from pipeline.environment import require

# Before the imports below, which need the project's packages (and the pinned torch
# release): a problem ends the stage with one line naming the interpreter and the fix.
require("train")

from pipeline.config import ModelConfig, TrainConfig, load_params  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402
from pipeline.training import train_and_predict  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cache_dir", help="folder written by preprocess")
    parser.add_argument("model_dir", help="checkpoints (best.ckpt, last.ckpt)")
    parser.add_argument("predictions", help="predictions.csv to write")
    parser.add_argument("summary", help="train_summary.json to write (weights provenance, best epoch)")
    parser.add_argument("live_dir", help="DVCLive folder")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("train", lambda: train(args))


def train(args: argparse.Namespace) -> str:
    refuse_overlap(
        {"model_dir": args.model_dir, "predictions": args.predictions, "summary": args.summary, "live_dir": args.live_dir},
        {"cache_dir": args.cache_dir, "params": args.params},
        stage="train",
    )
    params = load_params(args.params)
    summary = train_and_predict(
        args.cache_dir,
        args.model_dir,
        args.predictions,
        args.summary,
        args.live_dir,
        model=ModelConfig.from_params(params),
        train=TrainConfig.from_params(params),
    )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
