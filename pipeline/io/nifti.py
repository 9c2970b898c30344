"""Read NIfTI inputs and write the canonical RAS NIfTI volumes every later stage loads.

Canonical means: the array axes point (as closely as the data allows, without
resampling) to Right, Anterior, Superior, via :func:`nibabel.as_closest_canonical`,
which only flips and permutes axes. Downstream MONAI transforms then see one
orientation whatever the scanner or the exporting tool wrote.

Nothing from an input header is copied to an output header except geometry: the NIfTI
``descrip``, ``aux_file``, ``intent_name`` and ``db_name`` fields can hold free text
(tools put patient names there), so outputs are built from the array and affine alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates are LPS; NIfTI world coordinates are RAS."""


class NiftiShapeError(ValueError):
    """A NIfTI input is not a 2D image or 3D volume (e.g. a 4D time series)."""


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


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI image's values and its voxel -> RAS affine.

    Values are scaled by ``scl_slope``/``scl_inter`` only when the header sets them, so
    integer data stays integer and exact.

    Returns:
        ``(array, affine)``: array of 2 or 3 dims, affine 4x4 in mm.

    Raises:
        NiftiShapeError: more than three non-singleton axes.
    """
    import nibabel as nib

    image = nib.load(str(path))
    problem = image_shape_problem(tuple(image.shape))
    if problem:
        raise NiftiShapeError(problem)
    slope, intercept = image.header.get_slope_inter()
    if slope is None or (slope == 1.0 and not intercept):
        data = np.asarray(image.dataobj.get_unscaled() if hasattr(image.dataobj, "get_unscaled") else image.dataobj)
    else:
        data = np.asarray(image.get_fdata(dtype=np.float32))
    keep = len(_squeezed_shape(data.shape))
    data = data.reshape(data.shape[:keep]) if data.ndim > keep else data
    return data, np.asarray(image.affine, dtype=np.float64)


def write_canonical(array: np.ndarray, affine_ras: np.ndarray, out_path: str | Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Write ``array`` as a canonical (RAS) NIfTI-1 file, 2D kept 2D.

    Args:
        array: ``(X, Y)`` or ``(X, Y, Z)`` values; int16/uint8 kept, other integer types
            kept when exact in int16, everything else written as float32.
        affine_ras: 4x4 voxel -> RAS mm.
        out_path: ``.nii.gz`` path; parent folders are created.

    Returns:
        ``(shape, spacing)`` of the written image, spacing in mm per axis.
    """
    import nibabel as nib

    array = _output_dtype(array)
    volume = array if array.ndim == 3 else array[:, :, np.newaxis]
    image = nib.Nifti1Image(volume, affine_ras)
    canonical = nib.as_closest_canonical(image)
    data = np.asanyarray(canonical.dataobj)
    affine = canonical.affine
    if array.ndim == 2:
        flat_axis = next(axis for axis in (2, 1, 0) if data.shape[axis] == 1)
        order = [axis for axis in range(3) if axis != flat_axis] + [flat_axis]
        data = data.transpose(order)[:, :, 0]
        permuted = affine.copy()
        permuted[:3, :3] = affine[:3, order]
        affine = permuted
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm")
    # NIfTI stores Fortran order: a Fortran-contiguous array is streamed as it is.
    out = nib.Nifti1Image(np.asfortranarray(data), affine, header)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, str(out_path))
    spacing = tuple(float(z) for z in out.header.get_zooms()[: data.ndim])
    return tuple(int(s) for s in data.shape), spacing


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


def _squeezed_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    core = list(shape)
    while len(core) > 2 and core[-1] == 1:
        core.pop()
    return tuple(core)
