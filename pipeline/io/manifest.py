"""Read and validate the cohort manifest, reporting every bad row at once.

The manifest is the researcher's list of what to study: one row per series (or folder,
or study), with ``patient_id``, ``label`` (0/1), at least one locator column (``path``
relative to the raw folder, ``series_uid``, ``study_uid``; several in one row narrow each
other), an optional ``split`` and any number of subgroup columns (``site``, ``sex``...).

Why all errors at once: fixing a 2,000-row spreadsheet one error per run is how people
give up and delete rows by hand. Every problem found is collected as a
:class:`~pipeline.io.manifest_rows.RowError` with its CSV line number (the rows are
checked in :mod:`pipeline.io.manifest_rows`), and :class:`ManifestError` lists them all.
No message quotes a cell; header cells are echoed only when they are column names
ingest knows.

Encodings: UTF-8 with or without a byte-order mark and UTF-16 with one (Excel's "CSV
UTF-8" and "Unicode text") are read as they are; anything else stops with the line of the
first undecodable byte and the fix, unless ``ingest.manifest_encoding`` names the codec.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineInputError
from pipeline.io.deid import TECHNICAL_KEYWORDS, is_identifier_column
from pipeline.io.manifest_rows import LOCATOR_COLUMNS, REQUIRED_COLUMNS, ManifestRow, RowError, check_rows

RESERVED_COLUMNS: tuple[str, ...] = (
    "series_key",
    "image_path",
    "modality",
    "spacing",
    "shape",
    "channels",
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


def read_manifest(path: str | Path, raw_dir: str | Path, *, encoding: str) -> Manifest:
    """Parse and check the manifest; problems are collected, not raised.

    The rows are checked by :func:`pipeline.io.manifest_rows.check_rows`. Locators by UID
    are checked against the files later (:func:`pipeline.io.ingest.ingest_cohort`),
    because that needs the headers.

    Args:
        path: the manifest CSV.
        raw_dir: the folder ``path`` locators are relative to.
        encoding: ``ingest.manifest_encoding``: ``auto`` (UTF-8 with or without BOM,
            UTF-16 or UTF-32 with BOM) or a Python codec name (``cp1252``, ``latin-1``).

    Returns:
        The manifest; call :meth:`Manifest.raise_if_invalid` to stop on errors.

    Raises:
        ManifestError: the file is missing, empty, not decodable, not parseable as CSV or
            lacks required columns (no row can be checked without them).
    """
    source = Path(path)
    if not source.is_file():
        raise ManifestError(source, [RowError(0, f"manifest file must exist; got {str(source)!r}. Check the path.")])
    columns, records = _read_records(source, _decode(source, encoding))
    locators = [c for c in LOCATOR_COLUMNS if c in columns]
    extras = [c for c in columns if c not in REQUIRED_COLUMNS + LOCATOR_COLUMNS + ("split",)]
    dropped = tuple(c for c in extras if is_identifier_column(c))
    extras = [c for c in extras if c not in dropped]
    has_split = "split" in columns
    rows, errors = check_rows(records, locators, extras, has_split, Path(raw_dir))
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
