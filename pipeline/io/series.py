"""Group DICOM images into series, order slices by position, and assemble volumes in HU.

Three steps, split so the expensive one runs only for what is used:

1. :func:`group_series` (headers only): one candidate per SeriesInstanceUID, split
   further when orientation, pixel spacing, matrix or echo differ inside the series
   (a localizer or a second echo never merges into the axial stack). Enhanced
   multi-frame files are one candidate each. Duplicate SOPInstanceUIDs are kept once.
2. :func:`plan_volume` (headers only): order planes by ImagePositionPatient projected
   on the slice normal (cross product of the ImageOrientationPatient cosines), never by
   InstanceNumber or file name; drop duplicate positions; measure spacing and apply the
   spacing policy; build the voxel-to-patient affine.
3. :func:`read_planes` (pixels): decode only the planes of the plan, apply Rescale
   Slope/Intercept per plane (HU for CT; MR without a modality LUT stays as stored).

Geometry follows DICOM PS3.3 C.7.6.2.1.1: for pixel (column c, row r),
``P = IPP + c * dc * row_cosine + r * dr * column_cosine`` with
``PixelSpacing = (dr, dc)``. Volumes are stored as ``(columns, rows, slices)`` so that
the affine's first column is the row cosine, as NIfTI expects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from pipeline.io.deid import file_ref
from pipeline.io.dicom_header import DicomHeader
from pipeline.io.dicom_read import CappedReader
from pipeline.io.failures import short_error

DUPLICATE_TOLERANCE_MM = 0.01
"""Two planes closer than this along the normal are the same slice position."""

SPACING_TOLERANCE = 0.01
"""Relative deviation from the median slice spacing still counted as uniform (1 %)."""

SPACING_TOLERANCE_MM = 0.01
"""Absolute floor of that tolerance, for the rounding of positions written by scanners."""

GAP_FACTOR = 1.5
"""A step larger than this many median spacings is reported as missing slices."""

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma, used to turn colour images (ultrasound, secondary capture) grey."""


@dataclass(frozen=True)
class Plane:
    """One 2D plane of a candidate volume: a single-frame file or one frame of a file."""

    path: str
    frame: int
    position: tuple[float, float, float] | None
    slope: float | None
    intercept: float | None
    instance: int | None


@dataclass
class Candidate:
    """Planes that could form one volume, before any pixel is read.

    Attributes:
        identity: the string hashed into the series key (UIDs inside; never written).
        headers: header of each file, by relative path.
        planes: every plane, unordered.
        multiframe: built from one multi-frame file.
    """

    identity: str
    headers: dict[str, DicomHeader]
    planes: list[Plane]
    multiframe: bool = False

    @property
    def first(self) -> DicomHeader:
        return self.headers[min(self.headers)]

    @property
    def files(self) -> list[str]:
        return sorted(self.headers)

    @property
    def n_planes(self) -> int:
        return len(self.planes)


@dataclass
class VolumePlan:
    """How to build one volume from pixels: ordered planes and geometry.

    Attributes:
        planes: planes in slice order (increasing position along the normal).
        affine_lps: 4x4 voxel -> patient (LPS, mm) for array axes (column, row, slice).
        resample: per output slice ``(i, w)``: ``(1 - w) * plane[i] + w * plane[i+1]``;
            ``None`` when the planes are used as they are.
        is_2d: a single plane, written as a 2D image.
        notes: assumptions and corrections, written to the index and ledger.
    """

    planes: list[Plane]
    affine_lps: np.ndarray
    resample: list[tuple[int, float]] | None
    is_2d: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanOutcome:
    """Result of planning: a plan, or the reason the candidate was rejected.

    Attributes:
        plan: the plan, or ``None`` when rejected.
        rejected: why the whole candidate cannot become a volume.
        skipped: files left out of an accepted plan, with the reason (duplicates).
    """

    plan: VolumePlan | None
    rejected: str = ""
    skipped: dict[str, str] = field(default_factory=dict)


