"""Turn a raw export plus a manifest into canonical volumes, an index and a ledger.

The order of work keeps the expensive part small and every file accounted for:

1. read and check the manifest (all problems collected);
2. walk the raw folder; read headers only of the files some row can reach (all files
   when a row locates by UID), in a process pool;
3. resolve each row to its files; rows matching nothing, overlapping rows and (with
   ``series_choice: error``) rows matching several series stop the stage with one
   message listing every bad line;
4. group each row's files into candidate series, pick one per row by the documented
   rule, plan its geometry from headers;
5. read pixels of the chosen series only, in the pool, and write canonical NIfTI;
6. write ``index.csv`` (one row per volume) and ``ledger.csv`` (one row per file).

With a store (:mod:`pipeline.io.store`), steps 2 and 5 skip what an earlier run already
did with the same files, code and params: headers of unchanged files are not read
again, volumes of unchanged series are linked from the store. Steps 3, 4 and 6 always
run in full, so the index and ledger are those of a fresh run, byte for byte.

Outputs (under ``out_dir``)::

    volumes/<series_key>.nii[.gz] canonical RAS, HU for CT, 2D images kept 2D
    index.csv                     series_key, patient_id (keyed hash), label, [split],
                                  image_path, modality, spacing, shape, technical
                                  metadata, then the manifest's subgroup columns
    ledger.csv                    path, status, reason, series_key for every file
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import os
import shutil
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.io.deid import TECHNICAL_KEYWORDS, Redactor, file_ref, path_token, pseudonym, resolve_file_refs
from pipeline.io.ledger import Ledger
from pipeline.io.manifest import AUTO_ENCODING, RESERVED_COLUMNS, Manifest, ManifestRow, RowError, read_manifest
from pipeline.io.nifti import (
    LPS_TO_RAS,
    VOLUME_FORMATS,
    NiftiShapeError,
    gzip_writer_name,
    image_shape_problem,
    load_nifti,
    write_canonical,
)
from pipeline.io.dicom_values import uid_name
from pipeline.io.failures import environment_error, short_error
from pipeline.io.scan import DEFAULT_MAX_VOXELS, FileRecord, read_headers
from pipeline.io.pixels import PixelError, read_planes
from pipeline.io.series import Candidate, group_series
from pipeline.io.store import IngestStore, code_fingerprint, file_state
from pipeline.io.tree import walk
from pipeline.io.volume_plan import VolumePlan, plan_volume
from pipeline.outputs import refuse_overlap
from pipeline.tables import write_rows

SERIES_CHOICES: tuple[str, ...] = ("most_slices", "error")
SPACING_POLICIES: tuple[str, ...] = ("reject", "resample")
VOLUME_DIR = "volumes"
INDEX_FILE = "index.csv"
LEDGER_FILE = "ledger.csv"

_STRUCTURED_COLUMNS = frozenset(
    {"_line", "series_key", "patient_id", "label", "split", "image_path", "modality", "spacing", "shape", "kvp",
     "slice_thickness", "field_strength", "transfer_syntax", "source_format", "n_source_files"}
)
"""Index columns holding keys, codes or numbers; every other cell is free text and redacted."""

CT_AIR_HU = -500.0
"""A NIfTI volume (no modality in its header) whose minimum is below this is taken as CT:
air is about -1000 HU, and no other modality stores large negative values."""


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest run did; :meth:`line` is the stage's one-line report.

    Attributes:
        n_files: files found under the raw folder.
        counts: files per ledger status; the values add up to ``n_files``.
        n_volumes: volumes written (index rows).
        n_rows: manifest rows.
        n_patients: distinct patients with at least one volume.
        rows_without_volume: manifest lines whose files were all unusable.
        dropped_columns: manifest columns left out because they look like identifiers.
    """

    n_files: int
    counts: dict[str, int]
    n_volumes: int
    n_rows: int
    n_patients: int
    rows_without_volume: tuple[int, ...] = ()
    dropped_columns: tuple[str, ...] = ()

    def line(self) -> str:
        parts = " + ".join(f"{count} {status}" for status, count in self.counts.items())
        text = (
            f"ingest: {self.n_files} files = {parts}; {self.n_volumes} volumes for "
            f"{self.n_rows - len(self.rows_without_volume)}/{self.n_rows} manifest rows, {self.n_patients} patients"
        )
        if self.rows_without_volume:
            lines = list(self.rows_without_volume)
            shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
            text += f"; {len(lines)} rows without a volume (see ledger.csv): lines {shown}"
        if self.dropped_columns:
            text += f"; manifest columns not copied (look like identifiers): {list(self.dropped_columns)}"
        return text


