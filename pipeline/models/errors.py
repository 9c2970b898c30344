"""The checked errors of weights handling: a checkpoint that cannot be found or used.

Both derive from :class:`pipeline.errors.PipelineInputError`: they are about the user's
file or machine (wrong checksum, wrong layout, offline), so a stage shows their message
as one line, not a traceback.
"""

from __future__ import annotations

from pipeline.errors import PipelineInputError


class WeightsError(PipelineInputError):
    """A checkpoint cannot be used: wrong checksum, wrong keys or shapes, wrong layout."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A named checkpoint is neither at hand nor downloadable; the message says how to get it."""
