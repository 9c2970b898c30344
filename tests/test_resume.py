"""A killed ``train`` stage, re-run, continues from ``last.ckpt`` and says so; a changed
config starts over and says so.

The interruption is real: the stage runs as ``python -m pipeline.stages.train`` in a
child process and gets SIGKILL (what an out-of-memory kill or a preempted job gets, with
no chance to clean up) once its first ``last.ckpt`` is on disk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.training import train_and_predict
from tests.test_training import COUNTS, logged_val_auc, run_paths, tiny_configs, write_cache

MAX_EPOCHS = 5
STEPS_PER_EPOCH = COUNTS["train"] // 8  # batch_size 8
REPO = Path(__file__).resolve().parents[1]


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 240.0) -> None:
    """Return as soon as ``path`` exists; Lightning writes checkpoints atomically."""
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"the train stage ended (exit {proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """Folder holding a cache and the model dir of a train stage killed after an epoch."""
    root = tmp_path_factory.mktemp("killed")
    cache = write_cache(root)
    paths = run_paths(root)
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)
    params = {
        "base": {"seed": train.seed},
        "model": {"arch": model.arch, "weights": model.weights},
        "train": {k: getattr(train, k) for k in ("max_epochs", "batch_size", "lr", "accelerator", "devices", "precision")},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "pipeline.stages.train", str(cache), *(str(paths[k]) for k in
               ("model_dir", "predictions_csv", "summary_json", "live_dir")), "--params", str(root / "params.yaml")]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_for(paths["model_dir"] / "last.ckpt", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    shutil.copytree(root, root.with_name(root.name + "-pristine"))
    return root


@pytest.fixture
def interrupted(killed_run):
    """The killed run's folder, restored in place before each test.

    In place, because Lightning restores the checkpoint callback's record of the best
    epoch only when the checkpoint folder is the one it was written from.
    """
    shutil.rmtree(killed_run)
    shutil.copytree(killed_run.with_name(killed_run.name + "-pristine"), killed_run)
    return killed_run


def test_killed_run_is_marked_incomplete(interrupted):
    paths = run_paths(interrupted)
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is False
    assert not paths["predictions_csv"].exists()


def test_rerun_continues_from_last_checkpoint_and_says_so(interrupted, capsys, caplog):
    root = interrupted
    paths = run_paths(root)
    stopped_at = torch.load(paths["model_dir"] / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)

    with caplog.at_level(logging.INFO):
        summary = train_and_predict(root / "cache", **paths, model=model, train=train)

    assert summary.resumed_from_epoch == stopped_at
    assert f"resuming from {paths['model_dir'] / 'last.ckpt'} (epoch {stopped_at})" in capsys.readouterr().out
    assert "Restored all states from the checkpoint" in caplog.text
    assert f"resumed from epoch {stopped_at}" in summary.line()
    assert json.loads(paths["summary_json"].read_text())["resumed_from_epoch"] == stopped_at
    final = torch.load(paths["model_dir"] / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == MAX_EPOCHS * STEPS_PER_EPOCH  # no epoch trained twice
    # the epochs done before the kill are not trained again: one logged AUC per epoch,
    # and the best of all of them, before and after the kill, is the one kept
    per_epoch = logged_val_auc(paths["live_dir"])
    assert len(per_epoch) == MAX_EPOCHS
    assert summary.best_val_auc == pytest.approx(max(per_epoch), abs=1e-6)
    assert sorted(p.name for p in paths["model_dir"].glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is True


def test_changed_config_starts_over_and_says_so(interrupted, capsys, caplog):
    root = interrupted
    paths = run_paths(root)
    model, train = tiny_configs(max_epochs=2, lr=2e-3)

    with caplog.at_level(logging.INFO):
        summary = train_and_predict(root / "cache", **paths, model=model, train=train)

    assert summary.resumed_from_epoch is None
    out = capsys.readouterr().out
    assert "interrupted run of another config or cache; starting over" in out and "resuming" not in out
    assert "Restored all states" not in caplog.text
    assert torch.load(paths["model_dir"] / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == (
        2 * STEPS_PER_EPOCH
    )
    assert len(logged_val_auc(paths["live_dir"])) == 2
