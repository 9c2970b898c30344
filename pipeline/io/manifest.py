"""Read and validate the cohort manifest, reporting every bad row at once.

The manifest is the researcher's list of what to study: one row per series (or folder,
or study), with ``patient_id``, ``label`` (0/1), at least one locator column (``path``
relative to the raw folder, ``series_uid``, ``study_uid``; several in one row narrow each
other), an optional ``split`` and any number of subgroup columns (``site``, ``sex``...).

Why all errors at once: fixing a 2,000-row spreadsheet one error per run is how people
give up and delete rows by hand. Every problem found is collected as a
:class:`RowError` with its CSV line number, and :class:`ManifestError` lists them all.

Messages name a bad cell by line and column and say what kind of value it holds (an
empty cell, a number of 9 digits, a date-like value...), never its text: the cells are
patient ids, birth dates and folders named after patients, and these messages go to
logs. Header cells are echoed only when they are column names ingest knows.

Encodings: UTF-8 with or without a byte-order mark and UTF-16 with one (Excel's "CSV
UTF-8" and "Unicode text") are read as they are; anything else stops with the line of the
first undecodable byte and the fix, unless ``ingest.manifest_encoding`` names the codec.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.errors import PipelineInputError
from pipeline.io.deid import TECHNICAL_KEYWORDS, is_identifier_column

LOCATOR_COLUMNS: tuple[str, ...] = ("path", "series_uid", "study_uid")
REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "label")
SPLITS: tuple[str, ...] = ("train", "val", "test")
RESERVED_COLUMNS: tuple[str, ...] = (
    "series_key",
    "image_path",
    "modality",
    "spacing",
    "shape",
    *TECHNICAL_KEYWORDS,
    "transfer_syntax",
    "source_format",
    "n_source_files",
    "ingest_note",
)
"""Index columns written by ingest, in index order after the patient columns; a manifest
column of the same name would be ambiguous, so read_manifest refuses it."""

AUTO_ENCODING = "auto"
"""``ingest.manifest_encoding`` value that reads UTF-8 (BOM or not) and UTF-16 (BOM)."""

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
"""Byte-order marks, UTF-32 first: its little-endian mark starts with UTF-16's."""

_KNOWN_COLUMNS = frozenset(("split", *REQUIRED_COLUMNS, *LOCATOR_COLUMNS, *RESERVED_COLUMNS))
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|(19|20)\d{6}")