def group_series(headers: dict[str, DicomHeader]) -> tuple[list[Candidate], dict[str, str]]:
    """Group image headers into candidate volumes.

    Args:
        headers: relative path -> header, for the files one manifest row selects.

    Returns:
        ``(candidates, skipped)``: candidates sorted by identity, and files skipped as
        duplicate SOPInstanceUIDs (path -> reason naming the copy that was kept).
    """
    skipped: dict[str, str] = {}
    kept_by_sop: dict[str, str] = {}
    groups: dict[str, Candidate] = {}
    for path in sorted(headers):
        header = headers[path]
        if header.sop_uid:
            if header.sop_uid in kept_by_sop:
                skipped[path] = f"duplicate SOPInstanceUID: same object as {file_ref(kept_by_sop[header.sop_uid])}, kept once"
                continue
            kept_by_sop[header.sop_uid] = path
        series = header.series_uid or f"no-series-uid:{os.path.dirname(path)}"
        if header.frames > 1 or header.sop_class.endswith((".2.1", ".4.1")):
            identity = f"{series}|file:{header.sop_uid or path}"
            multiframe = True
        else:
            identity = "|".join(
                [
                    series,
                    _rounded(header.orientation, 3),
                    _rounded(header.pixel_spacing, 3),
                    f"{header.rows}x{header.cols}x{header.samples}",
                    f"echo:{header.echo}",
                ]
            )
            multiframe = False
        candidate = groups.setdefault(identity, Candidate(identity=identity, headers={}, planes=[], multiframe=multiframe))
        candidate.headers[path] = header
        for frame in range(header.frames):
            position = header.positions[frame] if header.positions else None
            candidate.planes.append(
                Plane(
                    path=path,
                    frame=frame,
                    position=position,
                    slope=header.slopes[frame] if frame < len(header.slopes) else None,
                    intercept=header.intercepts[frame] if frame < len(header.intercepts) else None,
                    instance=header.instance_number,
                )
            )
    return [groups[k] for k in sorted(groups)], skipped


