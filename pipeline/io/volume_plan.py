"""Order a candidate's planes along the slice normal, check their spacing, build the affine.

From headers only: planes are ordered by ImagePositionPatient projected on the slice
normal (cross product of the ImageOrientationPatient cosines), never by InstanceNumber
or file name; duplicate positions are dropped; the spacing is measured and the spacing
policy applied (``reject`` or ``resample`` a series with missing or irregular slices);
the voxel-to-patient affine follows DICOM PS3.3 C.7.6.2.1.1: for pixel (column c,
row r), ``P = IPP + c * dc * row_cosine + r * dr * column_cosine`` with
``PixelSpacing = (dr, dc)``. Volumes are stored as ``(columns, rows, slices)`` so that
the affine's first column is the row cosine, as NIfTI expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.io.deid import file_ref
from pipeline.io.dicom_header import DicomHeader
from pipeline.io.series import Candidate, Plane

DUPLICATE_TOLERANCE_MM = 0.01
"""Two planes closer than this along the normal are the same slice position."""

SPACING_TOLERANCE = 0.01
"""Relative deviation from the median slice spacing still counted as uniform (1 %)."""

SPACING_TOLERANCE_MM = 0.01
"""Absolute floor of that tolerance, for the rounding of positions written by scanners."""

GAP_FACTOR = 1.5
"""A step larger than this many median spacings is reported as missing slices."""


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


def plan_volume(candidate: Candidate, spacing_policy: str) -> PlanOutcome:
    """Order a candidate's planes and check their spacing, from headers only.

    Args:
        candidate: from :func:`pipeline.io.series.group_series`.
        spacing_policy: ``reject`` a series whose slice spacing is not uniform (missing
            slices, irregular steps), or ``resample`` it linearly onto the median spacing.

    Returns:
        The plan, or the rejection reason. Either way every decision is in words.
    """
    first = candidate.first
    notes: list[str] = []
    pixel = _pixel_spacing(first, notes)
    if first.orientation is not None and all(p.position is not None for p in candidate.planes):
        return _plan_by_position(candidate, spacing_policy, pixel, notes)
    return _plan_in_stored_order(candidate, pixel, notes)


def _pixel_spacing(first: DicomHeader, notes: list[str]) -> tuple[float, float]:
    """(row spacing, column spacing) in mm; 1 mm assumed, with a note, when not usable."""
    if first.pixel_spacing is not None and min(first.pixel_spacing) > 0:
        return first.pixel_spacing
    notes.append(f"PixelSpacing missing or not positive ({first.pixel_spacing}): 1 mm pixels assumed")
    return 1.0, 1.0


def _plan_by_position(
    candidate: Candidate, spacing_policy: str, pixel: tuple[float, float], notes: list[str]
) -> PlanOutcome:
    """Every plane has a position: order along the normal, drop repeats, measure the spacing."""
    first = candidate.first
    row_spacing, col_spacing = pixel
    skipped: dict[str, str] = {}
    orientation = np.asarray(first.orientation, dtype=np.float64)
    row_cos, col_cos = _unit(orientation[:3]), _unit(orientation[3:])
    normal = _unit(_cross(row_cos, col_cos))
    positions = np.asarray([p.position for p in candidate.planes], dtype=np.float64)
    distance = positions @ normal
    kept = _distinct_positions(candidate, distance, notes, skipped)
    planes = [candidate.planes[i] for i in kept]
    depth = distance[kept]
    if len(planes) == 1:
        step = normal * (first.slice_spacing or 1.0)
        affine = _affine(row_cos * col_spacing, col_cos * row_spacing, step, positions[kept[0]])
        return PlanOutcome(VolumePlan(planes, affine, None, True, notes), skipped=skipped)
    steps = np.diff(depth)
    median = _median(steps)
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


def _distinct_positions(
    candidate: Candidate, distance: np.ndarray, notes: list[str], skipped: dict[str, str]
) -> list[int]:
    """Plane indices in slice order, one per position; a repeat is noted (frame) or skipped (file)."""
    planes = candidate.planes
    order = sorted(
        range(len(planes)),
        key=lambda i: (distance[i], planes[i].instance or 0, planes[i].path, planes[i].frame),
    )
    kept: list[int] = []
    for index in order:
        if kept and abs(distance[index] - distance[kept[-1]]) < DUPLICATE_TOLERANCE_MM:
            plane, keeper = planes[index], planes[kept[-1]]
            where = f"{distance[index]:.2f} mm"
            if candidate.multiframe:
                notes.append(f"frame {plane.frame + 1} repeats the position {where} of frame {keeper.frame + 1}; dropped")
            else:
                skipped[plane.path] = f"duplicate slice position {where} along the normal; kept {file_ref(keeper.path)}"
            continue
        kept.append(index)
    return kept


def _plan_in_stored_order(candidate: Candidate, pixel: tuple[float, float], notes: list[str]) -> PlanOutcome:
    """No usable orientation or a plane without a position: stored order, header spacing."""
    first = candidate.first
    row_spacing, col_spacing = pixel
    planes = sorted(candidate.planes, key=lambda p: (p.instance or 0, p.path, p.frame))
    if first.orientation is not None:
        orientation = np.asarray(first.orientation, dtype=np.float64)
        row_cos, col_cos = _unit(orientation[:3]), _unit(orientation[3:])
    else:
        row_cos, col_cos = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
        notes.append(
            "ImageOrientationPatient missing or not two orthogonal unit vectors: axial direction cosines assumed"
        )
    normal = _cross(row_cos, col_cos)
    origin = np.asarray(planes[0].position if planes[0].position is not None else (0.0, 0.0, 0.0))
    thickness = first.slice_spacing or 1.0
    if len(planes) > 1:
        missing = "ImagePositionPatient per plane" if any(p.position is None for p in planes) else "usable orientation"
        notes.append(
            f"no {missing}: planes kept in stored (InstanceNumber/frame) order, "
            f"slice spacing {thickness:g} mm from the header" + ("" if first.slice_spacing else " (assumed)")
        )
    affine = _affine(row_cos * col_spacing, col_cos * row_spacing, normal * thickness, origin)
    return PlanOutcome(VolumePlan(planes, affine, None, len(planes) == 1, notes), skipped={})


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


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` of two 3-vectors, the same products and differences in the same order
    (so the same bits), without its per-call overhead (planning is per series, on every run)."""
    a0, a1, a2 = a.tolist()
    b0, b1, b2 = b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D array, bit for bit: the middle value, or the
    mean ``(a + b) / 2`` of the middle two; NaN when any value is NaN."""
    ordered = sorted(values.tolist())
    if any(math.isnan(v) for v in ordered):
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
