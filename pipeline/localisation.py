"""Does the model look at the lesion? Grad-CAM peaks against known lesion positions.

For each true-positive test case with a known lesion (the demo draws its lesions and
records them: :func:`pipeline.demo.cohort.write_lesion_truth`) the Grad-CAM map of the
model input (:mod:`pipeline.explain`) is taken at its maximum, and the peak counts as on
the lesion when it lies inside the lesion or within :data:`MARGIN_MM` of its edge. A
peak anywhere would score by chance the share of the body that is that close to the
lesion, so that share is reported beside it: a map that localises beats it several times.

Positions are compared in patient space (LPS, mm): the lesion file holds world
coordinates, and the prepared image's affine (MONAI's, RAS) places every voxel of the
map, whatever the resampling, crop and orientation between the scan and the model. "Within
the margin of the edge" is taken as inside the ellipsoid whose semi-axes are the
lesion's plus the margin: exact for a sphere, a close bound for the near-spherical
lesions of the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.tables import read_rows
from pipeline.transforms import BODY_THRESHOLD_SCALED

MARGIN_MM = 10.0
"""How far beyond the lesion's edge a peak still counts as on it."""

TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id", "centre_x_mm", "centre_y_mm", "centre_z_mm", "semi_x_mm", "semi_y_mm", "semi_z_mm",
)
"""Columns a lesion file must have (LPS, mm); the demo's also has ``tissue`` and ``diameter_mm``."""

_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class LesionTruth:
    """Where one lesion is: centre and semi-axes along LPS x, y and z, mm."""

    centre_lps: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]

    def reaches(self, points_lps: np.ndarray, margin_mm: float) -> np.ndarray:
        """Which of ``points_lps`` (N, 3) lie inside the lesion grown by ``margin_mm``."""
        scaled = (np.asarray(points_lps, dtype=np.float64) - self.centre_lps) / (np.asarray(self.semi_axes_mm) + margin_mm)
        return (scaled**2).sum(axis=-1) <= 1.0


def read_lesion_truth(path: str | Path, pseudonymise) -> dict[str, LesionTruth]:  # noqa: ANN001
    """The lesions of a lesion file by patient pseudonym (``pseudonymise(patient_id)``, as ingest writes it).

    Raises:
        PipelineInputError: a column is missing or a value is not a finite number (with
            positive semi-axes), naming the file, the line and the fix.
    """
    rows = read_rows(path)
    if rows and (missing := [c for c in TRUTH_COLUMNS if c not in rows[0]]):
        raise PipelineInputError(
            f"lesion file {str(path)!r} must have the columns {list(TRUTH_COLUMNS)}; {missing} are missing. "
            "The demo stage writes it (python -m pipeline.stages.demo ... --lesions FILE)."
        )
    truth: dict[str, LesionTruth] = {}
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) for c in TRUTH_COLUMNS[1:]]
        except ValueError:
            values = [float("nan")]
        if not all(np.isfinite(values)) or min(values[3:]) <= 0:
            raise PipelineInputError(
                f"lesion file {str(path)!r} line {line} must hold finite centre coordinates and positive "
                f"semi-axes (mm); got {[row[c] for c in TRUTH_COLUMNS[1:]]}. Correct or remove that line."
            )
        truth[pseudonymise(row["patient_id"])] = LesionTruth(tuple(values[:3]), tuple(values[3:]))  # type: ignore[arg-type]
    return truth


def voxel_points_lps(shape: Sequence[int], affine_ras: np.ndarray) -> np.ndarray:
    """LPS position (mm) of the centre of every voxel of a ``shape`` grid, (N, 3) in C order."""
    index = np.indices(tuple(shape), dtype=np.float64).reshape(len(shape), -1).T
    affine = np.asarray(affine_ras, dtype=np.float64)
    return (index @ affine[:3, :3].T + affine[:3, 3]) * _RAS_TO_LPS


@dataclass(frozen=True)
class CaseOutcome:
    """One case: whether its map peak reaches the lesion, and the chance of that."""

    peak_lps: tuple[float, float, float] | None
    on_lesion: bool
    chance: float

    @property
    def flat(self) -> bool:
        """The map had no peak (Grad-CAM found no positive evidence at that stage): a miss."""
        return self.peak_lps is None


def score_case(image: np.ndarray, saliency: np.ndarray, affine_ras: np.ndarray, lesion: LesionTruth,
               margin_mm: float = MARGIN_MM) -> CaseOutcome:
    """Compare one map's peak with its lesion.

    Args:
        image: the prepared model input (C, *roi) in [0, 1]; its first channel above
            :data:`~pipeline.transforms.BODY_THRESHOLD_SCALED` is the body (lungs included).
        saliency: the map on the same grid (*roi).
        affine_ras: the prepared image's voxel-to-world affine (RAS, mm).
        lesion: where the lesion is.
        margin_mm: reach beyond the lesion's edge.
    """
    points = voxel_points_lps(saliency.shape, affine_ras)
    body = np.asarray(image)[0].reshape(-1) > BODY_THRESHOLD_SCALED
    near = lesion.reaches(points[body], margin_mm)
    chance = float(near.mean()) if near.size else 0.0
    if not saliency.max() > saliency.min():  # argmax of a flat map is voxel 0: no peak to score
        return CaseOutcome(None, False, chance)
    peak = points[int(np.argmax(saliency))]
    return CaseOutcome(tuple(float(v) for v in peak), bool(lesion.reaches(peak[None], margin_mm)[0]),  # type: ignore[arg-type]
                       chance)


def summarise(outcomes: Iterable[CaseOutcome]) -> tuple[int, float | None, float | None]:
    """``(cases, share on the lesion, mean chance)``; the shares are ``None`` without a case."""
    outcomes = list(outcomes)
    if not outcomes:
        return 0, None, None
    return (len(outcomes), float(np.mean([o.on_lesion for o in outcomes])), float(np.mean([o.chance for o in outcomes])))
