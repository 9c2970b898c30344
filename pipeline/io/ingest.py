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
6. write ``index.csv`` (one row per volume), ``ledger.csv`` (one row per file) and
   ``settings.json`` (the settings that decide a series' voxels, for the model file).

With a store (:mod:`pipeline.io.store`), steps 2 and 5 skip what an earlier run already
did with the same files, code and params: headers of unchanged files are not read
again, volumes of unchanged series are linked from the store. Steps 3, 4 and 6 always
run in full, so the index and ledger are those of a fresh run, byte for byte.

Outputs (under ``out_dir``)::

    volumes/<series_key>.nii[.gz] canonical RAS, HU for CT, 2D images kept 2D, colour
                                  kept (RGB on NIfTI's fifth axis: nifti_write.write_canonical)
    index.csv                     series_key, patient_id (keyed hash), label, [split],
                                  image_path, modality, spacing, shape, channels, technical
                                  metadata, then the manifest's subgroup columns
    ledger.csv                    path, status, reason, series_key for every file
    settings.json                 series_choice, spacing_policy, assume_missing_geometry,
                                  max_voxels (pipeline.schema.tables.INGEST_SCORING_SETTINGS)
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError, PipelineInputError
from pipeline.io.build_volume import BuildJob, BuildResult
from pipeline.io.deid import PathTokens, Redactor, file_ref
from pipeline.io.index import index_row, patient_key, write_index
from pipeline.io.ledger import Ledger
from pipeline.io.locators import files_under, resolve_rows
from pipeline.io.manifest import Manifest, read_manifest
from pipeline.io.manifest_rows import ManifestRow
from pipeline.io.nifti_write import gzip_writer_name
from pipeline.io.scan import FileRecord
from pipeline.io.series_choice import Option, choose_and_plan, row_options
from pipeline.io.store import IngestStore, code_fingerprint
from pipeline.io.tree import walk
from pipeline.io.worker_pool import Progress, WorkerPool, cached_headers, run_jobs
from pipeline.outputs import refuse_overlap
from pipeline.rules import SERIES_CHOICES, SPACING_POLICIES, VOLUME_FORMATS, check_choice
from pipeline.schema.tables import INDEX_FILE, INGEST_SCORING_SETTINGS, INGEST_SETTINGS_FILE, LEDGER_FILE, VOLUME_DIR



class RawFolderError(PipelineInputError):
    """The raw folder ingest is asked to read is not an existing folder."""


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


@dataclass(frozen=True)
class _Run:
    """One run's checked settings and resources, shared by its steps."""

    raw: Path
    out: Path
    key: str
    series_choice: str
    spacing_policy: str
    assume_missing_geometry: bool
    max_voxels: int
    suffix: str
    pool: WorkerPool
    store: IngestStore | None
    progress: Progress


def ingest_cohort(
    raw_dir: str | Path,
    manifest_path: str | Path,
    out_dir: str | Path,
    *,
    pseudonym_key: str,
    series_choice: str,
    spacing_policy: str,
    workers: int,
    manifest_encoding: str,
    assume_missing_geometry: bool,
    max_voxels: int,
    volume_format: str,
    store_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest a raw DICOM/NIfTI/PNG/JPEG/TIFF export listed by a manifest.

    The settings ``pseudonym_key`` to ``volume_format`` are the ``ingest`` keys of
    params.yaml (:class:`pipeline.config.IngestConfig`): no defaults here, by design.

    Args:
        raw_dir: folder holding the export; every file under it gets a ledger row.
        manifest_path: the manifest CSV (see :mod:`pipeline.io.manifest`).
        out_dir: receives ``volumes/``, ``index.csv``, ``ledger.csv`` and ``settings.json``; must not be,
            contain or lie inside ``raw_dir`` or the manifest.
        pseudonym_key: secret of the keyed hash for patient ids and series keys.
        series_choice: ``most_slices`` (keep the series with most planes, record the
            others as skipped; :mod:`pipeline.io.series_choice`) or ``error``.
        spacing_policy: ``reject`` or ``resample`` a series with non-uniform spacing.
        workers: processes for header reading and volume building.
        manifest_encoding: ``auto`` or a codec name (see :func:`read_manifest`).
        assume_missing_geometry: ingest a DICOM file whose spacing, orientation or
            position is present but unparseable, with 1 mm / axial assumed and noted,
            instead of quarantining it.
        max_voxels: a file declaring more voxels is quarantined from its header alone.
        volume_format: ``nii`` or ``nii.gz`` (:data:`pipeline.rules.VOLUME_FORMATS`).
        store_dir: a folder kept between runs (:mod:`pipeline.io.store`); unchanged files
            and series are taken from it instead of read again. ``None``: read everything.
        progress: called as ``progress(phase, files_done, files_total)`` while reading.

    Returns:
        The run's summary; its counts add up to the number of files found.

    Raises:
        ManifestError: the manifest has problems; every bad line is listed.
        DependencyError: reading files failed for want of a module (the environment).
        RawFolderError: ``raw_dir`` is not an existing folder.
        OutputOverlapError: an output folder overlaps an input.
        ConfigError: an argument breaks its rule (the message names it and the valid values).
    """
    _check_settings(series_choice, spacing_policy, workers, volume_format)
    raw, out = _check_folders(raw_dir, manifest_path, out_dir, store_dir)
    shaping = (volume_format, series_choice, spacing_policy, str(assume_missing_geometry), str(max_voxels))
    with ExitStack() as stack:
        pool = WorkerPool(workers, stack)
        run = _Run(raw, out, pseudonym_key, series_choice, spacing_policy, assume_missing_geometry, max_voxels,
                   "." + volume_format, pool, _open_store(store_dir, pseudonym_key, shaping), progress or _quiet)
        return _ingest(run, manifest_path, manifest_encoding)


def _open_store(store_dir: str | Path | None, key: str, shaping: tuple[str, ...]) -> IngestStore | None:
    """The store for this run's code and the settings that shape its results; ``None`` without one."""
    if store_dir is None:
        return None
    return IngestStore(store_dir, key, (code_fingerprint((gzip_writer_name(),)), *shaping))


def _check_settings(series_choice: str, spacing_policy: str, workers: int, volume_format: str) -> None:
    """The rules :class:`pipeline.config.IngestConfig` applies, for callers that skip it."""
    check_choice("series_choice", series_choice, SERIES_CHOICES)
    check_choice("spacing_policy", spacing_policy, SPACING_POLICIES)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"'workers' must be an integer >= 1; got {workers!r}.")
    check_choice("volume_format", volume_format, VOLUME_FORMATS)


def _check_folders(
    raw_dir: str | Path, manifest_path: str | Path, out_dir: str | Path, store_dir: str | Path | None
) -> tuple[Path, Path]:
    """The raw and output folders, resolved; the raw folder must exist and nothing may overlap."""
    raw = Path(raw_dir).resolve()
    out = Path(out_dir).resolve()
    if not raw.is_dir():
        raise RawFolderError(
            f"'raw_dir' must be an existing folder; got {str(raw_dir)!r}. Check the path in dvc.yaml/params.yaml."
        )
    # Any overlap, not only out inside raw: out_dir=X with raw_dir=X/volumes once emptied the raw folder.
    refuse_overlap({"out_dir": out_dir}, {"raw_dir": raw_dir, "manifest": manifest_path}, stage="ingest")
    if store_dir is not None:
        refuse_overlap(
            {"store": store_dir}, {"raw_dir": raw_dir, "manifest": manifest_path, "out_dir": out_dir}, stage="ingest"
        )
    return raw, out


def _ingest(run: _Run, manifest_path: str | Path, manifest_encoding: str) -> IngestSummary:
    """:func:`ingest_cohort` after its arguments are checked (the steps of the module docstring)."""
    manifest = read_manifest(manifest_path, run.raw, encoding=manifest_encoding)
    files = walk(run.raw)
    manifest_rel = _relative_to(Path(manifest_path).resolve(), run.raw)
    ledger = Ledger(files)
    redact = Redactor(run.key)
    for row in manifest.rows:
        redact.add([row.patient_id], token=patient_key(run.key, row.patient_id))

    uses_uid = any(row.series_uid or row.study_uid for row in manifest.rows)
    reach = {row.line: files_under(files, row.path) for row in manifest.rows}
    if manifest.errors and not uses_uid:
        manifest.raise_if_invalid()
    wanted = sorted(set(files) if uses_uid else set().union(*reach.values()) if reach else set())
    records = cached_headers(run.raw, [p for p in wanted if p != manifest_rel], run.pool, run.max_voxels, run.store,
                             run.progress)
    for record in records.values():
        redact.add(record.phi)

    selected, errors = resolve_rows(manifest, reach, records, manifest_rel)
    manifest.raise_if_invalid(errors)
    if manifest_rel is not None:
        ledger.record(manifest_rel, "not_image", "the manifest")
    options_by_row, errors = row_options(
        manifest, selected, records, run.key, ledger, run.series_choice, run.assume_missing_geometry
    )
    manifest.raise_if_invalid(errors)

    volume_dir = run.out / VOLUME_DIR
    jobs, chosen = choose_and_plan(manifest, options_by_row, records, ledger, run.raw, volume_dir,
                                   run.spacing_policy, run.suffix)
    if volume_dir.exists():
        shutil.rmtree(volume_dir)
    volume_dir.mkdir(parents=True)
    built = run_jobs(jobs, run.pool, run.store, run.suffix, run.progress)
    index_rows = _record_results(run, manifest, jobs, built, chosen, ledger)
    _record_unreferenced(ledger, files, records, uses_uid)
    _write_outputs(run, manifest, index_rows, ledger, redact)
    return _summary(manifest, files, ledger, index_rows)


def _record_results(
    run: _Run,
    manifest: Manifest,
    jobs: list[BuildJob],
    built: list[BuildResult],
    chosen: dict[str, tuple[ManifestRow, Option]],
    ledger: Ledger,
) -> list[dict[str, str]]:
    """Ledger every built series' files as ingested (or the failure); the index rows of those built."""
    index_rows = []
    for job, result in zip(jobs, built):
        row, option = chosen[job.series_key]
        if result.failure:
            _record_failure(ledger, option, result)
            continue
        note = "; ".join(result.notes)
        for path in option.files:
            if ledger.status(path) is None:
                ledger.record(path, "ingested", note, job.series_key)
        image_path = f"{VOLUME_DIR}/{job.series_key}{run.suffix}"
        index_rows.append(index_row(manifest, row, option, result, run.key, image_path))
    return index_rows


def _record_failure(ledger: Ledger, option: Option, result: BuildResult) -> None:
    """The failing file is quarantined; the rest of its series is skipped, naming it."""
    for path in option.files:
        if ledger.status(path) is not None:
            continue
        if path == result.failed_path:
            ledger.record(path, "quarantined", result.failure, result.series_key)
        else:
            blame = file_ref(result.failed_path) if result.failed_path else "the volume"
            ledger.record(path, "skipped", f"series not built: {blame}: {result.failure}", result.series_key)


def _record_unreferenced(ledger: Ledger, files: list[str], records: dict[str, FileRecord], uses_uid: bool) -> None:
    for path in files:
        if ledger.status(path) is None:
            record = records.get(path)
            where = "matched by no manifest row" if uses_uid else "not under any manifest path"
            ledger.record(path, "unreferenced", where + (f" ({_kind_words(record)})" if record else ""))


def _write_outputs(run: _Run, manifest: Manifest, index_rows: list[dict[str, str]], ledger: Ledger, redact: Redactor) -> None:
    run.out.mkdir(parents=True, exist_ok=True)
    tokenise = PathTokens(run.key)
    write_index(run.out / INDEX_FILE, manifest, index_rows, redact, tokenise)
    ledger.write(run.out / LEDGER_FILE, redact, tokenise)
    # What decides a series' voxels travels with the data into the model file, so that
    # predict reads a new study as the training cohort was read.
    settings = {name: getattr(run, name) for name in INGEST_SCORING_SETTINGS}
    (run.out / INGEST_SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    if run.store is not None:
        run.store.prune()


def _summary(manifest: Manifest, files: list[str], ledger: Ledger, index_rows: list[dict[str, str]]) -> IngestSummary:
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


def _quiet(phase: str, done: int, total: int) -> None:
    return None


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
    if record.kind == "raster":
        return f"{record.raster.format.upper()} image" if record.raster else "image file"
    return f"{record.kind}: {record.reason}"