@dataclass
class _Option:
    """One series a row could use: a DICOM candidate or a NIfTI file."""

    key: str
    n_planes: int
    files: list[str]
    candidate: Candidate | None = None
    nifti: str | None = None
    shape_problem: str = ""


@dataclass
class _Job:
    """A volume to build in a worker process (picklable)."""

    series_key: str
    raw_dir: str
    out_path: str
    plan: VolumePlan | None = None
    headers: dict = field(default_factory=dict)
    nifti: str | None = None
    threads: int = 1


@dataclass
class _Built:
    """What a worker reports back."""

    series_key: str
    shape: tuple[int, ...] = ()
    spacing: tuple[float, ...] = ()
    notes: list[str] = field(default_factory=list)
    minimum: float = 0.0
    failed_path: str = ""
    failure: str = ""


def ingest_cohort(
    raw_dir: str | Path,
    manifest_path: str | Path,
    out_dir: str | Path,
    *,
    pseudonym_key: str,
    series_choice: str = "most_slices",
    spacing_policy: str = "reject",
    workers: int = 1,
    manifest_encoding: str = AUTO_ENCODING,
    assume_missing_geometry: bool = False,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    volume_format: str = "nii",
    store_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestSummary:
    """Ingest a raw DICOM/NIfTI export listed by a manifest.

    Args:
        raw_dir: folder holding the export; every file under it gets a ledger row.
        manifest_path: the manifest CSV (see :mod:`pipeline.io.manifest`).
        out_dir: receives ``volumes/``, ``index.csv`` and ``ledger.csv``; must not be,
            contain or lie inside ``raw_dir`` or the manifest.
        pseudonym_key: secret of the keyed hash for patient ids and series keys.
        series_choice: ``most_slices``: when a row matches several series, keep the
            one with most planes (ties: larger matrix, then key) and record the others
            as skipped; ``error``: stop and list such rows.
        spacing_policy: ``reject`` or ``resample`` a series with non-uniform spacing.
        workers: processes for header reading and volume building.
        manifest_encoding: ``auto`` or a codec name (see :func:`read_manifest`).
        assume_missing_geometry: ingest a DICOM file whose spacing, orientation or
            position is present but unparseable, with 1 mm / axial assumed and noted;
            by default such a file is quarantined.
        max_voxels: a file declaring more voxels is quarantined from its header alone.
        volume_format: ``nii`` or ``nii.gz`` (see :data:`pipeline.io.nifti.VOLUME_FORMATS`).
        store_dir: a folder kept between runs (:mod:`pipeline.io.store`); unchanged files
            and series are taken from it instead of read again. ``None``: read everything.
        progress: called as ``progress(phase, files_done, files_total)`` while reading.

    Returns:
        The run's summary; its counts add up to the number of files found.

    Raises:
        ManifestError: the manifest has problems; every bad line is listed.
        DependencyError: reading files failed for want of a module (the environment).
        ValueError: an argument breaks its rule (message names it).
    """
    if series_choice not in SERIES_CHOICES:
        raise ValueError(f"'series_choice' must be one of {list(SERIES_CHOICES)}; got {series_choice!r}.")
    if spacing_policy not in SPACING_POLICIES:
        raise ValueError(f"'spacing_policy' must be one of {list(SPACING_POLICIES)}; got {spacing_policy!r}.")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"'workers' must be an integer >= 1; got {workers!r}.")
    if volume_format not in VOLUME_FORMATS:
        raise ValueError(f"'volume_format' must be one of {list(VOLUME_FORMATS)}; got {volume_format!r}.")
    raw = Path(raw_dir).resolve()
    out = Path(out_dir).resolve()
    if not raw.is_dir():
        raise ValueError(f"'raw_dir' must be an existing folder; got {str(raw_dir)!r}. Check the path in dvc.yaml/params.yaml.")
    # Any overlap, not only out inside raw: out_dir=X with raw_dir=X/volumes once emptied the raw folder.
    refuse_overlap({"out_dir": out_dir}, {"raw_dir": raw_dir, "manifest": manifest_path}, stage="ingest")
    if store_dir is not None:
        refuse_overlap(
            {"store": store_dir}, {"raw_dir": raw_dir, "manifest": manifest_path, "out_dir": out_dir}, stage="ingest"
        )
    with ExitStack() as stack:
        pool = _Pool(workers, stack)
        store = None
        if store_dir is not None:
            settings = (code_fingerprint((gzip_writer_name(),)), volume_format, series_choice, spacing_policy,
                        str(assume_missing_geometry), str(max_voxels))
            store = IngestStore(store_dir, pseudonym_key, settings)
        return _ingest(
            raw, manifest_path, out, pseudonym_key, series_choice, spacing_policy, pool, manifest_encoding,
            assume_missing_geometry, max_voxels, "." + volume_format, store, progress or _quiet,
        )


