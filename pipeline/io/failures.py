"""Whose fault a failure is: the file's, which becomes a ledger reason, or the environment's.

A file that cannot be read is quarantined with a one-line reason (:func:`short_error`).
A missing module or an exhausted machine (no file handles, no memory) would fail on every
file: :func:`environment_error` turns it into a :class:`DependencyError` that stops the
stage instead of quarantining the whole cohort.
"""

from __future__ import annotations

import errno
import sys

from pipeline.errors import PipelineInputError

_ENVIRONMENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
"""OS errors that describe the machine (no file handles, no memory), not a file."""


class DependencyError(PipelineInputError):
    """The interpreter running the stage lacks something every file needs (a module)."""


def environment_error(error: BaseException) -> DependencyError | None:
    """The stage-stopping error for ``error`` (or its causes), or None when the file is to blame.

    An ``ImportError`` while reading one file would fail on every file: recording it as
    each file's quarantine reason hides the real problem (a stage run by a Python
    without the project's packages, e.g. ``dvc repro`` without the venv activated).
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ImportError) or (isinstance(seen, OSError) and seen.errno in _ENVIRONMENT_ERRNOS):
            what = f"{type(seen).__name__}: {short_error(seen)}"
            return DependencyError(
                f"ingest must run under the project's Python environment; reading a file failed with {what} "
                f"under the interpreter {sys.executable!r}. This is not the file's fault, so no file was "
                "quarantined. Activate the project's virtual environment (source .venv/bin/activate) or run "
                "'make setup', then re-run (dvc repro)."
            )
        # Only explicit causes (``raise ... from``): a library that tried an optional
        # import and then failed on the file carries the ImportError as mere context.
        seen = seen.__cause__
    return None


def short_error(error: BaseException, path: str = "") -> str:
    """The error's text on one line, at most 160 characters, for a ledger reason.

    ``path`` (the file's full path, which libraries quote in their messages) is replaced
    by ``<file>`` before cutting: a cut path could leave a folder named after a patient.
    """
    text = str(error)
    if path:
        text = text.replace(path, "<file>")
    text = " ".join(text.split())
    return text[:160]
