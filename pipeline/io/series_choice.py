"""What each manifest row can become, and the one series it keeps (``ingest.series_choice``).

A row's files are sorted into options (one per candidate DICOM series, one per NIfTI
file, one per PNG/JPEG/TIFF file) while non-images and unusable files are ledgered with
their reason. With ``series_choice: most_slices`` the option with most planes wins (ties:
DICOM or NIfTI before an image file, so a JPEG preview saved beside a DICOM image never
replaces it; then the larger matrix, then key) and the others are ledgered as skipped; with ``error`` a row matching several
series is an error. The winner is planned from headers into a :class:`BuildJob`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.build_volume import BuildJob
from pipeline.io.deid import pseudonym
from pipeline.io.dicom_header import DicomHeader
from pipeline.io.ledger import Ledger
from pipeline.io.manifest import Manifest
from pipeline.io.manifest_rows import ManifestRow, RowError
from pipeline.io.nifti import image_shape_problem
from pipeline.io.raster import RasterHeader
from pipeline.io.scan import FileRecord
from pipeline.io.series import Candidate, group_series
from pipeline.io.volume_plan import plan_volume


@dataclass
class Option:
    """One series a row could use: a DICOM candidate, a NIfTI file or an image file (raster)."""

    key: str
    n_planes: int
    files: list[str]
    candidate: Candidate | None = None
    nifti: str | None = None
    shape_problem: str = ""
    raster: str | None = None
    raster_header: RasterHeader | None = None


def row_options(
    manifest: Manifest,
    selected: dict[int, list[str]],
    records: dict[str, FileRecord],
    key: str,
    ledger: Ledger,
    series_choice: str,
    assume_missing_geometry: bool,
) -> tuple[dict[int, list[Option]], list[RowError]]:
    """Group each row's image files into options; record non-images and bad files."""
    errors: list[RowError] = []
    options_by_row: dict[int, list[Option]] = {}
    for row in manifest.rows:
        headers, options = _sort_files(selected.get(row.line, []), records, key, ledger, assume_missing_geometry)
        options += _dicom_options(headers, key, ledger)
        if series_choice == "error" and len(options) > 1:
            sizes = sorted((o.n_planes for o in options), reverse=True)
            errors.append(
                RowError(row.line, f"locator ({row.describe()}) must match one series with series_choice 'error'; "
                         f"got {len(options)} (planes: {sizes}). Narrow the row with series_uid or a deeper path, "
                         "or set ingest.series_choice: most_slices.")
            )
        options_by_row[row.line] = options
    return options_by_row, errors


def _sort_files(
    paths: list[str], records: dict[str, FileRecord], key: str, ledger: Ledger, assume_missing_geometry: bool
) -> tuple[dict[str, DicomHeader], list[Option]]:
    """A row's DICOM image headers and its NIfTI and image-file options; every other file is ledgered here."""
    headers: dict[str, DicomHeader] = {}
    options: list[Option] = []
    for path in paths:
        record = records[path]
        if record.kind in ("quarantined", "not_image"):
            ledger.record(path, record.kind, record.reason)
        elif record.kind == "dicom" and record.geometry and not assume_missing_geometry:
            ledger.record(
                path, "quarantined", f"unusable geometry: {record.geometry}. Fix the header, or set "
                "ingest.assume_missing_geometry: true to ingest it with 1 mm / axial assumed (noted)"
            )
        elif record.kind == "dicom":
            headers[path] = record.dicom  # type: ignore[assignment]
        elif record.kind == "nifti":
            shape = record.nifti.shape  # type: ignore[union-attr]
            options.append(
                Option(
                    key=pseudonym(key, "series", f"nifti|{path}"),
                    n_planes=int(np.prod(shape[2:3])) if len(shape) > 2 else 1,
                    files=[path],
                    nifti=path,
                    shape_problem=image_shape_problem(shape),
                )
            )
        elif record.kind == "raster":
            options.append(
                Option(key=pseudonym(key, "series", f"raster|{path}"), n_planes=1, files=[path], raster=path,
                       raster_header=record.raster)
            )
    return headers, options


