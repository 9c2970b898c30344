"""Write the canonical RAS NIfTI volumes every later stage loads (:mod:`pipeline.io.nifti` reads).

Canonical means: the array axes point (as closely as the data allows, without
resampling) to Right, Anterior, Superior, via :func:`nibabel.as_closest_canonical`,
which only flips and permutes axes. Only the array and the affine go into an output
header: nothing from an input header (free-text fields can hold patient names).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from pipeline.io.nifti import HEADER_BYTES


GZIP_LEVEL = 1
"""Deflate level of ``.nii.gz`` outputs: nibabel's default; higher levels save a few
percent of disk for several times the time."""

GZIP_BLOCK_BYTES = 2**20
"""Block size of the threaded gzip writer; fixed, so the bytes do not depend on threads."""


def gzip_writer_name() -> str:
    """Which deflate implementation writes ``.nii.gz`` here, with its version.

    The bytes of a gzip file depend on the implementation, so the incremental store
    keys its entries by this name as well.
    """
    try:
        import isal
    except ImportError:
        return "zlib"
    return f"isal-{isal.__version__}"


def canonical_layout(shape: tuple[int, int, int], affine_ras: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """An empty ``(X, Y, Z)`` array whose memory is already in the order :func:`write_canonical` writes.

    :func:`write_canonical` turns its array to the closest RAS orientation (nibabel's
    ``as_closest_canonical``: axis flips and a transpose, all views) and writes the
    result in Fortran order. An array from here, filled in place and written with the
    same ``affine_ras``, is that order already: its voxels go to the file as they lie,
    without a copy of the volume. Any other array is written the same, after a copy.

    Args:
        shape: ``(X, Y, Z)`` of the array to fill, in the orientation of ``affine_ras``.
        affine_ras: the 4x4 voxel -> RAS mm affine it will be written with.
        dtype: the voxel type.
    """
    from nibabel.orientations import io_orientation

    ornt = io_orientation(affine_ras)
    if np.isnan(ornt).any():  # a degenerate affine: write_canonical copies, as before
        return np.empty(shape, dtype=dtype)
    # write_canonical's data is transpose(flip(array, flips), argsort(order)); undo both
    # on a Fortran-ordered block of the canonical shape.
    order = ornt[:, 0].astype(int)
    flips = tuple(axis for axis in range(3) if ornt[axis, 1] == -1)
    block = np.empty(tuple(shape[axis] for axis in np.argsort(order)), dtype=dtype, order="F")
    return np.flip(block.transpose(order), axis=flips)


def write_canonical(
    array: np.ndarray, affine_ras: np.ndarray, out_path: str | Path, *, threads: int = 1, channels: int = 1
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Write ``array`` as a canonical (RAS) NIfTI-1 file, 2D kept 2D.

    A colour image keeps its channels on the fifth NIfTI axis, the standard place for
    vector-valued voxels (``intent_code`` VECTOR, time axis of length 1): a 2D RGB image
    of X x Y pixels is stored as ``(X, Y, 1, 1, 3)``, a colour volume as ``(X, Y, Z, 1, 3)``.
    A grey image is written exactly as before (``(X, Y)`` or ``(X, Y, Z)``).

    Args:
        array: ``(X, Y)`` or ``(X, Y, Z)`` values, with a last axis of ``channels``
            when ``channels > 1``; int16/uint8 kept, other integer types kept when exact
            in int16, everything else written as float32.
        affine_ras: 4x4 voxel -> RAS mm.
        out_path: ``.nii`` or ``.nii.gz`` path; parent folders are created.
        threads: deflate threads for a ``.nii.gz`` (the bytes are the same for any number).
        channels: values per voxel: 1 (grey) or the length of ``array``'s last axis.

    Returns:
        ``(shape, spacing)`` of the written image's spatial axes (channels not
        included), spacing in mm per axis.
    """
    import nibabel as nib

    array = _output_dtype(array)
    if channels > 1 and array.shape[-1] != channels:
        raise ValueError(f"array's last axis must hold the {channels} channels; got shape {array.shape}")
    spatial = array.ndim - (1 if channels > 1 else 0)
    volume = array if spatial == 3 else array[:, :, np.newaxis]
    if channels > 1:
        volume = volume[:, :, :, np.newaxis, :]  # (X, Y, Z, 1, C): channels on NIfTI's fifth axis
    image = nib.Nifti1Image(volume, affine_ras)
    canonical = nib.as_closest_canonical(image)
    data = np.asanyarray(canonical.dataobj)
    affine = canonical.affine
    if spatial == 2:
        flat_axis = next(axis for axis in (2, 1, 0) if data.shape[axis] == 1)
        order = [axis for axis in range(3) if axis != flat_axis] + [flat_axis]
        data = data.transpose(order + list(range(3, data.ndim)))
        if channels == 1:
            data = data[:, :, 0]
        permuted = affine.copy()
        permuted[:3, :3] = affine[:3, order]
        affine = permuted
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm")
    if channels > 1:
        header.set_intent("vector")
    out = nib.Nifti1Image(data, affine, header)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _save(out, data, out_path, threads)
    spacing = tuple(float(z) for z in out.header.get_zooms()[:spatial])
    return tuple(int(s) for s in data.shape[:spatial]), spacing


def _save(image: object, data: np.ndarray, path: Path, threads: int) -> None:
    """Stream header and voxels to ``path``: the bytes ``nibabel.save`` writes, faster.

    nibabel's writer converts the array in slabs through Python; a Fortran-ordered
    array is already the file's byte layout, written here in one call. The header is
    nibabel's own, with the fields its writer sets for unscaled data.
    """
    header = image.header.copy()  # type: ignore[attr-defined]
    header.set_data_offset(HEADER_BYTES[348])
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    head = io.BytesIO()
    header.write_to(head)
    block = head.getvalue().ljust(HEADER_BYTES[348], b"\x00")
    # NIfTI stores Fortran order; the transpose of a Fortran array is C-contiguous, same bytes.
    voxels = memoryview(np.asfortranarray(data).T).cast("B")
    with _open_output(path, threads) as handle:
        handle.write(block)
        handle.write(voxels)


def _open_output(path: Path, threads: int):
    if not path.name.lower().endswith(".gz"):
        return open(path, "wb")
    try:
        from isal import igzip_threaded
    except ImportError:
        return _DeterministicGzip(path)
    # Always the threaded writer, even with one thread: its block layout differs from
    # igzip's, and the output must not depend on how many cores a run had.
    return igzip_threaded.open(str(path), "wb", compresslevel=GZIP_LEVEL, threads=max(1, threads), block_size=GZIP_BLOCK_BYTES)


class _DeterministicGzip(gzip.GzipFile):
    """The standard library's gzip with no file name and no time in its header."""

    def __init__(self, path: Path) -> None:
        self._raw = open(path, "wb")
        super().__init__(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=self._raw, mtime=0)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _output_dtype(array: np.ndarray) -> np.ndarray:
    if array.dtype in (np.int16, np.uint8, np.float32):
        return array
    if np.issubdtype(array.dtype, np.integer) and array.size:
        low, high = int(array.min()), int(array.max())
        if -32768 <= low and high <= 32767:
            return array.astype(np.int16)
    if np.issubdtype(array.dtype, np.bool_):
        return array.astype(np.uint8)
    return array.astype(np.float32)
