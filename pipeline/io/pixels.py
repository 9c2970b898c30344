"""Decode the planes of a volume plan into real-world values (HU for CT).

Only the planes of the plan are read, once per file. Uncompressed grey pixels are read
straight from the offset the header scan found; everything else is decoded by pydicom
(with the pylibjpeg plugins for JPEG, JPEG-LS, JPEG 2000 and RLE). Rescale
Slope/Intercept are applied per plane (PS3.3 C.11.1): exact integers stay integers, so
CT is written as int16 HU; MR without a modality LUT stays as stored.

Colour (ultrasound, dermatology, endoscopy, secondary captures) keeps its three
channels: RGB as stored, YBR_* converted to RGB by pydicom, PALETTE COLOR mapped through
its lookup table. Whether a model sees colour or grey is ``preprocess.channels``' choice,
made later; ingest loses nothing. A colour image whose three channels are equal
everywhere (a grey picture saved as RGB, common for ultrasound exports) is stored as one
grey channel: the same values, a third of the disk, and ``channels: auto`` then treats
it as the grey image it is.
"""

from __future__ import annotations

import os

import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.io.dicom_header import DicomHeader
from pipeline.io.dicom_read import CappedReader
from pipeline.io.failures import short_error
from pipeline.io.series import Plane
from pipeline.io.volume_plan import VolumePlan
from pipeline.schema.tables import COLOUR_CHANNELS

EQUAL_CHANNELS_NOTE = "colour image with three equal channels stored as one grey channel (lossless)"


class PixelError(PipelineInputError):
    """A file's pixels could not be read; ``path`` names it for the ledger.

    Ingest catches it and quarantines the file with :attr:`reason`; it reaches a user
    only from a direct call of :func:`read_planes`.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_planes(
    raw_dir: str, headers: dict[str, DicomHeader], plan: VolumePlan, out: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """Decode the planned planes into a volume of real-world values.

    Args:
        raw_dir: root of the relative paths.
        headers: header of each file in the plan.
        plan: from :func:`pipeline.io.volume_plan.plan_volume`.
        out: an empty int16 ``(columns, rows, planes)`` array to fill, e.g. one laid out
            for the writer (:func:`pipeline.io.nifti_write.canonical_layout`); ``None``: a new
            one. The volume is returned in ``out`` unless its values need float32 or
            the plan resamples; the values never depend on it.

    Returns:
        ``(volume, notes)``: volume of shape ``(columns, rows, slices)``, or
        ``(columns, rows, slices, 3)`` for colour (RGB on the last axis); int16 when
        every value is an exact int16 (CT in HU usually is), float32 otherwise; notes on
        colour conversion or MONOCHROME1 inversion.

    Raises:
        PixelError: a file's pixels cannot be decoded; names the file.
    """
    by_file: dict[str, list[int]] = {}
    for index, plane in enumerate(plan.planes):
        by_file.setdefault(plane.path, []).append(index)
    first = headers[plan.planes[0].path]
    colour = is_colour(first)
    plane_shape = (first.rows, first.cols) + ((COLOUR_CHANNELS,) if colour else ())
    shape = (first.cols, first.rows, len(plan.planes))
    if out is not None and (colour or out.shape != shape or out.dtype != np.int16):
        raise ValueError(f"'out' must be an int16 array of shape {shape} for a grey series; got {out.dtype} {out.shape}")
    # Planes are filled as (plane, row, column[, channel]): a transposed view of (columns, rows, planes).
    out = np.empty((len(plan.planes), *plane_shape), dtype=np.int16) if out is None else out.transpose(2, 1, 0)
    notes: set[str] = set()
    for path, indices in by_file.items():
        frames = _file_frames(raw_dir, path, headers[path], notes)
        if frames.shape[1:] != plane_shape:
            raise PixelError(path, f"matrix {frames.shape[1:]} differs from the series' {plane_shape}")
        for index in indices:
            plane = plan.planes[index]
            out = _place(out, index, frames[plane.frame], plane, path)
    if plan.resample is not None:
        work = out.astype(np.float32)
        out = np.stack([(1.0 - w) * work[i] + w * work[min(i + 1, len(work) - 1)] for i, w in plan.resample])
    if out.ndim == 4 and _equal_channels(out):
        out = out[..., 0]
        notes.add(EQUAL_CHANNELS_NOTE)
    # A view, not a copy: (slices, rows, cols) in C order is (cols, rows, slices) in
    # Fortran order, the order NIfTI stores, so the writer streams it without a
    # strided copy of the whole volume.
    return out.transpose(2, 1, 0, *range(3, out.ndim)), sorted(notes)


def is_colour(header: DicomHeader) -> bool:
    """Whether the file's pixels decode to colour: several samples per pixel, or a palette."""
    return header.samples > 1 or header.photometric == "PALETTE COLOR"


def _equal_channels(volume: np.ndarray) -> bool:
    """Whether every channel of ``(..., C)`` equals the first one."""
    return all(np.array_equal(volume[..., 0], volume[..., c]) for c in range(1, volume.shape[-1]))


def _file_frames(raw_dir: str, path: str, header: DicomHeader, notes: set[str]) -> np.ndarray:
    """:func:`_stored_frames` of one file; any failure to decode becomes a :class:`PixelError`."""
    full = os.path.join(raw_dir, path)
    try:
        return _stored_frames(full, header, notes)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # a Rust decoder's panic (pyo3 PanicException) is no Exception
        raise PixelError(path, f"pixel data cannot be decoded: {type(error).__name__}: {short_error(error, full)}") from error


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


def _stored_frames(full: str, header: DicomHeader, notes: set[str]) -> np.ndarray:
    """All frames of one file as ``(frames, rows, cols)``, or ``(frames, rows, cols, 3)`` for colour, before rescaling."""
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
        if is_colour(header):
            # pydicom returns YBR_* as RGB (its default as_rgb); a fourth sample is not colour.
            array = array[..., :COLOUR_CHANNELS]
            if header.photometric.startswith("YBR"):
                notes.add(f"{header.photometric} converted to RGB")
            elif header.photometric == "PALETTE COLOR":
                notes.add("PALETTE COLOR mapped to RGB through its lookup table")
        elif header.modality_lut:
            array = apply_modality_lut(array, ds)
            notes.add("Modality LUT Sequence applied")
    colour = (COLOUR_CHANNELS,) if is_colour(header) else ()
    array = array.reshape(header.frames, header.rows, header.cols, *colour)
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
    low, high = int(stored.min()), int(stored.max())
    ends = (low * s + b, high * s + b)
    if not _int16_range(min(ends), max(ends)):
        return False
    if s == 1 and _int16_range(b, b) and stored.dtype.itemsize <= 2 and _int16_range(low, high):
        # Every stored value, the intercept and every result are int16: int16 arithmetic is
        # exact, and faster than an int32 pass cast back (uint16 below 2^15 is the same
        # bits as int16; 8-bit values promote).
        np.add(stored.view(np.int16) if stored.dtype == np.uint16 else stored, np.int16(b), out=dest)
    elif s == 1:
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
