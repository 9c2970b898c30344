"""DVC stage ``preprocess``: index + split -> cached tensors.

Usage: ``python -m pipeline.stages.preprocess INDEX_CSV SPLIT_CSV CACHE_DIR``
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config import PreprocessConfig, load_params
from pipeline.folders import empty_folder
from pipeline.preprocessing import build_cache
from pipeline.stages.outcome import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("index", help="index.csv written by ingest")
    parser.add_argument("split", help="split.csv written by split")
    parser.add_argument("cache_dir", help="folder to write the cache into (replaced)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    return run_stage("preprocess", lambda: write_cache(args))


def write_cache(args: argparse.Namespace) -> str:
    config = PreprocessConfig.from_params(load_params(args.params))
    cache_dir = empty_folder(args.cache_dir, name="cache_dir", example="data/cache")
    summary = build_cache(
        args.index,
        args.split,
        cache_dir,
        spatial_dims=config.spatial_dims,
        roi=config.roi,
        pixdim=config.pixdim,
        hu_window=config.hu_window,
        intensity=config.intensity,
        intensity_range=config.intensity_range,
        crop_foreground=config.crop_foreground,
    )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
