"""Where each voxel of a demo volume sits in patient space.

The demo writes axial scans only, so one small record fixes the geometry that both the
DICOM and the NIfTI writer must agree on. Keeping it in one place is what lets the tests
check that a voxel lands at the same world point whichever format it was written in.

Conventions: a volume array is indexed ``(k, r, c)`` = (slice, row, column), as a stack
of DICOM slices. Patient space is DICOM's LPS (x to the patient's Left, y to Posterior,
z to Superior), in mm; NIfTI's RAS is the same space with x and y negated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: DICOM ImageOrientationPatient of an axial slice: rows run to patient left (+x),
#: columns run to posterior (+y).
AXIAL_ORIENTATION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

#: LPS -> RAS is a sign flip of the first two axes (DICOM PS3.3 C.7.6.2.1.1; NIfTI-1 header).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class AxialGeometry:
    """Voxel grid of an axial CT volume, slices stacked towards the head.

    Attributes:
        shape: ``(n_slices, rows, columns)`` of the volume array.
        origin_lps_mm: LPS position of the centre of voxel ``(0, 0, 0)``, mm; this is the
            ImagePositionPatient of slice 0.
        pixel_spacing_mm: in-plane size of a pixel (rows and columns alike), mm.
        slice_spacing_mm: distance between slice centres along +z, mm.
    """

    shape: tuple[int, int, int]
    origin_lps_mm: tuple[float, float, float]
    pixel_spacing_mm: float
    slice_spacing_mm: float

    def slice_position(self, k: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice ``k``: the origin moved ``k`` slices along +z."""
        x, y, z = self.origin_lps_mm
        return (x, y, z + k * self.slice_spacing_mm)

    def index_to_lps(self) -> np.ndarray:
        """4x4 affine from ``(c, r, k, 1)`` to LPS mm.

        The column index comes first because that is the order of DICOM's row direction
        cosine and of NIfTI's ``i`` axis; see :meth:`index_to_ras`.
        """
        affine = np.eye(4)
        affine[:3, 0] = np.array(AXIAL_ORIENTATION[:3]) * self.pixel_spacing_mm
        affine[:3, 1] = np.array(AXIAL_ORIENTATION[3:]) * self.pixel_spacing_mm
        affine[:3, 2] = np.cross(AXIAL_ORIENTATION[:3], AXIAL_ORIENTATION[3:]) * self.slice_spacing_mm
        affine[:3, 3] = self.origin_lps_mm
        return affine

    def index_to_ras(self) -> np.ndarray:
        """4x4 affine from ``(c, r, k, 1)`` to RAS mm, the NIfTI convention."""
        return LPS_TO_RAS @ self.index_to_lps()
