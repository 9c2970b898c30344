"""Read NIfTI inputs; the canonical RAS volumes every later stage loads are written by :mod:`pipeline.io.nifti_write`.

Canonical means: the array axes point (as closely as the data allows, without
resampling) to Right, Anterior, Superior, via :func:`nibabel.as_closest_canonical`,
which only flips and permutes axes. Downstream MONAI transforms then see one
orientation whatever the scanner or the exporting tool wrote.

Nothing from an input header is copied to an output header except geometry: the NIfTI
``descrip``, ``aux_file``, ``intent_name`` and ``db_name`` fields can hold free text
(tools put patient names there), so outputs are built from the array and affine alone.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineInputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates are LPS; NIfTI world coordinates are RAS."""

MAX_INFLATE_RATIO = 1000
"""A compressed stream may not declare more than this many bytes per stored byte.

Real images deflate 2- to 20-fold, masks and mostly empty volumes a few hundred-fold;
DEFLATE cannot exceed about 1032-fold, which only (nearly) constant data reaches: a
decompression bomb, not an image. Applied only above :data:`INFLATE_FLOOR_BYTES`.
"""

INFLATE_FLOOR_BYTES = 64 * 2**20
"""Declared sizes up to this are read whatever their ratio: a bounded read of 64 MiB
costs nothing, and small constant test images compress past any ratio."""

READ_CHUNK_BYTES = 16 * 2**20
"""Decompressed bytes per read, so no temporary buffer ever holds a whole volume."""

HEADER_BYTES = {348: 352, 540: 544}
"""sizeof_hdr of NIfTI-1 and NIfTI-2 -> the smallest data offset of a single file."""


class NiftiShapeError(PipelineInputError):
    """A NIfTI input is not a 2D image or 3D volume (e.g. a 4D time series).

    Ingest catches it (and :class:`NiftiSizeError`) and ledgers the file with the message.
    """


class NiftiSizeError(NiftiShapeError):
    """What a NIfTI header declares disagrees with the bytes in the file or passes a limit."""


@dataclass(frozen=True)
class NiftiLayout:
    """Where a NIfTI file's voxels are and how many it declares, from its header only.

    Attributes:
        header: the nibabel ``Nifti1Header``/``Nifti2Header`` (extensions not read).
        shape: the declared data shape.
        dtype: the stored dtype, with its byte order.
        offset: first byte of the voxels in the (decompressed) stream.
        compressed: a gzip file.
        file_bytes: size of the file on disk.
    """

    header: object
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    compressed: bool
    file_bytes: int

    @property
    def voxels(self) -> int:
        return math.prod(self.shape)

    @property
    def data_bytes(self) -> int:
        return self.voxels * self.dtype.itemsize

    def describe(self) -> str:
        """The declared size in words, for a ledger reason."""
        return f"shape {'x'.join(map(str, self.shape))} of {self.dtype.name} = {self.data_bytes:,} bytes"


def read_layout(path: str | Path) -> NiftiLayout:
    """Parse a single-file NIfTI-1/2 header without reading extensions or voxels.

    At most 544 (decompressed) bytes are read, so a header that lies costs nothing.

    Raises:
        NiftiShapeError: not a single-file NIfTI-1/2 header.
        nibabel.spatialimages.HeaderDataError: a field nibabel rejects (e.g. datatype).
    """
    import nibabel as nib

    path = str(path)
    compressed = path.lower().endswith(".gz")
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        block = handle.read(544)
    if len(block) < 348:
        raise NiftiSizeError(f"NIfTI header must be at least 348 bytes; the file holds {len(block)}")
    sizes = {int.from_bytes(block[:4], order) for order in ("little", "big")}
    size = next((s for s in (348, 540) if s in sizes), None)
    if size is None or len(block) < size:
        raise NiftiShapeError(f"not a NIfTI-1/2 image: sizeof_hdr must be 348 or 540; got {min(sizes)}")
    klass = nib.Nifti1Header if size == 348 else nib.Nifti2Header
    header = klass(block[:size], check=True)
    magic = bytes(header["magic"]).rstrip(b"\x00")
    if magic not in (b"n+1", b"n+2"):
        raise NiftiShapeError(f"not a single-file NIfTI-1/2 image: magic must be 'n+1' or 'n+2'; got {magic!r}")
    shape = tuple(int(s) for s in header.get_data_shape())
    if not shape or min(shape) < 1:
        raise NiftiSizeError(f"NIfTI dimensions must be positive; got shape {'x'.join(map(str, shape))}")
    vox_offset = float(header["vox_offset"])
    if not math.isfinite(vox_offset) or vox_offset < 0:
        raise NiftiSizeError(f"NIfTI vox_offset must be a non-negative number; got {vox_offset}")
    return NiftiLayout(
        header=header,
        shape=shape,
        dtype=np.dtype(header.get_data_dtype()),
        offset=max(int(vox_offset), HEADER_BYTES[size]),
        compressed=compressed,
        file_bytes=os.path.getsize(path),
    )


