"""DVC stage ``split``: patients -> train/val/test.

Usage: ``python -m pipeline.stages.split INDEX_CSV SPLIT_CSV``
"""

from __future__ import annotations

import argparse
import sys

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("split")

from pipeline.config import SplitConfig, load_params  # noqa: E402
from pipeline.outputs import atomic_file, refuse_overlap  # noqa: E402
from pipeline.splits import assign_splits, summarise  # noqa: E402
from pipeline.stages.outcome import run_stage  # noqa: E402
from pipeline.tables import read_rows, write_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index", help="index.csv written by ingest")
    parser.add_argument("out", help="split.csv to write: patient_id, split, label")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("split", lambda: write_split(args))


def write_split(args: argparse.Namespace) -> str:
    refuse_overlap({"out": args.out}, {"index": args.index, "params": args.params}, stage="split")
    config = SplitConfig.from_params(load_params(args.params))
    rows = read_rows(args.index, required=("patient_id", "label"))
    splits = assign_splits(
        rows, seed=config.seed, val_fraction=config.val_fraction, test_fraction=config.test_fraction
    )
    with atomic_file(args.out) as temp:
        write_rows(temp, ({"patient_id": s.patient_id, "split": s.split, "label": s.label} for s in splits),
                   ("patient_id", "split", "label"))
    counts = summarise(splits)
    return "split: " + ", ".join(f"{part} {c['patients']} patients ({c['positive']} positive)" for part, c in counts.items())


if __name__ == "__main__":
    sys.exit(main())
