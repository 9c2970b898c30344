"""Write a phantom as a NIfTI-1 file, in a chosen voxel axis order.

Research archives hold many volumes already converted to NIfTI, and converters disagree
on the voxel axis order (dcm2niix, FSL and ITK each have their habits). The demo writes
some volumes in non-RAS orders so the pipeline's canonicalisation is exercised: the
affine always tells the truth, only the array layout changes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations

from pipeline.demo.geometry import AxialGeometry

#: Voxel axis orders the demo writes, as nibabel axis codes (the world side each axis
#: points to). ``LPS`` is the DICOM slice stack as is; ``LPI`` also flips the slices.
ORIENTATIONS: tuple[str, ...] = ("LPS", "RAS", "LAS", "LPI")


def write_nifti(path: Path, hu: np.ndarray, *, geometry: AxialGeometry, orientation: str) -> np.ndarray:
    """Save ``hu`` as int16 HU in a ``.nii.gz`` with qform and sform set to scanner space.

    Args:
        path: output file, ending ``.nii.gz``.
        hu: ``(K, R, C)`` HU volume laid out like a DICOM stack (see ``geometry``).
        geometry: where the voxels are in patient space.
        orientation: voxel axis order, one of :data:`ORIENTATIONS`.

    Returns:
        The 4x4 voxel-to-RAS affine written; ``nib.aff2axcodes`` of it is ``orientation``.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"'orientation' must be one of {list(ORIENTATIONS)}; got {orientation!r}.")
    if hu.shape != geometry.shape:
        raise ValueError(f"'hu' must have the geometry's shape {geometry.shape}; got {hu.shape}.")
    # (k, r, c) -> (i, j, k) = (c, r, k): i runs to patient Left, j to Posterior, k to Superior.
    data = np.rint(hu).astype(np.int16).transpose(2, 1, 0)
    affine = geometry.index_to_ras()
    transform = orientations.ornt_transform(
        orientations.axcodes2ornt(("L", "P", "S")), orientations.axcodes2ornt(tuple(orientation))
    )
    affine = affine @ orientations.inv_ornt_aff(transform, data.shape)
    data = np.ascontiguousarray(orientations.apply_orientation(data, transform))

    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units(xyz="mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return affine