def _ingest(
    raw: Path,
    manifest_path: str | Path,
    out: Path,
    pseudonym_key: str,
    series_choice: str,
    spacing_policy: str,
    pool: "_Pool",
    manifest_encoding: str,
    assume_missing_geometry: bool,
    max_voxels: int,
    suffix: str,
    store: IngestStore | None,
    progress: Callable[[str, int, int], None],
) -> IngestSummary:
    """:func:`ingest_cohort` after its arguments are checked (same steps, same outputs)."""

    manifest = read_manifest(manifest_path, raw, manifest_encoding)
    files = walk(raw)
    manifest_rel = _relative_to(Path(manifest_path).resolve(), raw)
    ledger = Ledger(files)
    redact = Redactor(pseudonym_key)
    for row in manifest.rows:
        redact.add([row.patient_id], token=_patient_key(pseudonym_key, row.patient_id))

    uses_uid = any(row.series_uid or row.study_uid for row in manifest.rows)
    reach = {row.line: _files_under(files, row.path) for row in manifest.rows}
    if manifest.errors and not uses_uid:
        manifest.raise_if_invalid()
    wanted = sorted(set(files) if uses_uid else set().union(*reach.values()) if reach else set())
    wanted = [p for p in wanted if p != manifest_rel]
    records = _cached_headers(raw, wanted, pool, max_voxels, store, progress)
    for record in records.values():
        redact.add(record.phi)

    selected, errors = _resolve_rows(manifest, reach, records, manifest_rel)
    manifest.raise_if_invalid(errors)

    if manifest_rel is not None:
        ledger.record(manifest_rel, "not_image", "the manifest")
    options_by_row, errors = _options(
        manifest, selected, records, pseudonym_key, ledger, series_choice, assume_missing_geometry
    )
    manifest.raise_if_invalid(errors)

    jobs, chosen_rows = _choose_and_plan(manifest, options_by_row, records, ledger, raw, out, spacing_policy, suffix)
    volume_dir = out / VOLUME_DIR
    if volume_dir.exists():
        shutil.rmtree(volume_dir)
    volume_dir.mkdir(parents=True)
    built = _run_jobs(jobs, pool, store, suffix, progress)

    index_rows = []
    for job, result in zip(jobs, built):
        row, option = chosen_rows[job.series_key]
        if result.failure:
            _record_failure(ledger, option, result)
            continue
        note = "; ".join(result.notes)
        for path in option.files:
            if ledger.status(path) is None:
                ledger.record(path, "ingested", note, job.series_key)
        index_rows.append(_index_row(manifest, row, option, result, pseudonym_key, suffix))
    for path in files:
        if ledger.status(path) is None:
            record = records.get(path)
            where = "matched by no manifest row" if uses_uid else "not under any manifest path"
            ledger.record(path, "unreferenced", where + (f" ({_kind_words(record)})" if record else ""))

    out.mkdir(parents=True, exist_ok=True)
    tokenise = functools.partial(path_token, pseudonym_key)
    _write_index(out / INDEX_FILE, manifest, index_rows, redact, tokenise)
    ledger.write(out / LEDGER_FILE, redact, tokenise)
    if store is not None:
        store.prune()
    lines_with = {int(r["_line"]) for r in index_rows}
    return IngestSummary(
        n_files=len(files),
        counts=ledger.counts(),
        n_volumes=len(index_rows),
        n_rows=len(manifest.rows),
        n_patients=len({r["patient_id"] for r in index_rows}),
        rows_without_volume=tuple(sorted(r.line for r in manifest.rows if r.line not in lines_with)),
        dropped_columns=manifest.dropped_columns,
    )


