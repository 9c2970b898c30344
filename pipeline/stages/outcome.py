"""How every stage ends: its summary line and status 0, or one line on bad input and status 2.

The library raises ``ValueError`` subclasses (``ConfigError``, ``ManifestError``,
``CacheError``, ...), ``FileNotFoundError`` and ``WeightsError`` with messages that name
the thing, the rule, the value and the fix. A traceback would bury that one line under
frames a user cannot act on, so a stage prints ``<stage> failed: <message>`` on stderr
and exits with status 2, which DVC reports as the stage's failure. Other exceptions are
bugs and keep their traceback; ``PIPELINE_TRACEBACK=1`` shows it for input errors too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

TRACEBACK_ENV = "PIPELINE_TRACEBACK"
# Raised by modules only some stages load (torch, Lightning): named here and looked up
# in sys.modules, so that ingest and split do not import torch to catch them. An
# exception of a class whose module was never imported cannot have been raised.
# MisconfigurationException is Lightning's message for a Trainer setting the machine
# cannot honour (devices: 4 with one GPU), as actionable as ours.
_LAZY_ERRORS = (
    ("pipeline.models.weights", "WeightsError"),
    ("lightning_fabric.utilities.exceptions", "MisconfigurationException"),
)


def input_errors() -> tuple[type[BaseException], ...]:
    """Exception classes that mean bad input or settings, not a bug."""
    lazy = tuple(
        getattr(sys.modules[module], name) for module, name in _LAZY_ERRORS if module in sys.modules
    )
    return (ValueError, FileNotFoundError, *lazy)


def run_stage(stage: str, body: Callable[[], str]) -> int:
    """Run ``body`` (which returns the stage's summary line) and return the exit status."""
    try:
        line = body()
    except Exception as error:
        if not isinstance(error, input_errors()) or os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"{stage} failed: {error}", file=sys.stderr)
        return 2
    print(line)
    return 0
