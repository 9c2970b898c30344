"""Small CSV helpers shared by the stages that pass tables along (index, split, cache rows).

The tables are small (one row per series), so plain ``csv`` keeps the dependency list
short and the behaviour explicit: every value stays a string until a reader parses it.

Every CSV the pipeline writes goes through :func:`write_rows`, which neutralises cells a
spreadsheet would run as a formula (see :func:`neutralise`): clinicians open these files
in Excel, and a manifest cell such as ``=cmd|' /C calc'!A0`` must arrive there as text.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from pipeline.errors import PipelineInputError
from pipeline.outputs import atomic_file


class TableError(PipelineInputError):
    """A table a stage reads is missing or lacks a column it needs."""


class TableNotFoundError(TableError, FileNotFoundError):
    """The table is not there: the stage that writes it has not run."""

FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make Excel, LibreOffice or Google Sheets read a cell as a
formula (OWASP "CSV injection"); tab and CR hide such a start behind white space."""


def neutralise(value: object) -> str:
    """``value`` as CSV text that no spreadsheet evaluates.

    A cell starting with one of :data:`FORMULA_STARTS` gets the usual leading apostrophe
    (which spreadsheets show as text, not as a character), unless it parses as a number:
    ``-3.5`` and ``+1e-4`` stay numbers. Applying it twice changes nothing.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    # float() forgives surrounding white space and digit underscores; a spreadsheet does not.
    return text == text.strip() and "_" not in text


def read_rows(path: str | Path, *, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Read a CSV into dicts, checking that ``required`` columns exist.

    Raises:
        TableNotFoundError: when ``path`` does not exist, naming the stage that writes it.
        TableError: when a required column is missing, listing the columns found.
    """
    path = Path(path)
    if not path.is_file():
        raise TableNotFoundError(f"table {str(path)!r} must exist; it was not found. Run the stage that writes it first (dvc repro).")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise TableError(
                f"table {str(path)!r} must have columns {list(required)}; missing {missing}, found {columns}."
            )
        return [dict(row) for row in reader]


def write_rows(path: str | Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> None:
    """Write dicts as CSV with a fixed column order (stable files keep DVC hashes stable).

    Cells pass through :func:`neutralise`. The file is UTF-8; text that cannot be encoded
    (surrogate-escaped bytes of a file name that is not UTF-8) is written as ``\\udcXX``
    escapes instead of failing the stage after its work is done.
    """
    # Written aside and renamed into place: a stage killed mid-write leaves the old file
    # or none, never a truncated table a later stage could take for complete.
    with atomic_file(path) as temp, temp.open("w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
        # csv.writer over lists: DictWriter's per-row key check costs more than the row
        # itself, and the row is rebuilt from ``columns`` here anyway.
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([neutralise(row.get(c, "")) for c in columns])
