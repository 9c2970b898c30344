"""DVC stage ``explain``: Grad-CAM overlays of the test cases the model got most right and most wrong.

Usage: the ``cmd`` of the explain stage in ``dvc.yaml``::

    python -m pipeline.stages.explain MODEL PREDICTIONS INDEX OUT_DIR [--params params.yaml]

Reads ``evaluate.*`` and ``base.seed`` (the operating point, chosen on the validation
patients of PREDICTIONS as evaluate chooses it) and ``explain.*`` (cases per group, the
ResNet stage of the maps). Each chosen test series is read from ingest's INDEX as
``predict`` reads it and scored again by MODEL with its Grad-CAM map. Writes OUT_DIR
(replaced whole): ``gallery.json`` and one PNG per case (:mod:`pipeline.gallery`), which
the evaluate stage puts in the report. Bad input stops the stage with one message naming
the rule and the fix (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("explain")

from pipeline.cli import run_stage  # noqa: E402
from pipeline.config import EvaluateConfig, ExplainConfig, load_params  # noqa: E402
from pipeline.gallery import build_gallery  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.explain", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file written by train (models/best.ckpt)")
    parser.add_argument("predictions", type=Path, help="that model's predictions.csv")
    parser.add_argument("index", type=Path, help="ingest's index.csv (the volumes it lists are read)")
    parser.add_argument("out_dir", type=Path, help="output folder (replaced whole): gallery.json and the overlays")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stage("explain", lambda: explain(args))


def explain(args: argparse.Namespace) -> str:
    refuse_overlap({"out_dir": args.out_dir},
                   {"model": args.model, "predictions": args.predictions, "index": args.index, "params": args.params},
                   stage="explain")
    params = load_params(args.params)
    summary = build_gallery(args.model, args.predictions, args.index, args.out_dir,
                            evaluate=EvaluateConfig.from_params(params), explain=ExplainConfig.from_params(params))
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