def _resolve_rows(
    manifest: Manifest, reach: dict[int, list[str]], records: dict[str, FileRecord], manifest_rel: str | None
) -> tuple[dict[int, list[str]], list[RowError]]:
    """Files each row selects; rows matching nothing or overlapping are errors."""
    errors: list[RowError] = []
    selected: dict[int, list[str]] = {}
    owner: dict[str, int] = {}
    # Files by UID, built once: a UID row looks its files up instead of testing every file.
    by_series: dict[str, list[str]] = {}
    by_study: dict[str, list[str]] = {}
    for path in sorted(records):
        by_series.setdefault(records[path].series_uid, []).append(path)
        by_study.setdefault(records[path].study_uid, []).append(path)
    for row in manifest.rows:
        if row.series_uid or row.study_uid:
            pool = by_series.get(row.series_uid, []) if row.series_uid else by_study.get(row.study_uid, [])
            if row.path is not None:
                within = set(reach[row.line])
                pool = [p for p in pool if p in within]
            paths = [p for p in pool if p != manifest_rel and _uid_match(records[p], row)]
        else:
            paths = [p for p in reach[row.line] if p != manifest_rel]
        if not paths:
            where = "under its path" if row.path is not None else "in the raw folder"
            errors.append(RowError(row.line, f"locator ({row.describe()}) must match at least one file; none {where} does."))
            continue
        clash = sorted({owner[p] for p in paths if p in owner})
        if clash:
            errors.append(
                RowError(row.line, f"locator ({row.describe()}) must not select files another row selects; "
                         f"it overlaps line(s) {clash}. Make the paths or UIDs disjoint.")
            )
            continue
        for path in paths:
            owner[path] = row.line
        selected[row.line] = paths
    return selected, errors


def _options(
    manifest: Manifest,
    selected: dict[int, list[str]],
    records: dict[str, FileRecord],
    key: str,
    ledger: Ledger,
    series_choice: str,
    assume_missing_geometry: bool = False,
) -> tuple[dict[int, list[_Option]], list[RowError]]:
    """Group each row's image files into options; record non-images and bad files."""
    errors: list[RowError] = []
    options_by_row: dict[int, list[_Option]] = {}
    for row in manifest.rows:
        headers = {}
        options: list[_Option] = []
        for path in selected.get(row.line, []):
            record = records[path]
            if record.kind in ("quarantined", "not_image"):
                ledger.record(path, record.kind, record.reason)
            elif record.kind == "dicom" and record.geometry and not assume_missing_geometry:
                ledger.record(
                    path, "quarantined", f"unusable geometry: {record.geometry}. Fix the header, or set "
                    "ingest.assume_missing_geometry: true to ingest it with 1 mm / axial assumed (noted)"
                )
            elif record.kind == "dicom":
                headers[path] = record.dicom
            elif record.kind == "nifti":
                shape = record.nifti.shape  # type: ignore[union-attr]
                options.append(
                    _Option(
                        key=pseudonym(key, "series", f"nifti|{path}"),
                        n_planes=int(np.prod(shape[2:3])) if len(shape) > 2 else 1,
                        files=[path],
                        nifti=path,
                        shape_problem=image_shape_problem(shape),
                    )
                )
        candidates, duplicates = group_series(headers)
        for path, reason in duplicates.items():
            ledger.record(path, "skipped", reason)
        for candidate in candidates:
            options.append(
                _Option(
                    key=pseudonym(key, "series", f"{candidate.identity}|{candidate.files[0]}"),
                    n_planes=candidate.n_planes,
                    files=candidate.files,
                    candidate=candidate,
                )
            )
        if series_choice == "error" and len(options) > 1:
            sizes = sorted((o.n_planes for o in options), reverse=True)
            errors.append(
                RowError(row.line, f"locator ({row.describe()}) must match one series with series_choice 'error'; "
                         f"got {len(options)} (planes: {sizes}). Narrow the row with series_uid or a deeper path, "
                         "or set ingest.series_choice: most_slices.")
            )
        options_by_row[row.line] = options
    return options_by_row, errors


