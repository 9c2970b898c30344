"""DVC stage ``ingest``: raw DICOM/NIfTI export + manifest -> volumes, index, ledger.

Usage::

    python -m pipeline.stages.ingest RAW_DIR MANIFEST OUT_DIR [--params params.yaml]

Reads ``ingest.pseudonym_key`` (overridden by the ``PIPELINE_PSEUDONYM_KEY`` environment
variable), ``ingest.series_choice``, ``ingest.spacing_policy``, ``ingest.workers``,
``ingest.manifest_encoding``, ``ingest.assume_missing_geometry`` and ``ingest.max_voxels``.
Prints one summary line whose counts add up to the files found; a manifest or params
problem exits with status 2 and a message listing every bad row.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config import (
    DEMO_PSEUDONYM_KEY,
    PSEUDONYM_KEY_ENV,
    IngestConfig,
    load_params,
)
from pipeline.io.ingest import ingest_cohort
from pipeline.stages.outcome import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", help="folder holding the raw export")
    parser.add_argument("manifest", help="manifest CSV: patient_id, label, path|series_uid|study_uid, ...")
    parser.add_argument("out_dir", help="receives volumes/, index.csv and ledger.csv")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    return run_stage("ingest", lambda: ingest(args))


def ingest(args: argparse.Namespace) -> str:
    config = IngestConfig.from_params(load_params(args.params))
    if config.pseudonym_key == DEMO_PSEUDONYM_KEY:
        print(
            "ingest: WARNING: the pseudonym key is the public demo key from params.yaml; anyone can "
            "reverse pseudonyms made with it by hashing candidate IDs. For patient data, export "
            f"{PSEUDONYM_KEY_ENV}='<a long random secret>' and run 'dvc repro -f ingest' (DVC does "
            "not see environment variables, so it will not re-run ingest by itself).",
            file=sys.stderr,
        )
    summary = ingest_cohort(
        args.raw_dir,
        args.manifest,
        args.out_dir,
        pseudonym_key=config.pseudonym_key,
        series_choice=config.series_choice,
        spacing_policy=config.spacing_policy,
        workers=config.workers,
        manifest_encoding=config.manifest_encoding,
        assume_missing_geometry=config.assume_missing_geometry,
        max_voxels=config.max_voxels,
    )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
