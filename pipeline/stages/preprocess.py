"""DVC stage ``preprocess``: index + split -> cached tensors.

Usage: ``python -m pipeline.stages.preprocess INDEX_CSV SPLIT_CSV CACHE_DIR``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("preprocess")

from pipeline.config import PreprocessConfig, load_params  # noqa: E402
from pipeline.outputs import refuse_overlap, staged_folder  # noqa: E402
from pipeline.preprocessing import build_cache  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index", help="index.csv written by ingest")
    parser.add_argument("split", help="split.csv written by split")
    parser.add_argument("cache_dir", help="folder to write the cache into (replaced)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("preprocess", lambda: write_cache(args))


def write_cache(args: argparse.Namespace) -> str:
    # The index's folder holds the volumes it lists (image_path is relative to it).
    inputs = {"index": args.index, "index folder": Path(args.index).parent, "split": args.split, "params": args.params}
    refuse_overlap({"cache_dir": args.cache_dir}, inputs, stage="preprocess")
    config = PreprocessConfig.from_params(load_params(args.params))
    # Built aside and moved into place when complete: training never memory-maps a
    # split whose rows, meta.json or excluded.csv are missing after a killed run.
    with staged_folder(args.cache_dir, name="cache_dir", example="data/cache") as cache_dir:
        summary = build_cache(
            args.index,
            args.split,
            cache_dir,
            spatial_dims=config.spatial_dims,
            roi=config.roi,
            pixdim=config.pixdim,
            hu_window=config.hu_window,
            channels=config.channels,
            resize=config.resize,
            intensity=config.intensity,
            intensity_range=config.intensity_range,
            crop_foreground=config.crop_foreground,
        )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
