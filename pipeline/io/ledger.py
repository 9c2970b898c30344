"""The per-file ledger: what happened to every file under the raw folder, and why.

A retrospective study must be able to say, for any file the hospital exported, whether
it is in the analysis and if not, why. The ledger holds exactly one row per file found;
:meth:`Ledger.check_complete` refuses to write one that does not add up.

Paths are written as keyed tokens (:func:`pipeline.io.deid.path_token`), whatever the
row's status: a folder named after a patient must not reach the ledger even when no
header was read. On the machine holding the raw folder and the key, the tokens map back::

    python -m pipeline.io.ledger RAW_DIR [--params params.yaml] [TOKEN_PATH ...]

prints ``token<TAB>path`` for every file (or only the tokens asked for) to the terminal;
nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.io.deid import path_token, resolve_file_refs
from pipeline.schema.tables import LEDGER_COLUMNS, LEDGER_STATUSES
from pipeline.tables import write_rows


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
        if status not in LEDGER_STATUSES:
            raise ValueError(f"ledger status must be one of {list(LEDGER_STATUSES)}; got {status!r}.")
        self._entries[path] = Entry(path, status, reason, series_key)

    def status(self, path: str) -> str | None:
        entry = self._entries.get(path)
        return entry.status if entry else None

    def counts(self) -> dict[str, int]:
        """Files per status, every status present (zeros included), in ledger order."""
        counted = Counter(entry.status for entry in self._entries.values())
        return {status: counted.get(status, 0) for status in LEDGER_STATUSES}

    def check_complete(self) -> None:
        """Raise when a file found has no row or a row names a file not found."""
        missing = [p for p in self._files if p not in self._entries]
        extra = sorted(set(self._entries) - set(self._files))
        if missing or extra:
            # Counts only: the paths themselves may name a patient.
            raise RuntimeError(
                f"ledger must have one row per file found; {len(missing)} file(s) without a row, "
                f"{len(extra)} row(s) for files not found. This is a bug in ingest; please report it."
            )

    def write(self, path: str | Path, redact: Callable[[str], str], tokenise: Callable[[str], str]) -> None:
        """Write the ledger CSV with every path tokenised and every reason redacted.

        Args:
            path: the CSV to write.
            redact: replaces identifier values inside reasons.
            tokenise: the written form of a raw-folder path (:func:`path_token` with the
                run's key); also applied to the paths a reason names with ``file_ref``
                and to the row's own path where an error message quotes it.
        """
        self.check_complete()
        rows = []
        for file in self._files:
            entry = self._entries[file]
            token = tokenise(entry.path)
            reason = resolve_file_refs(entry.reason, tokenise).replace(entry.path, token) if entry.reason else ""
            rows.append({"path": token, "status": entry.status, "reason": redact(reason), "series_key": entry.series_key})
        write_rows(path, rows, LEDGER_COLUMNS)


def locate(raw_dir: str | Path, key: str, tokens: list[str] | None = None) -> list[tuple[str, str]]:
    """``(token path, real path)`` for the files under ``raw_dir`` (only ``tokens`` when given)."""
    from pipeline.io.tree import walk

    wanted = set(tokens or [])
    pairs = [(path_token(key, rel), rel) for rel in walk(raw_dir)]
    return [pair for pair in pairs if not wanted or pair[0] in wanted]


def main(argv: list[str] | None = None) -> int:
    """Print the real path of ledger tokens, on the machine that holds the raw folder."""
    from pipeline.config import IngestConfig, load_params

    parser = argparse.ArgumentParser(prog="python -m pipeline.io.ledger", description=main.__doc__)
    parser.add_argument("raw_dir", help="the raw folder ingest read")
    parser.add_argument("tokens", nargs="*", help="ledger paths to look up (default: all files)")
    parser.add_argument("--params", default="params.yaml", help="params file with the pseudonym key")
    args = parser.parse_args(argv)
    key = IngestConfig.from_params(load_params(args.params)).pseudonym_key
    for token, real in locate(args.raw_dir, key, args.tokens):
        print(f"{token}\t{real}".encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
