from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.cache import CacheWriter, write_meta


def _blob(rng: np.random.Generator, shape: tuple[int, ...], positive: bool) -> np.ndarray:
    """Noise in [0, 1]; positives are brighter overall and carry a bright cube inside.

    Easy on purpose: tests of the training plumbing (labels aligned with images, the
    optimiser stepping, AUC computed on the right samples) must pass in seconds.
    """
    image = rng.normal(0.5 if positive else 0.3, 0.05, shape).astype(np.float32)
    if positive:
        corner = [int(rng.integers(1, s - 4)) for s in shape]
        image[tuple(slice(c, c + 3) for c in corner)] = 0.9
    return np.clip(image, 0, 1)[None]


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """``module_tmp(name)``: a new folder for one module's shared fixtures, removed after the module.

    A module's trained runs and repository copies take up to gigabytes (the e2e repository
    holds two 400 MB checkpoints and their DVC cache copies). Kept to the end of the session,
    as ``tmp_path_factory.mktemp`` keeps them, they add up to more than a CI machine's free
    disk, and every test after that errors. The folders stay when a test of the module
    failed, for the developer to look at (as pytest's ``tmp_path_retention_policy =
    "failed"`` in pyproject.toml keeps a failed test's ``tmp_path``).
    """
    failed_before = request.session.testsfailed
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield make
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tiny_cache(tmp_path):
    """A cache of 3D samples (1, 16, 16, 8): 24 train, 12 val, 12 test, half positive."""
    rng = np.random.default_rng(0)
    roi = (16, 16, 8)
    counts = {"train": 24, "val": 12, "test": 12}
    cache = tmp_path / "cache"
    for part, n in counts.items():
        writer = CacheWriter(cache, part, n, roi, channels=1)
        for i in range(n):
            label = i % 2
            writer.add(_blob(rng, roi, bool(label)),
                       {"patient_id": f"{part}{i // 2}", "series_key": f"{part}-{i}", "label": label,
                        "site": "a" if i < n // 2 else "b"})
        writer.close(("patient_id", "series_key", "label", "site"))
    write_meta(cache, {"spatial_dims": 3, "roi": list(roi), "pixdim": [1, 1, 1], "in_channels": 1, "counts": counts})
    return cache