def plan_volume(candidate: Candidate, spacing_policy: str) -> PlanOutcome:
    """Order a candidate's planes and check their spacing, from headers only.

    Args:
        candidate: from :func:`group_series`.
        spacing_policy: ``reject`` a series whose slice spacing is not uniform (missing
            slices, irregular steps), or ``resample`` it linearly onto the median spacing.

    Returns:
        The plan, or the rejection reason. Either way every decision is in words.
    """
    first = candidate.first
    notes: list[str] = []
    skipped: dict[str, str] = {}
    if first.pixel_spacing is not None and min(first.pixel_spacing) > 0:
        row_spacing, col_spacing = first.pixel_spacing
    else:
        row_spacing, col_spacing = 1.0, 1.0
        notes.append(f"PixelSpacing missing or not positive ({first.pixel_spacing}): 1 mm pixels assumed")
    positioned = first.orientation is not None and all(p.position is not None for p in candidate.planes)
    if positioned:
        orientation = np.asarray(first.orientation, dtype=np.float64)
        row_cos, col_cos = _unit(orientation[:3]), _unit(orientation[3:])
        normal = _unit(np.cross(row_cos, col_cos))
        positions = np.asarray([p.position for p in candidate.planes], dtype=np.float64)
        distance = positions @ normal
        order = sorted(
            range(len(candidate.planes)),
            key=lambda i: (distance[i], candidate.planes[i].instance or 0, candidate.planes[i].path, candidate.planes[i].frame),
        )
        kept: list[int] = []
        for index in order:
            if kept and abs(distance[index] - distance[kept[-1]]) < DUPLICATE_TOLERANCE_MM:
                plane, keeper = candidate.planes[index], candidate.planes[kept[-1]]
                where = f"{distance[index]:.2f} mm"
                if candidate.multiframe:
                    notes.append(f"frame {plane.frame + 1} repeats the position {where} of frame {keeper.frame + 1}; dropped")
                else:
                    skipped[plane.path] = f"duplicate slice position {where} along the normal; kept {file_ref(keeper.path)}"
                continue
            kept.append(index)
        planes = [candidate.planes[i] for i in kept]
        depth = distance[kept]
        if len(planes) == 1:
            step = normal * (first.slice_spacing or 1.0)
            affine = _affine(row_cos * col_spacing, col_cos * row_spacing, step, positions[kept[0]])
            return PlanOutcome(VolumePlan(planes, affine, None, True, notes), skipped=skipped)
        steps = np.diff(depth)
        median = float(np.median(steps))
        tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE * median)
        irregular = np.abs(steps - median) > tolerance
        direction = (positions[kept[-1]] - positions[kept[0]]) / (depth[-1] - depth[0])
        step = direction * median
        affine = _affine(row_cos * col_spacing, col_cos * row_spacing, step, positions[kept[0]])
        resample = None
        if irregular.any():
            problem = _describe_spacing(depth, steps, median, irregular)
            if spacing_policy == "reject":
                return PlanOutcome(None, rejected=f"{problem}; spacing_policy 'reject'", skipped=skipped)
            resample = _resample_weights(depth, median)
            notes.append(f"{problem}; resampled onto {median:g} mm ({len(resample)} slices from {len(planes)})")
        return PlanOutcome(VolumePlan(planes, affine, resample, False, notes), skipped=skipped)

    planes = sorted(candidate.planes, key=lambda p: (p.instance or 0, p.path, p.frame))
    if first.orientation is not None:
        orientation = np.asarray(first.orientation, dtype=np.float64)
        row_cos, col_cos = _unit(orientation[:3]), _unit(orientation[3:])
    else:
        row_cos, col_cos = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
        notes.append(
            "ImageOrientationPatient missing or not two orthogonal unit vectors: axial direction cosines assumed"
        )
    normal = np.cross(row_cos, col_cos)
    origin = np.asarray(planes[0].position if planes[0].position is not None else (0.0, 0.0, 0.0))
    thickness = first.slice_spacing or 1.0
    if len(planes) > 1:
        missing = "ImagePositionPatient per plane" if any(p.position is None for p in planes) else "usable orientation"
        notes.append(
            f"no {missing}: planes kept in stored (InstanceNumber/frame) order, "
            f"slice spacing {thickness:g} mm from the header" + ("" if first.slice_spacing else " (assumed)")
        )
    affine = _affine(row_cos * col_spacing, col_cos * row_spacing, normal * thickness, origin)
    return PlanOutcome(VolumePlan(planes, affine, None, len(planes) == 1, notes), skipped=skipped)


def read_planes(raw_dir: str, headers: dict[str, DicomHeader], plan: VolumePlan) -> tuple[np.ndarray, list[str]]:
    """Decode the planned planes into a volume of real-world values.

    Pixels are read once per file; uncompressed grey images are read directly at the
    offset found by the header scan, everything else is decoded by pydicom (with the
    pylibjpeg plugins for JPEG, JPEG-LS, JPEG 2000 and RLE).

    Args:
        raw_dir: root of the relative paths.
        headers: header of each file in the plan.
        plan: from :func:`plan_volume`.

    Returns:
        ``(volume, notes)``: volume of shape ``(columns, rows, slices)``; int16 when every
        value is an exact int16 (CT in HU usually is), float32 otherwise; notes on colour
        conversion or MONOCHROME1 inversion.

    Raises:
        PixelError: a file's pixels cannot be decoded; names the file.
    """
    by_file: dict[str, list[int]] = {}
    for index, plane in enumerate(plan.planes):
        by_file.setdefault(plane.path, []).append(index)
    first = headers[plan.planes[0].path]
    rows, cols = first.rows, first.cols
    out = np.empty((len(plan.planes), rows, cols), dtype=np.int16)
    notes: set[str] = set()
    for path, indices in by_file.items():
        header = headers[path]
        full = os.path.join(raw_dir, path)
        try:
            frames = _stored_frames(full, header, notes)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # a Rust decoder's panic (pyo3 PanicException) is no Exception
            raise PixelError(path, f"pixel data cannot be decoded: {type(error).__name__}: {short_error(error, full)}") from error
        if frames.shape[1:] != (rows, cols):
            raise PixelError(path, f"matrix {frames.shape[1:]} differs from the series' {(rows, cols)}")
        for index in indices:
            plane = plan.planes[index]
            out = _place(out, index, frames[plane.frame], plane, path)
    if plan.resample is not None:
        work = out.astype(np.float32)
        out = np.stack([(1.0 - w) * work[i] + w * work[min(i + 1, len(work) - 1)] for i, w in plan.resample])
    # A view, not a copy: (slices, rows, cols) in C order is (cols, rows, slices) in
    # Fortran order, the order NIfTI stores, so the writer streams it without a
    # strided copy of the whole volume.
    return out.transpose(2, 1, 0), sorted(notes)


