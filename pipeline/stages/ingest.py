"""DVC stage ``ingest``: raw DICOM/NIfTI export + manifest -> volumes, index, ledger.

Usage::

    python -m pipeline.stages.ingest RAW_DIR MANIFEST OUT_DIR [--store STORE] [--params params.yaml]

Reads ``ingest.pseudonym_key`` (overridden by the ``PIPELINE_PSEUDONYM_KEY`` environment
variable), ``ingest.series_choice``, ``ingest.spacing_policy``, ``ingest.workers``,
``ingest.manifest_encoding``, ``ingest.assume_missing_geometry``, ``ingest.max_voxels`` and
``ingest.volume_format``. With ``--store`` (dvc.yaml passes ``data/ingest-store``), files
and series unchanged since the last run are not read again (:mod:`pipeline.io.store`);
the outputs are byte-identical to a run without it. Progress goes to standard error.
``OUT_DIR/settings.json`` records the settings that decide a series' voxels, which travel
with the cache into the model file so that predict ingests new studies the same way.
Prints one summary line whose counts add up to the files found; a manifest or params
problem exits with status 2 and a message listing every bad row. ``OUT_DIR`` must not
be, contain or lie inside ``RAW_DIR`` or the manifest; it is written aside and replaces
the previous output only when complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("ingest")

from pipeline.config import DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV, IngestConfig, load_params  # noqa: E402
from pipeline.io.ingest import IngestSummary, ingest_cohort  # noqa: E402
from pipeline.io.progress import Progress  # noqa: E402
from pipeline.outputs import refuse_overlap, staged_folder  # noqa: E402
from pipeline.schema.tables import INGESTED_CONTENTS  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", help="folder holding the raw export")
    parser.add_argument("manifest", help="manifest CSV: patient_id, label, path|series_uid|study_uid, ...")
    parser.add_argument("out_dir", help="receives volumes/, index.csv and ledger.csv (replaced whole)")
    parser.add_argument(
        "--store", default=None,
        help="folder kept between runs so unchanged series are not read again (e.g. data/ingest-store)",
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    return run_stage("ingest", lambda: ingest(args))


def ingest(args: argparse.Namespace) -> str:
    refuse_overlap(
        {"out_dir": args.out_dir, "store": args.store},
        {"raw_dir": args.raw_dir, "manifest": args.manifest, "params": args.params},
        stage="ingest",
    )
    if args.store is not None:
        refuse_overlap({"store": args.store}, {"out_dir": args.out_dir}, stage="ingest")
    config = IngestConfig.from_params(load_params(args.params))
    if config.pseudonym_key == DEMO_PSEUDONYM_KEY:
        print(
            "ingest: WARNING: the pseudonym key is the public demo key from params.yaml; anyone can "
            "reverse pseudonyms made with it by hashing candidate IDs. For patient data, export "
            f"{PSEUDONYM_KEY_ENV}='<a long random secret>' and run 'dvc repro -f ingest' (DVC does "
            "not see environment variables, so it will not re-run ingest by itself).",
            file=sys.stderr,
        )
    # Written aside and moved into place when complete: a killed run leaves the previous
    # index, ledger and volumes (or none), never a mix.
    outputs = INGESTED_CONTENTS
    progress = Progress()
    with staged_folder(args.out_dir, name="out_dir", example="data/ingested", contents=outputs) as out:
        try:
            summary = _run(args, config, out, progress)
        finally:
            progress.close()
    return summary.line()


def _run(args: argparse.Namespace, config: IngestConfig, out: Path, progress: Progress) -> IngestSummary:
    return ingest_cohort(
        args.raw_dir,
        args.manifest,
        out,
        pseudonym_key=config.pseudonym_key,
        series_choice=config.series_choice,
        spacing_policy=config.spacing_policy,
        workers=config.workers,  # type: ignore[arg-type]  # "auto" resolved by IngestConfig
        manifest_encoding=config.manifest_encoding,
        assume_missing_geometry=config.assume_missing_geometry,
        max_voxels=config.max_voxels,
        volume_format=config.volume_format,
        store_dir=args.store,
        progress=progress,
    )


if __name__ == "__main__":
    sys.exit(main())
