"""How every command ends: its summary line and status 0, or one line on bad input and status 2.

The stages, ``predict`` and ``export`` all end here. The library's checks raise
subclasses of :class:`~pipeline.errors.PipelineInputError` whose messages name the thing,
the rule, the value and the fix; a traceback would bury that one line under frames a
user cannot act on, so the command prints ``<command> failed: <message>`` on stderr and
exits with status 2, which DVC reports as the stage's failure. Every other exception is
a bug (numpy broadcasting, a ``KeyError`` in our code, an error inside a library) and
keeps its traceback. ``PIPELINE_TRACEBACK=1`` shows the traceback of input errors too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pipeline.errors import PipelineInputError

TRACEBACK_ENV = "PIPELINE_TRACEBACK"


def run_stage(stage: str, body: Callable[[], str]) -> int:
    """Run ``body`` (which returns the command's summary line) and return the exit status."""
    try:
        line = body()
    except PipelineInputError as error:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"{stage} failed: {error}", file=sys.stderr)
        return 2
    print(line)
    return 0
