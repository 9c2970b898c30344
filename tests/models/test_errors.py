"""The weights errors are input errors: a stage shows their message, not a traceback."""

from __future__ import annotations

from pipeline.errors import PipelineInputError
from pipeline.models import WeightsError, WeightsNotFoundError


def test_weights_errors_derive_from_the_one_input_error_base():
    assert issubclass(WeightsError, PipelineInputError)
    assert issubclass(WeightsNotFoundError, WeightsError)
    assert issubclass(WeightsNotFoundError, FileNotFoundError)  # callers catching a missing file keep working
