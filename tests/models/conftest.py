"""Fixtures: a temporary, offline ``TORCH_HOME`` and a way to put checkpoints in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``TORCH_HOME`` whose ``hub/checkpoints`` exists; downloads go nowhere.

    Every proxy variable points at a closed local port, so any download attempt fails at
    once on any machine, with or without internet, and nothing is ever fetched.
    """
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def place_checkpoint(torch_home: Path) -> Callable[..., Path]:
    """Save a state dict (optionally wrapped) under a file name in the temporary hub cache."""

    def place(file_name: str, payload: object) -> Path:
        path = torch_home / "hub" / "checkpoints" / file_name
        torch.save(payload, path)
        return path

    return place
