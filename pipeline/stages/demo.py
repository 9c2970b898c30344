"""DVC stage ``demo``: write the synthetic cohort so a fresh clone runs end to end.

Usage: ``python -m pipeline.stages.demo RAW_DIR MANIFEST [--lesions CSV] [--params params.yaml] [--external-site NAME]``.
Reads ``base.seed`` and ``demo.*``; see :class:`pipeline.config.DemoConfig`.

``--lesions CSV`` also writes where each lesion was drawn (patient space, mm): ground
truth for the localisation check of ``pipeline.stages.localise``, read by no stage
before it, so it never reaches training.

With ``--external-site NAME`` it writes instead a cohort from another hospital, to try
external validation on (declare it in params ``external``): the same ``demo`` settings, its
own patients (a seed drawn from ``base.seed`` and NAME) and one scanner of its own, with
noisier images than the internal sites (:data:`pipeline.demo.dicom_writer.EXTERNAL_SITE`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from pipeline.environment import require

# Before the imports below, which need the project's packages: a missing one ends the
# stage with one line naming the interpreter and the fix (see pipeline/environment.py).
require("demo")

from pipeline.config import DemoConfig, load_params  # noqa: E402
from pipeline.demo.cohort import CohortSummary, make_cohort, site_seed, write_lesion_truth  # noqa: E402
from pipeline.demo.dicom_writer import EXTERNAL_SITE, SITES, Site  # noqa: E402
from pipeline.demo.phantom import DEFAULT_PHANTOM  # noqa: E402
from pipeline.outputs import atomic_file, refuse_overlap, staged_folder  # noqa: E402
from pipeline.cli import run_stage  # noqa: E402
from pipeline.rules import check_site_name  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.demo", description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path, help="folder for the raw DICOM/NIfTI files (replaced)")
    parser.add_argument("manifest", type=Path, help="manifest CSV to write: patient_id,label,path,site")
    parser.add_argument("--lesions", type=Path, default=None,
                        help="also write each lesion's centre and semi-axes (LPS mm) to this CSV: demo ground truth")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--external-site", default=None, metavar="NAME",
                        help="write an external site's cohort instead: own patients, own scanner (noisier)")
    args = parser.parse_args(argv)
    return run_stage("demo", lambda: write_demo(args))


def write_demo(args: argparse.Namespace) -> str:
    # The lesion file beside, never inside, the raw folder: ingest would ledger it as a raw file.
    refuse_overlap({"lesions": args.lesions}, {"raw_dir": args.raw_dir, "manifest": args.manifest}, stage="demo")
    refuse_overlap({"raw_dir": args.raw_dir, "manifest": args.manifest, "lesions": args.lesions},
                   {"params": args.params}, stage="demo")
    config = DemoConfig.from_params(load_params(args.params))
    sites = SITES
    if args.external_site is not None:
        check_site_name("--external-site", args.external_site)
        config = dataclasses.replace(config, seed=site_seed(config.seed, args.external_site))
        sites = (dataclasses.replace(EXTERNAL_SITE, name=args.external_site),)
    # The raw folder is published before the manifest that lists it. A manifest kept
    # inside the raw folder is staged with it: a temporary file of its own would be
    # inside the folder that is replaced.
    inside = _relative_inside(args.manifest, args.raw_dir)
    with contextlib.ExitStack() as stack:
        manifest_temp = stack.enter_context(atomic_file(args.manifest)) if inside is None else None
        with staged_folder(args.raw_dir, name="raw_dir", example="data/demo/raw") as raw_temp:
            summary = _make(config, raw_temp, manifest_temp if inside is None else raw_temp / inside, sites)
    line = dataclasses.replace(summary, raw_dir=args.raw_dir, manifest_path=args.manifest).line()
    if args.lesions is not None:
        with atomic_file(args.lesions) as temp:
            n = write_lesion_truth(temp, summary.records)
        line += f"; {n} lesion centres (ground truth, not a training input) in {args.lesions}"
    return line


def _relative_inside(path: Path, folder: Path) -> Path | None:
    """``path`` relative to ``folder`` when it lies inside it (paths resolved), else ``None``."""
    path, folder = path.resolve(), folder.resolve()
    return path.relative_to(folder) if folder in path.parents else None


def _make(config: DemoConfig, raw_dir: Path, manifest: Path, sites: tuple[Site, ...]) -> CohortSummary:
    return make_cohort(
        raw_dir,
        manifest,
        seed=config.seed,
        n_patients=config.n_patients,
        nifti_fraction=config.nifti_fraction,
        matrix=config.matrix,
        n_slices=config.n_slices,
        pixel_spacing_mm=config.pixel_spacing_mm,
        slice_thickness_mm=config.slice_thickness_mm,
        phantom=dataclasses.replace(
            DEFAULT_PHANTOM,
            lesion_diameter_mm=config.lesion_diameter_mm,
            lung_lesion_fraction=config.lung_lesion_fraction,
        ),
        sites=sites,
    )


if __name__ == "__main__":
    sys.exit(main())
