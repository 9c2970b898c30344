"""Build one canonical volume in a worker process: read pixels or voxels, write NIfTI.

A :class:`BuildJob` is picklable and carries everything the worker reads (the plan and
the headers of a DICOM series, or the path of a NIfTI file); the worker answers with a
:class:`BuildResult`. A file that fails is reported in the result, never raised, so the
run goes on; only an environment failure (a missing module) stops the stage.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from pipeline.io.dicom_header import DicomHeader
from pipeline.io.failures import environment_error, short_error
from pipeline.io.nifti import LPS_TO_RAS, NiftiShapeError, canonical_layout, load_nifti, write_canonical
from pipeline.io.pixels import PixelError, read_planes
from pipeline.io.volume_plan import VolumePlan


@dataclass
class BuildJob:
    """A volume to build in a worker process (picklable)."""

    series_key: str
    raw_dir: str
    out_path: str
    plan: VolumePlan | None = None
    headers: dict[str, DicomHeader] = field(default_factory=dict)
    nifti: str | None = None
    threads: int = 1


@dataclass
class BuildResult:
    """What a worker reports back: the written volume, or which file failed and why."""

    series_key: str
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    notes: list[str] = field(default_factory=list)
    minimum: float = 0.0
    failed_path: str = ""
    failure: str = ""


def build_volume(job: BuildJob) -> BuildResult:
    """Read pixels and write one canonical volume; failures are reported, never raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if job.nifti is not None:
                array, affine_ras = load_nifti(os.path.join(job.raw_dir, job.nifti))
                notes: list[str] = []
            else:
                plan = job.plan
                affine_ras = LPS_TO_RAS @ plan.affine_lps  # type: ignore[union-attr]
                array, notes = read_planes(job.raw_dir, job.headers, plan, _destination(job, affine_ras))  # type: ignore[arg-type]
                notes = list(plan.notes) + notes  # type: ignore[union-attr]
                if plan.is_2d:  # type: ignore[union-attr]
                    array = array[:, :, 0]
            minimum = float(array.min()) if array.size else 0.0
            shape, spacing = write_canonical(array, affine_ras, job.out_path, threads=job.threads)
            return BuildResult(job.series_key, shape, spacing, notes, minimum)
        except Exception as error:
            return _failed(job, error)


def _destination(job: BuildJob, affine_ras: object) -> object:
    """An int16 volume laid out as the writer writes it (no copy of the volume), or ``None``.

    Only for a 3D plan without resampling: a 2D image is written with its own axis
    order, and a resampled volume is computed into a new array anyway.
    """
    plan = job.plan
    if plan is None or plan.is_2d or plan.resample is not None:
        return None
    first = job.headers[plan.planes[0].path]
    return canonical_layout((first.cols, first.rows, len(plan.planes)), affine_ras, np.int16)  # type: ignore[arg-type]


def _failed(job: BuildJob, error: Exception) -> BuildResult:
    """What a failed build reports; a missing dependency stops the stage instead."""
    environment = environment_error(error)
    if environment is not None:
        raise environment from error
    if isinstance(error, PixelError):
        return BuildResult(job.series_key, failed_path=error.path, failure=error.reason)
    if isinstance(error, NiftiShapeError):
        return BuildResult(job.series_key, failed_path=job.nifti or "", failure=str(error))
    full = os.path.join(job.raw_dir, job.nifti) if job.nifti else ""
    return BuildResult(job.series_key, failed_path=job.nifti or "", failure=f"{type(error).__name__}: {short_error(error, full)}")