def _dicom_options(headers: dict[str, DicomHeader], key: str, ledger: Ledger) -> list[Option]:
    """One option per candidate series; duplicate objects are ledgered as skipped."""
    candidates, duplicates = group_series(headers)
    for path, reason in duplicates.items():
        ledger.record(path, "skipped", reason)
    return [
        Option(
            key=pseudonym(key, "series", f"{candidate.identity}|{candidate.files[0]}"),
            n_planes=candidate.n_planes,
            files=candidate.files,
            candidate=candidate,
        )
        for candidate in candidates
    ]


def choose_and_plan(
    manifest: Manifest,
    options_by_row: dict[int, list[Option]],
    records: dict[str, FileRecord],
    ledger: Ledger,
    raw: Path,
    volume_dir: Path,
    spacing_policy: str,
    suffix: str,
) -> tuple[list[BuildJob], dict[str, tuple[ManifestRow, Option]]]:
    """Pick one option per row (most planes), plan it, and record the losers.

    Returns:
        The build jobs, and each job's row and option by series key.
    """
    jobs: list[BuildJob] = []
    chosen: dict[str, tuple[ManifestRow, Option]] = {}
    for row in manifest.rows:
        options = options_by_row.get(row.line, [])
        if not options:
            continue
        winner = _keep_one(row, options, records, ledger)
        job = _plan(winner, ledger, str(raw), str(volume_dir / f"{winner.key}{suffix}"), spacing_policy)
        if job is not None:
            jobs.append(job)
            chosen[winner.key] = (row, winner)
    return jobs, chosen


def _keep_one(row: ManifestRow, options: list[Option], records: dict[str, FileRecord], ledger: Ledger) -> Option:
    """The option with most planes (ties: not an image file, larger matrix, then key); the others' files are skipped."""
    ranked = sorted(options, key=lambda o: (-o.n_planes, o.raster is not None, -_matrix(o, records), o.key))
    winner = ranked[0]
    for loser in ranked[1:]:
        for path in loser.files:
            ledger.record(
                path,
                "skipped",
                f"line {row.line} matched {len(options)} series; kept {winner.key} by most_slices "
                f"({winner.n_planes} planes vs {loser.n_planes})",
                loser.key,
            )
    return winner


def _plan(winner: Option, ledger: Ledger, raw_dir: str, out_path: str, spacing_policy: str) -> BuildJob | None:
    """The job that builds ``winner``, or ``None`` when it cannot be built (ledgered as skipped)."""
    if winner.nifti is not None:
        if winner.shape_problem:
            ledger.record(winner.nifti, "skipped", winner.shape_problem, winner.key)
            return None
        return BuildJob(winner.key, raw_dir, out_path, nifti=winner.nifti)
    if winner.raster is not None:
        return BuildJob(winner.key, raw_dir, out_path, raster=winner.raster, raster_header=winner.raster_header)
    outcome = plan_volume(winner.candidate, spacing_policy)  # type: ignore[arg-type]
    for path, reason in outcome.skipped.items():
        ledger.record(path, "skipped", reason, winner.key)
    if outcome.plan is None:
        for path in winner.files:
            if ledger.status(path) is None:
                ledger.record(path, "skipped", outcome.rejected, winner.key)
        return None
    used = {plane.path for plane in outcome.plan.planes}
    headers = {p: h for p, h in winner.candidate.headers.items() if p in used}  # type: ignore[union-attr]
    return BuildJob(winner.key, raw_dir, out_path, plan=outcome.plan, headers=headers)


def _matrix(option: Option, records: dict[str, FileRecord]) -> int:
    if option.candidate is not None:
        first = option.candidate.first
        return first.rows * first.cols
    if option.raster_header is not None:
        return option.raster_header.pixels
    shape = records[option.files[0]].nifti.shape  # type: ignore[union-attr]
    return int(shape[0] * shape[1]) if len(shape) >= 2 else 0