def _choose_and_plan(
    manifest: Manifest,
    options_by_row: dict[int, list[_Option]],
    records: dict[str, FileRecord],
    ledger: Ledger,
    raw: Path,
    out: Path,
    spacing_policy: str,
    suffix: str,
) -> tuple[list[_Job], dict[str, tuple[ManifestRow, _Option]]]:
    """Pick one option per row (most planes), plan it, and record the losers."""
    jobs: list[_Job] = []
    chosen: dict[str, tuple[ManifestRow, _Option]] = {}
    for row in manifest.rows:
        options = options_by_row.get(row.line, [])
        if not options:
            continue
        ranked = sorted(options, key=lambda o: (-o.n_planes, -_matrix(o, records), o.key))
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
        out_path = str(out / VOLUME_DIR / f"{winner.key}{suffix}")
        if winner.nifti is not None:
            if winner.shape_problem:
                ledger.record(winner.nifti, "skipped", winner.shape_problem, winner.key)
                continue
            jobs.append(_Job(winner.key, str(raw), out_path, nifti=winner.nifti))
        else:
            outcome = plan_volume(winner.candidate, spacing_policy)  # type: ignore[arg-type]
            for path, reason in outcome.skipped.items():
                ledger.record(path, "skipped", reason, winner.key)
            if outcome.plan is None:
                for path in winner.files:
                    if ledger.status(path) is None:
                        ledger.record(path, "skipped", outcome.rejected, winner.key)
                continue
            used = {plane.path for plane in outcome.plan.planes}
            headers = {p: h for p, h in winner.candidate.headers.items() if p in used}  # type: ignore[union-attr]
            jobs.append(_Job(winner.key, str(raw), out_path, plan=outcome.plan, headers=headers))
        chosen[winner.key] = (row, winner)
    return jobs, chosen


HEADER_BATCH = 64
"""Most files per header-reading task: enough to hide the pool's overhead, few enough
for a progress line every few seconds."""


class _Pool:
    """A process pool started on first use and shared by header reading and volume building."""

    def __init__(self, workers: int, stack: ExitStack) -> None:
        self.workers = workers
        self._stack = stack
        self._executor: Executor | None = None

    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._stack.enter_context(ProcessPoolExecutor(max_workers=self.workers))
        return self._executor


def _quiet(phase: str, done: int, total: int) -> None:
    return None


