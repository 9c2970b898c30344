from __future__ import annotations

import io

from pipeline.io.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_whole_lines_at_most_every_few_seconds_and_always_the_last() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    for done in range(1, 101):
        progress("headers", done, 100)
    progress("headers", 100, 100)  # said again by a caller: not repeated
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ingest: headers: 100/100 files (")


def test_a_terminal_gets_one_line_rewritten_in_place_and_ended() -> None:
    stream = FakeTerminal()
    progress = Progress(stream, every=0.0)
    progress("volumes", 1, 3)
    progress("volumes", 2, 3)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and "ingest: volumes: 2/3 files" in text and text.endswith("\n")
