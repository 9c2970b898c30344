"""How every stage ends: its summary line and status 0, or one line on bad input and status 2.

The library's checks raise ``ValueError`` (``ConfigError``, ``ManifestError``,
``CacheError``, ``WeightsError``, ...) and ``FileNotFoundError`` with messages that name
the thing, the rule, the value and the fix. A traceback would bury that one line under
frames a user cannot act on, so a stage prints ``<stage> failed: <message>`` on stderr
and exits with status 2, which DVC reports as the stage's failure. A ``ValueError`` or
``FileNotFoundError`` that no ``raise`` statement in ``pipeline/`` raised (numpy
broadcasting, ``int("x")``, an error inside a library) is a bug, not a checked input,
and keeps its traceback like any other exception; ``PIPELINE_TRACEBACK=1`` shows it for
input errors too.
"""

from __future__ import annotations

import dis
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import PipelineInputError

TRACEBACK_ENV = "PIPELINE_TRACEBACK"
_PACKAGE = Path(__file__).resolve().parents[1]
# Raised by modules only some stages load (torch, Lightning): named here and looked up
# in sys.modules, so that ingest and split do not import torch to catch them. An
# exception of a class whose module was never imported cannot have been raised.
# MisconfigurationException is Lightning's message for a Trainer setting the machine
# cannot honour (devices: 4 with one GPU), as actionable as ours.
_LAZY_ERRORS = (
    ("lightning_fabric.utilities.exceptions", "MisconfigurationException"),
)


def input_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean bad input or settings wherever they are raised."""
    return tuple(getattr(sys.modules[module], name) for module, name in _LAZY_ERRORS if module in sys.modules)


def raised_by_pipeline(error: BaseException) -> bool:
    """Whether a ``raise`` statement in the ``pipeline`` package raised ``error``.

    The innermost traceback entry must be in ``pipeline/`` and stopped at a raise
    instruction: an error raised inside a C function called from our code (``int("x")``,
    numpy broadcasting) stops at the call instead (CPython 3.10 to 3.13 alike).
    """
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or not Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE):
        return False
    at = next((i.opname for i in dis.get_instructions(tb.tb_frame.f_code) if i.offset == tb.tb_lasti), None)
    return at in ("RAISE_VARARGS", "RERAISE")


def is_input_error(error: BaseException) -> bool:
    if isinstance(error, (PipelineInputError, *input_errors())):
        return True
    return isinstance(error, (ValueError, FileNotFoundError)) and raised_by_pipeline(error)


def run_stage(stage: str, body: Callable[[], str]) -> int:
    """Run ``body`` (which returns the stage's summary line) and return the exit status."""
    try:
        line = body()
    except Exception as error:
        if not is_input_error(error) or os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"{stage} failed: {error}", file=sys.stderr)
        return 2
    print(line)
    return 0
