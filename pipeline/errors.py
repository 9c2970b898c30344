"""The one base class of the pipeline's checked input errors.

A stage that fails because of its input (a manifest row, a params key, a file on disk, a
weights checkpoint) raises a subclass of :class:`PipelineInputError` whose message names
the thing, the rule, the value received and the fix. The stage edge
(``pipeline.cli``) prints that message as one line and exits with status 2;
any other exception is a bug and keeps its traceback.

It derives from ``ValueError`` (scikit-learn's ``InvalidParameterError`` does the same) so
that callers who already catch ``ValueError`` keep working. This module imports nothing:
every part of the pipeline, torch-free or not, may import it.
"""

from __future__ import annotations


class PipelineInputError(ValueError):
    """Bad input or settings, stated so a user can fix it; never a bug in the pipeline."""


class ConfigError(PipelineInputError):
    """A setting breaks a rule (a ``params.yaml`` value or a library argument); the message
    names the key, the rule, the value and the fix."""
