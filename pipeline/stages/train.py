"""DVC stage ``train``: cache -> fine-tuned ResNet, predictions for val and test.

Usage: ``python -m pipeline.stages.train CACHE_DIR MODEL_DIR PREDICTIONS_CSV SUMMARY_JSON LIVE_DIR``
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config import ModelConfig, TrainConfig, load_params
from pipeline.stages.outcome import run_stage
from pipeline.training import train_and_predict


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