@dataclass(frozen=True)
class RowError:
    """One problem in the manifest: CSV line (1 = header) and what is wrong."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ManifestError(PipelineInputError):
    """The manifest breaks one or more rules; the message lists every bad row."""

    def __init__(self, manifest: str | Path, errors: list[RowError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line, e.message))
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(
            f"manifest {str(manifest)!r} must have one valid row per series; found {len(self.errors)} "
            f"problem(s):\n{lines}\nFix these rows (line numbers count the header as line 1) and re-run."
        )


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row.

    Attributes:
        line: CSV line number (header is 1), used in every message about this row.
        patient_id: the hospital's identifier; never written, only hashed.
        label: 0 or 1.
        split: ``train``, ``val``, ``test`` or ``None`` when the manifest has no split.
        path: locator relative to the raw folder (POSIX form), or ``None``.
        series_uid: SeriesInstanceUID locator, or ``None``.
        study_uid: StudyInstanceUID locator, or ``None``.
        extras: subgroup attributes, column -> value, in manifest column order.
    """

    line: int
    patient_id: str
    label: int
    split: str | None
    path: str | None
    series_uid: str | None
    study_uid: str | None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def locator(self) -> tuple[str | None, str | None, str | None]:
        return (self.path, self.series_uid, self.study_uid)

    def describe(self) -> str:
        """The locator columns this row fills, for messages; never their values."""
        return ", ".join(name for name, value in zip(LOCATOR_COLUMNS, self.locator) if value is not None)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest.

    Attributes:
        source: the manifest file.
        rows: rows that passed the per-row checks.
        has_split: whether a ``split`` column exists.
        extra_columns: subgroup columns carried to the index, in manifest order.
        dropped_columns: columns left out of the index because their names look like
            identifiers (``birth_date``, ``accession``...); reported, never silent.
        errors: every problem found; empty for a valid manifest.
    """

    source: Path
    rows: tuple[ManifestRow, ...]
    has_split: bool
    extra_columns: tuple[str, ...]
    dropped_columns: tuple[str, ...]
    errors: tuple[RowError, ...]

    def raise_if_invalid(self, more: list[RowError] | None = None) -> None:
        """Raise one :class:`ManifestError` listing these errors plus ``more``."""
        errors = list(self.errors) + list(more or [])
        if errors:
            raise ManifestError(self.source, errors)


def read_manifest(path: str | Path, raw_dir: str | Path, encoding: str = AUTO_ENCODING) -> Manifest:
    """Parse and check the manifest; problems are collected, not raised.

    Checks per row: patient id present, label 0/1, split in train/val/test, at least one
    locator, ``path`` relative and inside ``raw_dir`` and existing, no duplicate locator,
    one label and one split per patient. Locators by UID are checked against the files
    later (:func:`pipeline.io.ingest.ingest_cohort`), because that needs the headers.

    Args:
        path: the manifest CSV.
        raw_dir: the folder ``path`` locators are relative to.
        encoding: ``auto`` (UTF-8 with or without BOM, UTF-16 or UTF-32 with BOM) or
            a Python codec name (``cp1252``, ``latin-1``) for other exports.

    Returns:
        The manifest; call :meth:`Manifest.raise_if_invalid` to stop on errors.

    Raises:
        ManifestError: the file is missing, empty, not decodable, not parseable as CSV or
            lacks required columns (no row can be checked without them).
    """
    source = Path(path)
    raw_dir = Path(raw_dir)
    if not source.is_file():
        raise ManifestError(source, [RowError(0, f"manifest file must exist; got {str(source)!r}. Check the path.")])
    columns, records = _read_records(source, _decode(source, encoding))
    locators = [c for c in LOCATOR_COLUMNS if c in columns]
    extras = [c for c in columns if c not in REQUIRED_COLUMNS + LOCATOR_COLUMNS + ("split",)]
    dropped = tuple(c for c in extras if is_identifier_column(c))
    extras = [c for c in extras if c not in dropped]
    has_split = "split" in columns

    rows: list[ManifestRow] = []
    errors: list[RowError] = []
    for line, record in records:
        row, row_errors = _parse_row(line, record, locators, extras, has_split, raw_dir)
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    if not records:
        errors.append(RowError(0, "manifest must have at least one data row; got only the header."))
    across = _check_across_rows(rows)
    errors.extend(across)
    bad_lines = {error.line for error in across}
    rows = [row for row in rows if row.line not in bad_lines]
    return Manifest(
        source=source,
        rows=tuple(rows),
        has_split=has_split,
        extra_columns=tuple(extras),
        dropped_columns=dropped,
        errors=tuple(errors),
    )


def _decode(source: Path, encoding: str) -> str:
    """The manifest's text: BOM-marked Unicode or UTF-8 when ``auto``, else ``encoding``."""
    data = source.read_bytes()
    if encoding != AUTO_ENCODING:
        codec = encoding
    else:
        codec = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        hint = (
            "It looks like UTF-16 without a byte-order mark. " if data[:200].count(b"\x00") > 10 else ""
        )
        fix = (
            "Save it from Excel as 'CSV UTF-8 (comma delimited)', or set ingest.manifest_encoding to its "
            "encoding (e.g. cp1252 or latin-1 for older Windows exports)."
        )
        raise ManifestError(
            source,
            [RowError(line, f"the manifest must be {codec if encoding != AUTO_ENCODING else 'UTF-8 (with or without BOM) or UTF-16 with BOM'}; "
                            f"byte {error.start + 1} is not valid {codec}. {hint}{fix}")],
        ) from None


def _read_records(source: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, str | None]]]]:
    """Header and ``(line, record)`` pairs; a CSV syntax error names its line only."""
    _allow_large_cells()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = []
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
        header_errors = _check_columns(columns)
        if header_errors:
            raise ManifestError(source, header_errors)
        reader.fieldnames = columns
        start = reader.line_num + 1
        for record in reader:
            records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as error:
        # csv's messages describe the syntax ("line contains NUL"), never a cell's text.
        raise ManifestError(
            source, [RowError(reader.line_num or 1, f"the manifest must be a comma-separated CSV file; {error}.")]
        ) from None
    return columns, records


def _allow_large_cells() -> None:
    """Lift csv's 131,072-character cell limit: a long free-text cell is not an error."""
    limit = 2**31 - 1
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _column_words(columns: list[str]) -> str:
    """The header, echoing only names ingest knows: a header row that is really a data
    row (the header line was deleted) would otherwise print a patient's cells."""
    known = [c for c in columns if c in _KNOWN_COLUMNS]
    others = [str(i + 1) for i, c in enumerate(columns) if c not in _KNOWN_COLUMNS]
    words = f"known columns {known}"
    return words + (f" and other columns at position(s) {', '.join(others)} (names not shown)" if others else "")


def value_kind(text: str) -> str:
    """What kind of value a cell holds, in words, without its text."""
    text = text.strip()
    if not text:
        return "an empty cell"
    if text.isdigit():
        return f"a number of {len(text)} digit(s)"
    if _DATE_LIKE.fullmatch(text):
        return "a date-like value"
    try:
        float(text)
        return "a decimal number"
    except ValueError:
        pass
    if text.isalpha():
        return f"a word of {len(text)} letters"
    return f"a {len(text)}-character value"