def _place(out: np.ndarray, index: int, stored: np.ndarray, plane: Plane, path: str) -> np.ndarray:
    """Rescale one plane into ``out[index]``; returns ``out``, promoted to float32 if needed.

    Raises:
        PixelError: Rescale Slope/Intercept overflow (``RescaleSlope = 1e20``): the
            blame is this file's header, not the series.
    """
    try:
        if out.dtype == np.int16 and _rescale_into_int16(out[index], stored, plane.slope, plane.intercept):
            return out
        with np.errstate(over="raise", invalid="raise"):
            values = _rescale(stored, plane.slope, plane.intercept)
    except (OverflowError, FloatingPointError) as error:
        raise PixelError(path, _overflow(plane, error)) from error
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise PixelError(path, _overflow(plane, None))
    if out.dtype == np.int16 and not _fits_int16(values):
        out = out.astype(np.float32)
    out[index] = values
    return out


def _overflow(plane: Plane, error: BaseException | None) -> str:
    why = f" ({type(error).__name__})" if error is not None else ""
    return (
        f"Rescale Slope {plane.slope:g} / Intercept {plane.intercept or 0:g} overflow the value range{why}; "
        "this file's rescale values are wrong"
    ) if plane.slope is not None else f"rescaled values overflow the value range{why}; this file's rescale values are wrong"