def _cached_headers(
    raw: Path,
    wanted: list[str],
    pool: _Pool,
    max_voxels: int,
    store: IngestStore | None,
    progress: Callable[[str, int, int], None],
) -> dict[str, FileRecord]:
    """Header records of ``wanted``, in order: from the store where the file is unchanged, else read."""
    states = {path: file_state(raw / path) for path in wanted} if store is not None else {}
    kept = store.load_headers() if store is not None else {}
    records: dict[str, FileRecord] = {}
    for path in wanted:
        record = kept.get((path, states.get(path)))
        if record is not None:
            records[path] = record  # type: ignore[assignment]
    missing = [path for path in wanted if path not in records]
    fresh: dict[str, FileRecord] = {}
    progress("headers", len(records), len(wanted))
    if pool.workers <= 1 or len(missing) < 8:
        fresh = {r.path: r for r in read_headers(raw, missing, 1, max_voxels)}
    else:
        # At least 8 tasks per worker: with few large ones, one worker is left with the last.
        size = max(1, min(HEADER_BATCH, -(-len(missing) // (pool.workers * 8))))
        batches = [missing[i : i + size] for i in range(0, len(missing), size)]
        futures = [pool.executor().submit(read_headers, raw, batch, 1, max_voxels) for batch in batches]
        for future in as_completed(futures):
            fresh.update((r.path, r) for r in future.result())
            progress("headers", len(records) + len(fresh), len(wanted))
    records.update(fresh)
    if store is not None:
        store.save_headers({(p, states[p]): records[p] for p in wanted if states[p] is not None})
    progress("headers", len(wanted), len(wanted))
    return {path: records[path] for path in wanted}


def _run_jobs(
    jobs: list[_Job], pool: _Pool, store: IngestStore | None, suffix: str, progress: Callable[[str, int, int], None]
) -> list[_Built]:
    """Build every job, or link its volume from the store; results in the order of ``jobs``."""
    results: list[_Built | None] = [None] * len(jobs)
    names: dict[int, str] = {}
    sizes = [len(job.headers) or 1 for job in jobs]
    total, done = sum(sizes), 0
    for i, job in enumerate(jobs):
        name = _entry_name(job, store)
        report = store.fetch(name, suffix, job.out_path) if store is not None and name else None
        if report is not None:
            results[i] = _Built(job.series_key, tuple(report["shape"]), tuple(report["spacing"]),
                                list(report["notes"]), report["minimum"])
            done += sizes[i]
        elif name:
            names[i] = name
    todo = [i for i, result in enumerate(results) if result is None]
    parallel = min(pool.workers, len(todo))
    for i in todo:
        # Cores left over by the processes go to a .nii.gz's deflate threads.
        jobs[i].threads = max(1, _cores() // max(1, parallel))
    progress("volumes", done, total)
    if parallel <= 1:
        finished = ((i, _build(jobs[i])) for i in todo)
    else:
        futures = {pool.executor().submit(_build, jobs[i]): i for i in todo}
        finished = ((futures[f], f.result()) for f in as_completed(futures))
    for i, built in finished:
        results[i] = built
        done += sizes[i]
        progress("volumes", done, total)
        if store is not None and i in names and not built.failure:
            report = {"shape": built.shape, "spacing": built.spacing, "notes": built.notes, "minimum": built.minimum}
            store.keep(names[i], suffix, jobs[i].out_path, report)
    return results  # type: ignore[return-value]


def _entry_name(job: _Job, store: IngestStore | None) -> str:
    """The store name of ``job``'s result: a hash of all it reads; ``""`` without a store or a file."""
    if store is None:
        return ""
    paths = [job.nifti] if job.nifti is not None else sorted(job.headers)
    states = [(path, file_state(os.path.join(job.raw_dir, path))) for path in paths]
    if any(state is None for _, state in states):
        return ""
    plan = job.plan
    if plan is not None:
        # The affine exactly, as bytes: numpy's printed form rounds, and is slow.
        plan = dataclasses.replace(plan, affine_lps=plan.affine_lps.astype("<f8").tobytes().hex())
    return store.name(repr((job.series_key, job.nifti, plan, sorted(job.headers.items()), states)))


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _build(job: _Job) -> _Built:
    """Read pixels and write one canonical volume; failures are reported, never raised."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if job.nifti is not None:
                array, affine_ras = load_nifti(os.path.join(job.raw_dir, job.nifti))
                notes: list[str] = []
            else:
                plan = job.plan
                array, notes = read_planes(job.raw_dir, job.headers, plan)  # type: ignore[arg-type]
                notes = list(plan.notes) + notes  # type: ignore[union-attr]
                affine_ras = LPS_TO_RAS @ plan.affine_lps  # type: ignore[union-attr]
                if plan.is_2d:  # type: ignore[union-attr]
                    array = array[:, :, 0]
            minimum = float(array.min()) if array.size else 0.0
            shape, spacing = write_canonical(array, affine_ras, job.out_path, threads=job.threads)
            return _Built(job.series_key, shape, spacing, notes, minimum)
        except Exception as error:
            return _failed(job, error)


def _failed(job: _Job, error: Exception) -> _Built:
    """What a failed build reports; a missing dependency stops the stage instead."""
    environment = environment_error(error)
    if environment is not None:
        raise environment from error
    if isinstance(error, PixelError):
        return _Built(job.series_key, failed_path=error.path, failure=error.reason)
    if isinstance(error, NiftiShapeError):
        return _Built(job.series_key, failed_path=job.nifti or "", failure=str(error))
    full = os.path.join(job.raw_dir, job.nifti) if job.nifti else ""
    return _Built(job.series_key, failed_path=job.nifti or "", failure=f"{type(error).__name__}: {short_error(error, full)}")


def _record_failure(ledger: Ledger, option: _Option, result: _Built) -> None:
    for path in option.files:
        if ledger.status(path) is not None:
            continue
        if path == result.failed_path:
            ledger.record(path, "quarantined", result.failure, result.series_key)
        else:
            blame = file_ref(result.failed_path) if result.failed_path else "the volume"
            ledger.record(path, "skipped", f"series not built: {blame}: {result.failure}", result.series_key)


def _index_row(
    manifest: Manifest, row: ManifestRow, option: _Option, built: _Built, key: str, suffix: str
) -> dict[str, str]:
    values: dict[str, str] = {
        "_line": str(row.line),
        "series_key": built.series_key,
        "patient_id": _patient_key(key, row.patient_id),
        "label": str(row.label),
    }
    if manifest.has_split:
        values["split"] = row.split or ""
    values["image_path"] = f"{VOLUME_DIR}/{built.series_key}{suffix}"
    notes = list(built.notes)
    if option.candidate is not None:
        first = option.candidate.first
        modality = first.modality
        technical = first.technical
        syntax = uid_name(first.transfer_syntax) or first.transfer_syntax
        source = "dicom"
    else:
        modality = "CT" if built.minimum < CT_AIR_HU else "OT"
        if modality == "CT":
            notes.append(f"NIfTI has no modality; CT inferred from values below {CT_AIR_HU:g}")
        technical, syntax, source = {}, "", "nifti"
    values["modality"] = modality
    values["spacing"] = "x".join(f"{s:.4g}" for s in built.spacing)
    values["shape"] = "x".join(str(s) for s in built.shape)
    for column in TECHNICAL_KEYWORDS:
        values[column] = technical.get(column, "")
    values["transfer_syntax"] = syntax
    values["source_format"] = source
    values["n_source_files"] = str(len(option.files))
    values["ingest_note"] = "; ".join(notes)
    for column in manifest.extra_columns:
        values[column] = row.extras.get(column, "")
    return values


def _write_index(
    path: Path, manifest: Manifest, rows: list[dict[str, str]], redact: Redactor, tokenise: Callable[[str], str]
) -> None:
    """Write the index; free-text cells pass through ``redact``, paths they name through ``tokenise``.

    Even allow-listed technical values can carry an identifier (test files exist whose
    InstitutionName is the manufacturer's name); the tokens are deterministic, so a
    redacted value still groups correctly as a subgroup attribute. Formula-like cells
    are neutralised by :func:`pipeline.tables.write_rows`.
    """
    columns = ["series_key", "patient_id", "label"] + (["split"] if manifest.has_split else [])
    columns += [c for c in RESERVED_COLUMNS if c != "series_key"] + list(manifest.extra_columns)
    cleaned = (
        {k: v if k in _STRUCTURED_COLUMNS else redact(resolve_file_refs(v, tokenise)) for k, v in row.items() if k in columns}
        for row in sorted(rows, key=lambda r: int(r["_line"]))
    )
    write_rows(path, cleaned, columns)


def _patient_key(key: str, patient_id: str) -> str:
    return pseudonym(key, "patient", patient_id)


def _files_under(files: list[str], rel: str | None) -> list[str]:
    """The paths of ``files`` (sorted, as :func:`walk` returns them) that are ``rel`` or lie below it.

    Two binary searches per manifest row instead of a scan of every file: a hospital export
    has thousands of rows and hundreds of thousands of files.
    """
    if rel is None or rel == "":
        return files
    stem = rel.rstrip("/")
    below = files[bisect.bisect_left(files, stem + "/") : bisect.bisect_left(files, stem + "0")]  # "0" follows "/"
    at = bisect.bisect_left(files, rel)
    return ([rel] if at < len(files) and files[at] == rel else []) + below


def _uid_match(record: FileRecord, row: ManifestRow) -> bool:
    if row.series_uid and record.series_uid != row.series_uid:
        return False
    if row.study_uid and record.study_uid != row.study_uid:
        return False
    return True


def _matrix(option: _Option, records: dict[str, FileRecord]) -> int:
    if option.candidate is not None:
        first = option.candidate.first
        return first.rows * first.cols
    shape = records[option.files[0]].nifti.shape  # type: ignore[union-attr]
    return int(shape[0] * shape[1]) if len(shape) >= 2 else 0


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def _kind_words(record: FileRecord) -> str:
    if record.kind == "dicom":
        return f"DICOM {record.dicom.modality} image" if record.dicom else "DICOM image"
    if record.kind == "nifti":
        return "NIfTI image"
    return f"{record.kind}: {record.reason}"
