"""Build one canonical volume in a worker process: read pixels or voxels, write NIfTI.

A :class:`BuildJob` is picklable and carries everything the worker reads (the plan and
the headers of a DICOM series, the path of a NIfTI file, or the path and header of a
PNG/JPEG/TIFF file); the worker answers with a
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
from pipeline.io.nifti import LPS_TO_RAS, NiftiShapeError, load_nifti
from pipeline.io.nifti_write import canonical_layout, write_canonical
from pipeline.io.pixels import PixelError, is_colour, read_planes
from pipeline.io.raster import RasterHeader, read_raster
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
    raster: str | None = None
    raster_header: RasterHeader | None = None

    @property
    def source_file(self) -> str | None:
        """The one file a NIfTI or image-file job reads (``None`` for a DICOM series)."""
        return self.nifti if self.nifti is not None else self.raster


@dataclass
class BuildResult:
    """What a worker reports back: the written volume, or which file failed and why.

    ``shape`` and ``spacing`` are spatial; ``channels`` is 3 for a colour image, else 1.
    """

    series_key: str
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    notes: list[str] = field(default_factory=list)
    minimum: float = 0.0
    failed_path: str = ""
    failure: str = ""
    channels: int = 1


def build_volume(job: BuildJob) -> BuildResult:
    """Read pixels and write one canonical volume; failures are reported, never raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            array, affine_ras, notes, channels = _read(job)
            minimum = float(array.min()) if array.size else 0.0
            shape, spacing = write_canonical(array, affine_ras, job.out_path, threads=job.threads, channels=channels)
            return BuildResult(job.series_key, shape, spacing, notes, minimum, channels=channels)
        except Exception as error:
            return _failed(job, error)


def _read(job: BuildJob) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """``(array, affine_ras, notes, channels)`` of the job's source; colour on the array's last axis."""
    if job.nifti is not None:
        array, affine_ras = load_nifti(os.path.join(job.raw_dir, job.nifti))
        return array, affine_ras, [], 1
    if job.raster is not None:
        array, notes = read_raster(os.path.join(job.raw_dir, job.raster), job.raster_header)  # type: ignore[arg-type]
        # No geometry in an image file: the affine of a DICOM plane without one (1 mm, axial).
        return array, LPS_TO_RAS.copy(), notes, array.shape[2] if array.ndim == 3 else 1
    plan = job.plan
    affine_ras = LPS_TO_RAS @ plan.affine_lps  # type: ignore[union-attr]
    array, notes = read_planes(job.raw_dir, job.headers, plan, _destination(job, affine_ras))  # type: ignore[arg-type]
    channels = array.shape[3] if array.ndim == 4 else 1  # (columns, rows, slices[, channels])
    if plan.is_2d:  # type: ignore[union-attr]
        array = array[:, :, 0]
    return array, affine_ras, list(plan.notes) + notes, channels  # type: ignore[union-attr]


def _destination(job: BuildJob, affine_ras: object) -> object:
    """An int16 grey volume laid out as the writer writes it (no copy of the volume), or ``None``.

    Only for a 3D grey plan without resampling: a 2D image is written with its own axis
    order, colour keeps a channel axis, and a resampled volume is computed into a new
    array anyway.
    """
    plan = job.plan
    if plan is None or plan.is_2d or plan.resample is not None:
        return None
    first = job.headers[plan.planes[0].path]
    if is_colour(first):
        return None
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
    source = job.source_file
    full = os.path.join(job.raw_dir, source) if source else ""
    return BuildResult(job.series_key, failed_path=source or "", failure=f"{type(error).__name__}: {short_error(error, full)}")