class PixelError(RuntimeError):
    """A file's pixels could not be read; ``path`` names it for the ledger."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _stored_frames(full: str, header: DicomHeader, notes: set[str]) -> np.ndarray:
    """All frames of one file as ``(frames, rows, cols)``, grey, before rescaling."""
    count = header.rows * header.cols * header.frames
    if header.native is not None and not header.modality_lut and header.photometric != "PALETTE COLOR":
        offset, dtype = header.native
        data = np.fromfile(full, dtype=np.dtype(dtype), count=count, offset=offset)
        if data.size != count:
            raise ValueError(f"file holds {data.size} pixels, the header needs {count}")
        array = data.astype(data.dtype.newbyteorder("="), copy=False)
    else:
        import pydicom
        from pydicom.pixels import apply_color_lut, apply_modality_lut

        with CappedReader(full) as handle:
            ds = pydicom.dcmread(handle, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = header.transfer_syntax
        array = ds.pixel_array
        if header.photometric == "PALETTE COLOR":
            array = apply_color_lut(array, ds)
        if header.samples > 1 or header.photometric == "PALETTE COLOR":
            array = array[..., :3].astype(np.float32) @ LUMA_WEIGHTS.astype(np.float32)
            notes.add("colour converted to grey (BT.601 luma)")
        elif header.modality_lut:
            array = apply_modality_lut(array, ds)
            notes.add("Modality LUT Sequence applied")
    array = array.reshape(header.frames, header.rows, header.cols)
    if header.photometric == "MONOCHROME1":
        if np.issubdtype(array.dtype, np.integer):
            array = (int(array.max()) + int(array.min())) - array.astype(np.int64)
        else:
            array = array.max() + array.min() - array
        notes.add("MONOCHROME1 inverted (mirrored within its value range) so that higher is brighter")
    return array


def _integer_rescale(stored: np.ndarray, slope: float | None, intercept: float | None) -> tuple[int, int] | None:
    """``(slope, intercept)`` as integers when rescaling ``stored`` is exact integer arithmetic, else None.

    A missing slope is 1 and a missing intercept 0 (PS3.3 C.11.1).
    """
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if np.issubdtype(stored.dtype, np.integer) and float(slope).is_integer() and float(intercept).is_integer():
        return int(slope), int(intercept)
    return None


def _rescale(stored: np.ndarray, slope: float | None, intercept: float | None) -> np.ndarray:
    """Rescale Slope/Intercept (PS3.3 C.11.1): exact integers stay integers."""
    if slope is None and intercept is None:
        return stored
    exact = _integer_rescale(stored, slope, intercept)
    if exact is not None:
        # int64: a large integer slope must raise (OverflowError), not wrap around in int32.
        return stored.astype(np.int64) * exact[0] + exact[1]
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)


def _rescale_into_int16(dest: np.ndarray, stored: np.ndarray, slope: float | None, intercept: float | None) -> bool:
    """Write ``stored * slope + intercept`` into int16 ``dest`` when that is exact.

    The common CT case (integer pixels, integer slope and intercept, HU within int16)
    in one pass, computed in int32 so nothing wraps, with the range decided from the
    stored extremes instead of a second scan of the rescaled values.

    Returns:
        False, leaving ``dest`` untouched, when the result would not be exact int16.
    """
    exact = _integer_rescale(stored, slope, intercept)
    if exact is None:
        return False
    s, b = exact
    ends = (int(stored.min()) * s + b, int(stored.max()) * s + b)
    if not _int16_range(min(ends), max(ends)):
        return False
    if s == 1:
        np.add(stored, b, out=dest, dtype=np.int32, casting="unsafe")
    else:
        dest[...] = stored.astype(np.int32) * s + b
    return True


def _fits_int16(values: np.ndarray) -> bool:
    if not np.issubdtype(values.dtype, np.integer):
        return False
    if values.dtype in (np.int8, np.uint8, np.int16):
        return True
    return _int16_range(int(values.min()), int(values.max()))


def _int16_range(low: int, high: int) -> bool:
    return -32768 <= low and high <= 32767


def _resample_weights(depth: np.ndarray, spacing: float) -> list[tuple[int, float]]:
    count = int(round((depth[-1] - depth[0]) / spacing)) + 1
    targets = depth[0] + spacing * np.arange(count)
    lower = np.clip(np.searchsorted(depth, targets, side="right") - 1, 0, len(depth) - 2)
    width = depth[lower + 1] - depth[lower]
    weight = np.clip((targets - depth[lower]) / width, 0.0, 1.0)
    return [(int(i), float(w)) for i, w in zip(lower, weight)]


def _describe_spacing(depth: np.ndarray, steps: np.ndarray, median: float, irregular: np.ndarray) -> str:
    gaps = np.flatnonzero(steps > GAP_FACTOR * median)
    if gaps.size:
        first = int(gaps[0])
        missing = int(round(steps[first] / median)) - 1
        return (
            f"slice spacing must be uniform; got a gap of {steps[first]:.3g} mm after position "
            f"{depth[first]:.2f} mm (median {median:.3g} mm, about {max(missing, 1)} missing slice(s), "
            f"{gaps.size} gap(s) in all)"
        )
    bad = steps[irregular]
    return (
        f"slice spacing must be uniform; got steps from {bad.min():.3g} to {bad.max():.3g} mm "
        f"around a median of {median:.3g} mm"
    )


def _affine(column_step: np.ndarray, row_step: np.ndarray, slice_step: np.ndarray, origin: np.ndarray) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 0] = column_step
    affine[:3, 1] = row_step
    affine[:3, 2] = slice_step
    affine[:3, 3] = origin
    return affine


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _rounded(values: tuple[float, ...] | None, digits: int) -> str:
    return "none" if values is None else ",".join(f"{v:.{digits}f}" for v in values)