def layout_problem(layout: NiftiLayout, max_voxels: int) -> str:
    """Why the declared size cannot be read within bounds, or ``""``.

    Checked from the header and the file size alone, before any voxel is allocated.
    """
    if layout.voxels > max_voxels:
        return (
            f"image too large: the NIfTI header declares {layout.describe()} ({layout.voxels:,} voxels); "
            f"ingest.max_voxels is {max_voxels:,}. Raise ingest.max_voxels in params.yaml if the image is real."
        )
    needed = layout.offset + layout.data_bytes
    if not layout.compressed and layout.file_bytes < needed:
        return (
            f"truncated: the NIfTI header declares {layout.describe()} from byte {layout.offset:,}; "
            f"the file holds {layout.file_bytes:,} bytes"
        )
    if layout.compressed and needed > max(INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO * layout.file_bytes):
        return (
            f"decompression bomb: the NIfTI header declares {layout.describe()} in a {layout.file_bytes:,}-byte "
            f"gzip file, more than {MAX_INFLATE_RATIO}-fold expansion; no real image compresses that well"
        )
    return ""


def image_shape_problem(shape: tuple[int, ...]) -> str:
    """Why a NIfTI of this shape cannot be ingested, or ``""`` when it can.

    Trailing singleton axes are ignored (``(64, 64, 30, 1)`` is a volume); more than
    three axes longer than one is a time or vector series, which has no single label.
    """
    core = _squeezed_shape(shape)
    if len(core) > 3:
        return f"image must be 2D or 3D; got shape {'x'.join(map(str, shape))} (a time or vector series). Split it into 3D files."
    if len(core) < 2:
        return f"image must be 2D or 3D; got shape {'x'.join(map(str, shape))}."
    return ""


def load_nifti(path: str | Path, max_voxels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI image's values and its voxel -> RAS affine, within declared bounds.

    The header's size is checked (:func:`layout_problem`) before anything is
    allocated; a gzip stream is decompressed chunk by chunk into one buffer of the
    declared size and must end there, so a stream that expands further is refused
    after one extra byte, never inflated. Values are scaled by ``scl_slope``/
    ``scl_inter`` only when the header sets them, so integer data stays integer and exact.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        max_voxels: refuse a header declaring more voxels; ``None``: no limit.

    Returns:
        ``(array, affine)``: array of 2 or 3 dims, affine 4x4 in mm.

    Raises:
        NiftiShapeError: more than three non-singleton axes.
        NiftiSizeError: the header declares more than the file holds or the limits allow.
    """
    layout = read_layout(path)
    problem = image_shape_problem(layout.shape)
    if problem:
        raise NiftiShapeError(problem)
    problem = layout_problem(layout, max_voxels if max_voxels is not None else layout.voxels)
    if problem:
        raise NiftiSizeError(problem)
    data = _read_voxels(str(path), layout)
    slope, intercept = layout.header.get_slope_inter()  # type: ignore[attr-defined]
    if slope is not None and not (slope == 1.0 and not intercept):
        data = data.astype(np.float32)
        data *= np.float32(slope)
        data += np.float32(intercept or 0.0)
    keep = len(_squeezed_shape(data.shape))
    data = data.reshape(data.shape[:keep], order="F") if data.ndim > keep else data
    return data, np.asarray(layout.header.get_best_affine(), dtype=np.float64)  # type: ignore[attr-defined]


def _read_voxels(path: str, layout: NiftiLayout) -> np.ndarray:
    """The declared voxels in native byte order, Fortran order as NIfTI stores them."""
    buffer = np.empty(layout.data_bytes, dtype=np.uint8)
    view = memoryview(buffer)
    with (gzip.open(path, "rb") if layout.compressed else open(path, "rb")) as handle:
        handle.seek(layout.offset)  # gzip seeks by decompressing and dropping small chunks
        done = 0
        while done < layout.data_bytes:
            got = handle.readinto(view[done : done + READ_CHUNK_BYTES])
            if not got:
                break
            done += got
        if done < layout.data_bytes:
            raise NiftiSizeError(f"truncated: the NIfTI header declares {layout.describe()}; the data holds {done:,} bytes")
        if layout.compressed and handle.read(1):
            raise NiftiSizeError(
                f"the gzip stream expands beyond the declared {layout.describe()}; "
                "refused before inflating the rest (a decompression bomb or a wrong header)"
            )
    array = buffer.view(layout.dtype).reshape(layout.shape, order="F")
    if not layout.dtype.isnative:
        array = array.astype(layout.dtype.newbyteorder("="))
    return array


def _squeezed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    core = list(shape)
    while len(core) > 2 and core[-1] == 1:
        core.pop()
    return tuple(core)
