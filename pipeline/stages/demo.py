"""DVC stage ``demo``: write the synthetic cohort so a fresh clone runs end to end.

Usage: ``python -m pipeline.stages.demo RAW_DIR MANIFEST [--params params.yaml]``.
Reads ``base.seed`` and ``demo.*``; see :class:`pipeline.config.DemoConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipeline.config import DemoConfig, load_params
from pipeline.demo.cohort import make_cohort
from pipeline.demo.phantom import DEFAULT_PHANTOM
from pipeline.stages.outcome import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stages.demo", description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path, help="folder for the raw DICOM/NIfTI files (emptied first)")
    parser.add_argument("manifest", type=Path, help="manifest CSV to write: patient_id,label,path,site")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    return run_stage("demo", lambda: write_demo(args))


def write_demo(args: argparse.Namespace) -> str:
    config = DemoConfig.from_params(load_params(args.params))
    summary = make_cohort(
        args.raw_dir,
        args.manifest,
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
    )
    return summary.line()


if __name__ == "__main__":
    sys.exit(main())
