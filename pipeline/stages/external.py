"""DVC stage ``external``: each external cohort through the frozen model at the internal operating point.

Usage: the ``cmd`` of the external stage in ``dvc.yaml``::

    python -m pipeline.stages.external MODEL PREDICTIONS OUT_DIR [--params params.yaml]

Reads ``external`` (the cohorts: name, raw_dir, manifest), ``ingest.*`` (read as the
internal cohort was, same pseudonym key), ``evaluate.*`` and ``base.seed`` (the operating
point chosen on the internal validation split of PREDICTIONS, and the interval settings).
Writes ``OUT_DIR/index.json`` and, per site, ``OUT_DIR/<name>/`` with ``metrics.json``,
``predictions.csv`` and ``ledger.csv`` (see :mod:`pipeline.external`); with no site
declared only the index, listing none. Bad input stops the stage with one message naming
the rule and the fix (exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("external")

from pipeline.cli import run_stage  # noqa: E402
from pipeline.config import EvaluateConfig, ExternalConfig, IngestConfig, load_params  # noqa: E402
from pipeline.external import validate_external  # noqa: E402
from pipeline.outputs import refuse_overlap  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.external", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model file written by train (models/best.ckpt)")
    parser.add_argument("predictions", type=Path, help="the internal predictions.csv of that model (for the operating point)")
    parser.add_argument("out_dir", type=Path, help="output folder (replaced whole): index.json and one folder per site")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_stage("external", lambda: external(args))


def external(args: argparse.Namespace) -> str:
    params = load_params(args.params)
    config = ExternalConfig.from_params(params)
    inputs = {"model": args.model, "predictions": args.predictions, "params": args.params}
    for site in config.sites:
        inputs |= {f"external[{site.name}].raw_dir": Path(site.raw_dir), f"external[{site.name}].manifest": Path(site.manifest)}
    refuse_overlap({"out_dir": args.out_dir}, inputs, stage="external")
    summary = validate_external(
        config.sites, model=args.model, predictions=args.predictions, out_dir=args.out_dir,
        ingest=IngestConfig.from_params(params), evaluate=EvaluateConfig.from_params(params),
    )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
