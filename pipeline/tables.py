"""Small CSV helpers shared by the stages that pass tables along (index, split, cache rows).

The tables are small (one row per series), so plain ``csv`` keeps the dependency list
short and the behaviour explicit: every value stays a string until a reader parses it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping, Sequence


def read_rows(path: str | Path, *, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Read a CSV into dicts, checking that ``required`` columns exist.

    Raises:
        FileNotFoundError: when ``path`` does not exist, naming the stage that writes it.
        ValueError: when a required column is missing, listing the columns found.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {str(path)!r} must exist; it was not found. Run the stage that writes it first (dvc repro).")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(
                f"table {str(path)!r} must have columns {list(required)}; missing {missing}, found {columns}."
            )
        return [dict(row) for row in reader]


def write_rows(path: str | Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> None:
    """Write dicts as CSV with a fixed column order (stable files keep DVC hashes stable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
