"""One manifest row: its columns, its checks, and the checks across rows.

Every problem is collected as a :class:`RowError` with its CSV line number, never
raised one at a time. Messages name a bad cell by line and column and say what kind of
value it holds (:func:`value_kind`), never its text: the cells are patient ids, birth
dates and folders named after patients, and these messages go to logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.schema.tables import PARTS

LOCATOR_COLUMNS: tuple[str, ...] = ("path", "series_uid", "study_uid")
REQUIRED_COLUMNS: tuple[str, ...] = ("patient_id", "label")

_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|(19|20)\d{6}")


@dataclass(frozen=True)
class RowError:
    """One problem in the manifest: CSV line (1 = header) and what is wrong."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


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


def check_rows(
    records: list[tuple[int, dict[str, str | None]]],
    locators: list[str],
    extras: list[str],
    has_split: bool,
    raw_dir: Path,
) -> tuple[list[ManifestRow], list[RowError]]:
    """The rows that pass every check, and every problem found.

    Checks per row: patient id present, label 0/1, split in train/val/test, at least one
    locator, ``path`` relative and inside ``raw_dir`` and existing; across rows: no
    duplicate locator, one label and one split per patient. A row failing a check
    across rows is left out too.

    Args:
        records: ``(CSV line, cells by column)`` of each data row.
        locators: the locator columns the header has.
        extras: the subgroup columns carried to the index.
        has_split: whether the header has a ``split`` column.
        raw_dir: the folder ``path`` locators are relative to.
    """
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
    return [row for row in rows if row.line not in bad_lines], errors


class _Cells:
    """One CSV record's cells by column name, stripped; and how messages name a column."""

    def __init__(self, record: dict[str, str | None]) -> None:
        self.record = record
        self.position = {name: i + 1 for i, name in enumerate(record) if name is not None}

    def __call__(self, name: str) -> str:
        value = self.record.get(name)
        return value.strip() if isinstance(value, str) else ""

    def where(self, name: str) -> str:
        return f"{name!r} (column {self.position.get(name, '?')})"


def _parse_row(
    line: int,
    record: dict[str, str | None],
    locators: list[str],
    extras: list[str],
    has_split: bool,
    raw_dir: Path,
) -> tuple[ManifestRow | None, list[RowError]]:
    errors: list[RowError] = []
    cell = _Cells(record)
    if None in record:
        errors.append(
            RowError(line, f"row must have as many cells as the header ({len(cell.position)}); got "
                           f"{len(record[None] or [])} more (a comma inside an unquoted cell?).")  # type: ignore[arg-type]
        )
    patient_id = cell("patient_id")
    if not patient_id:
        errors.append(RowError(line, f"{cell.where('patient_id')} must not be empty. Fill it in or delete the row."))
    label_text = cell("label")
    label = {"0": 0, "1": 1}.get(label_text)
    if label is None:
        errors.append(RowError(line, f"{cell.where('label')} must be 0 or 1; got {value_kind(label_text)}."))
    split = cell("split") if has_split else None
    if has_split and split not in PARTS:
        errors.append(RowError(line, f"{cell.where('split')} must be one of {list(PARTS)}; got {value_kind(split or '')}."))
    values = _locator_values(line, cell, locators, raw_dir, errors)
    if errors:
        return None, errors
    row = ManifestRow(
        line=line,
        patient_id=patient_id,
        label=int(label),  # type: ignore[arg-type]
        split=split,
        path=values.get("path"),
        series_uid=values.get("series_uid"),
        study_uid=values.get("study_uid"),
        extras={name: cell(name) for name in extras},
    )
    return row, []


def _locator_values(
    line: int, cell: _Cells, locators: list[str], raw_dir: Path, errors: list[RowError]
) -> dict[str, str | None]:
    """The row's locator cells (``path`` normalised); problems are appended to ``errors``."""
    values = {name: cell(name) or None for name in locators}
    if not any(values.values()):
        errors.append(RowError(line, f"at least one locator among {locators} must be filled; all are empty."))
    if values.get("path") is not None:
        values["path"], path_error = _check_path(values["path"], raw_dir)  # type: ignore[arg-type]
        if path_error:
            errors.append(RowError(line, f"{cell.where('path')} {path_error}"))
    return values


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
