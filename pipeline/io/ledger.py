"""The per-file ledger: what happened to every file under the raw folder, and why.

A retrospective study must be able to say, for any file the hospital exported, whether
it is in the analysis and if not, why. The ledger holds exactly one row per file found;
:meth:`Ledger.check_complete` refuses to write one that does not add up.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STATUSES: tuple[str, ...] = ("ingested", "skipped", "quarantined", "not_image", "unreferenced")
"""``ingested``: part of a written volume. ``skipped``: readable but not used (another
series chosen, duplicate, spacing rejected). ``quarantined``: unreadable or broken.
``not_image``: a valid non-image object (SR, RTSTRUCT, DICOMDIR, the manifest).
``unreferenced``: matched by no manifest row."""

COLUMNS: tuple[str, ...] = ("path", "status", "reason", "series_key")


@dataclass
class Entry:
    """One ledger row."""

    path: str
    status: str
    reason: str = ""
    series_key: str = ""


class Ledger:
    """Collects one :class:`Entry` per file; a later decision replaces an earlier one."""

    def __init__(self, files: list[str]) -> None:
        self._files = list(files)
        self._entries: dict[str, Entry] = {}

    def record(self, path: str, status: str, reason: str = "", series_key: str = "") -> None:
        """Set the status of ``path``; it must be one of the files found."""
        if status not in STATUSES:
            raise ValueError(f"ledger status must be one of {list(STATUSES)}; got {status!r}.")
        self._entries[path] = Entry(path, status, reason, series_key)

    def status(self, path: str) -> str | None:
        entry = self._entries.get(path)
        return entry.status if entry else None

    def counts(self) -> dict[str, int]:
        """Files per status, every status present (zeros included), in ledger order."""
        counted = Counter(entry.status for entry in self._entries.values())
        return {status: counted.get(status, 0) for status in STATUSES}

    def check_complete(self) -> None:
        """Raise when a file found has no row or a row names a file not found."""
        missing = [p for p in self._files if p not in self._entries]
        extra = sorted(set(self._entries) - set(self._files))
        if missing or extra:
            raise RuntimeError(
                f"ledger must have one row per file found; {len(missing)} file(s) without a row "
                f"(first: {missing[:3]}), {len(extra)} row(s) for files not found (first: {extra[:3]}). "
                "This is a bug in ingest; please report it."
            )

    def write(self, path: str | Path, redact: Callable[[str], str]) -> None:
        """Write the ledger CSV; paths and reasons pass through ``redact`` (identifiers)."""
        self.check_complete()
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for file in self._files:
                entry = self._entries[file]
                writer.writerow([redact(entry.path), entry.status, redact(entry.reason), entry.series_key])
