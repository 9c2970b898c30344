"""A progress line for long stages (ingest, preprocess): live on a terminal, every few seconds in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_EVERY_S = 5.0
"""Seconds between lines when the output is a file or a pipe (DVC, CI, nohup)."""

TTY_EVERY_S = 0.2


class Progress:
    """Report ``done / total`` files for each phase of a run.

    Args:
        stream: where to write (default: standard error, so stdout keeps the summary).
        every: seconds between lines on a non-terminal; the last count of a phase is
            always written.
        stage: the stage named at the start of each line.
        unit: what is counted.
    """

    def __init__(self, stream: TextIO | None = None, every: float | None = None, *, stage: str = "ingest",
                 unit: str = "files") -> None:
        self._stage, self._unit = stage, unit
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._every = every if every is not None else (TTY_EVERY_S if self._tty else LOG_EVERY_S)
        self._last = time.monotonic()
        self._started = self._last
        self._open_line = False
        self._said: tuple[str, int, int] | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if (phase, done, total) == self._said or (done < total and now - self._last < self._every):
            return
        self._said = (phase, done, total)
        self._last = now
        rate = done / max(now - self._started, 1e-9)
        text = f"{self._stage}: {phase}: {done}/{total} {self._unit} ({rate:.0f}/s)"
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K" + ("\n" if done >= total else ""))
            self._open_line = done < total
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
        if done >= total:
            self._started = now

    def close(self) -> None:
        """End a live line left open (a run that stopped mid-phase)."""
        if self._open_line:
            self._stream.write("\n")
            self._stream.flush()
            self._open_line = False