def _check_columns(columns: list[str]) -> list[RowError]:
    errors = []
    if not columns:
        return [RowError(1, "manifest must start with a header row; got an empty file. Columns: patient_id,label,path")]
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            errors.append(RowError(1, f"column {name!r} must be present; got {_column_words(columns)}."))
    if not any(c in columns for c in LOCATOR_COLUMNS):
        errors.append(
            RowError(1, f"one locator column among {list(LOCATOR_COLUMNS)} must be present; got {_column_words(columns)}.")
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        shown = [c for c in duplicated if c in _KNOWN_COLUMNS]
        errors.append(
            RowError(1, f"column names must be unique; got {len(duplicated)} name(s) more than once"
                        + (f", among them {shown}." if shown else "."))
        )
    reserved = [c for c in columns if c in RESERVED_COLUMNS]
    if reserved:
        errors.append(
            RowError(1, f"columns {reserved} are written by ingest and must not be in the manifest. Rename them.")
        )
    if "" in columns:
        errors.append(RowError(1, "every column must have a name; got an empty header cell. Name or delete it."))
    return errors


def _parse_row(
    line: int,
    record: dict[str, str | None],
    locators: list[str],
    extras: list[str],
    has_split: bool,
    raw_dir: Path,
) -> tuple[ManifestRow | None, list[RowError]]:
    errors: list[RowError] = []
    position = {name: i + 1 for i, name in enumerate(record) if name is not None}

    def cell(name: str) -> str:
        value = record.get(name)
        return value.strip() if isinstance(value, str) else ""

    def where(name: str) -> str:
        return f"{name!r} (column {position.get(name, '?')})"

    if None in record:
        errors.append(
            RowError(line, f"row must have as many cells as the header ({len(position)}); got "
                           f"{len(record[None] or [])} more (a comma inside an unquoted cell?).")  # type: ignore[arg-type]
        )
    patient_id = cell("patient_id")
    if not patient_id:
        errors.append(RowError(line, f"{where('patient_id')} must not be empty. Fill it in or delete the row."))
    label_text = cell("label")
    label = {"0": 0, "1": 1}.get(label_text)
    if label is None:
        errors.append(RowError(line, f"{where('label')} must be 0 or 1; got {value_kind(label_text)}."))
    split = cell("split") if has_split else None
    if has_split and split not in SPLITS:
        errors.append(RowError(line, f"{where('split')} must be one of {list(SPLITS)}; got {value_kind(split or '')}."))
    values = {name: cell(name) or None for name in locators}
    if not any(values.values()):
        errors.append(RowError(line, f"at least one locator among {locators} must be filled; all are empty."))
    rel_path = values.get("path")
    if rel_path is not None:
        rel_path, path_error = _check_path(rel_path, raw_dir)
        if path_error:
            errors.append(RowError(line, f"{where('path')} {path_error}"))
    if errors:
        return None, errors
    row = ManifestRow(
        line=line,
        patient_id=patient_id,
        label=int(label),  # type: ignore[arg-type]
        split=split,
        path=rel_path,
        series_uid=values.get("series_uid"),
        study_uid=values.get("study_uid"),
        extras={name: cell(name) for name in extras},
    )
    return row, []


def _check_path(text: str, raw_dir: Path) -> tuple[str, str | None]:
    """Normalise a ``path`` locator to POSIX form and check it stays inside ``raw_dir``.

    The error (completed by the caller with the column) never quotes the path: folder
    names are often patient names.
    """
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        kind = "an absolute path" if posix.is_absolute() else "a path with a '..' part"
        return text, f"must be relative to the raw folder and stay inside it; got {kind}."
    normal = posix.as_posix()
    normal = "" if normal == "." else normal
    if not (raw_dir / normal).exists():
        return normal, (
            f"must name a file or folder under {str(raw_dir)!r}; got a path of {len(posix.parts)} part(s) that "
            "does not exist there. Check its spelling against the folder."
        )
    return normal, None


def _check_across_rows(rows: list[ManifestRow]) -> list[RowError]:
    errors: list[RowError] = []
    first_line: dict[tuple[str | None, str | None, str | None], int] = {}
    for row in rows:
        if row.locator in first_line:
            errors.append(
                RowError(row.line, f"locator ({row.describe()}) must be unique; it repeats line {first_line[row.locator]}.")
            )
        else:
            first_line[row.locator] = row.line
    by_patient: dict[str, list[ManifestRow]] = {}
    for row in rows:
        by_patient.setdefault(row.patient_id, []).append(row)
    for patient_rows in by_patient.values():
        first = patient_rows[0]
        for row in patient_rows[1:]:
            if row.label != first.label:
                errors.append(
                    RowError(row.line, f"'label' must be the same for all rows of a patient; got {row.label}, "
                             f"but line {first.line} of the same patient has {first.label}.")
                )
            if row.split != first.split:
                errors.append(
                    RowError(row.line, f"'split' must be the same for all rows of a patient; got {row.split!r}, "
                             f"but line {first.line} of the same patient has {first.split!r}.")
                )
    return errors
