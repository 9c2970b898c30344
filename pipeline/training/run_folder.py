"""The model folder of a run: what it was trained on, and whether a re-run may resume it.

``MODEL_DIR/fingerprint.json`` holds a hash of the configuration and the cache's meta
(:func:`run_fingerprint`) and whether the run completed. A re-run of an interrupted run
with the same fingerprint continues from ``last.ckpt``; any other run starts over in an
emptied folder. This module reads and writes that stamp and nothing else of the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.folders import empty_folder
from pipeline.outputs import write_atomic

FINGERPRINT_FILE = "fingerprint.json"
LAST_CHECKPOINT = "last.ckpt"
#: Settings that change how fast a run goes, not its result: a resume across them is valid.
SPEED_ONLY_SETTINGS = frozenset({"resume", "num_workers", "device_cache", "channels_last", "compile"})


def run_fingerprint(meta: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """Hash of the config and the cache's meta: a resume is only valid on the same run."""
    payload = json.dumps({"config": config, "cache": meta}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def result_fingerprint(meta: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """:func:`run_fingerprint` of ``config`` without the :data:`SPEED_ONLY_SETTINGS` of its ``train`` part."""
    train = {k: v for k, v in config["train"].items() if k not in SPEED_ONLY_SETTINGS}
    return run_fingerprint(meta, {**config, "train": train})


def resumable_checkpoint(model_dir: Path, fingerprint: str) -> Path | None:
    """``last.ckpt`` from an interrupted run of the same config and data, else None.

    A finished run marks its fingerprint file ``complete``; a run with another
    fingerprint (changed lr, new data) must start over, so its files are removed.
    """
    stamp = model_dir / FINGERPRINT_FILE
    last = model_dir / LAST_CHECKPOINT
    if stamp.is_file() and last.is_file():
        recorded = json.loads(stamp.read_text())
        if recorded.get("fingerprint") == fingerprint and not recorded.get("complete"):
            return last
        if not recorded.get("complete"):
            print(f"train: {str(last)!r} is from an interrupted run of another config or cache; starting over")
    empty_folder(model_dir, name="model_dir", example="models")
    return None


def open_run_folder(model_dir: Path, fingerprint: str, *, resume: bool) -> Path | None:
    """Make ``model_dir`` ready for a run and stamp it incomplete; returns the checkpoint to resume, if any.

    With ``resume`` an interrupted run of the same fingerprint is continued
    (:func:`resumable_checkpoint`); otherwise, or when there is none, the folder is emptied.
    """
    ckpt_path = resumable_checkpoint(model_dir, fingerprint) if resume else None
    if not resume:
        empty_folder(model_dir, name="model_dir", example="models")
    model_dir.mkdir(parents=True, exist_ok=True)
    _stamp(model_dir, fingerprint, complete=False)
    return ckpt_path


def mark_complete(model_dir: Path, fingerprint: str) -> None:
    """Stamp the run finished: a re-run with the same fingerprint then starts over."""
    _stamp(model_dir, fingerprint, complete=True)


def _stamp(model_dir: Path, fingerprint: str, *, complete: bool) -> None:
    write_atomic(model_dir / FINGERPRINT_FILE, json.dumps({"fingerprint": fingerprint, "complete": complete}) + "\n")


def checkpoint_epoch(path: str | Path) -> int:
    """Epoch stored in a Lightning checkpoint (our own file, written by this stage); -1 for none."""
    if not path:
        return -1
    # Memory-mapped: only the small 'epoch' entry is read, not the weights and optimiser state.
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
