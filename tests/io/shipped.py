"""The ingest settings params.yaml ships, for tests that call the io library directly.

The library has no defaults of its own (params.yaml is the one source of them): a test
that means "as shipped" takes the settings from here and overrides only what it is
about, so a changed default in params.yaml is the default the tests exercise.
"""

from __future__ import annotations

import dataclasses
import functools

from pipeline.config import IngestConfig
from tests.params import config


@functools.cache
def _shipped() -> tuple[tuple[str, object], ...]:
    values = dataclasses.asdict(config(IngestConfig))
    del values["pseudonym_key"]  # each test names its own key
    values["workers"] = 1  # params.yaml says auto (every core); a test that wants a pool says so
    return tuple(values.items())


def ingest_settings(**overrides: object) -> dict[str, object]:
    """The keyword arguments of :func:`pipeline.io.ingest.ingest_cohort` after ``pseudonym_key``."""
    settings = dict(_shipped())
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise TypeError(f"overrides must be ingest settings {sorted(settings)}; got {unknown}")
    return {**settings, **overrides}


MAX_VOXELS: int = ingest_settings()["max_voxels"]  # type: ignore[assignment]
"""``ingest.max_voxels`` as shipped."""

MANIFEST_ENCODING: str = ingest_settings()["manifest_encoding"]  # type: ignore[assignment]
"""``ingest.manifest_encoding`` as shipped."""
