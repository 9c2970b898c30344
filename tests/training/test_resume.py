"""A killed ``train`` run, re-run, continues from ``last.ckpt`` and says so; a changed
config starts over and says so.

The interruption is real: the run trains in a child process that gets SIGKILL (what an
out-of-memory kill or a preempted job gets, with no chance to clean up). It kills itself
as its fourth epoch starts (``tests/training/interrupted_train.py``), so the moment is the same on
every CPU, and late enough that the best epoch so far need not be the last one: the
case where Lightning's own ``save_last`` left a stale ``last.ckpt``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.training import train_and_predict
from tests.training.interrupted_train import MAX_EPOCHS
from tests.training.tiny_run import COUNTS, logged_val_auc, read_csv, run_paths, tiny_configs, write_cache

KILL_AT_EPOCH = 3
STEPS_PER_EPOCH = -(-COUNTS["train"] // 8)  # batch_size 8, last batch kept
REPO = Path(__file__).resolve().parents[2]


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def uninterrupted(module_tmp):
    """The same run trained in one go: what a resumed run must reproduce."""
    root = module_tmp("uninterrupted")
    write_cache(root)
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)
    train_and_predict(root / "cache", **run_paths(root), model=model, train=train)
    return root


@pytest.fixture(scope="module")
def killed_run(module_tmp):
    """Folder holding a cache and the model dir of a run killed as epoch KILL_AT_EPOCH began."""
    root = module_tmp("killed")
    write_cache(root)
    done = subprocess.run(
        [sys.executable, "-m", "tests.training.interrupted_train", str(root), str(KILL_AT_EPOCH)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == -9, f"the run was not killed (exit {done.returncode}): {done.stderr[-2000:]}"
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


def test_killed_run_is_marked_incomplete_and_its_last_checkpoint_is_its_last_epoch(interrupted):
    paths = run_paths(interrupted)
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is False
    assert not paths["predictions_csv"].exists()
    last = _checkpoint(paths["model_dir"] / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (KILL_AT_EPOCH - 1, KILL_AT_EPOCH * STEPS_PER_EPOCH)


def test_rerun_continues_from_last_checkpoint_and_says_so(interrupted, capsys, caplog):
    root = interrupted
    paths = run_paths(root)
    stopped_at = KILL_AT_EPOCH - 1
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)

    with caplog.at_level(logging.INFO):
        summary = train_and_predict(root / "cache", **paths, model=model, train=train)

    assert summary.resumed_from_epoch == stopped_at
    assert f"resuming from {paths['model_dir'] / 'last.ckpt'} (epoch {stopped_at})" in capsys.readouterr().out
    assert "Restored all states from the checkpoint" in caplog.text
    assert f"resumed from epoch {stopped_at}" in summary.line()
    assert json.loads(paths["summary_json"].read_text())["resumed_from_epoch"] == stopped_at
    final = _checkpoint(paths["model_dir"] / "last.ckpt")
    # no epoch lost, none trained twice
    assert (final["epoch"], final["global_step"]) == (MAX_EPOCHS - 1, MAX_EPOCHS * STEPS_PER_EPOCH)
    # one logged AUC per epoch, and the best of all of them, before and after the kill, is kept
    per_epoch = logged_val_auc(paths["live_dir"])
    assert len(per_epoch) == MAX_EPOCHS
    assert summary.best_val_auc == pytest.approx(max(per_epoch), abs=1e-6)
    assert sorted(p.name for p in paths["model_dir"].glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is True


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(interrupted, uninterrupted):
    model, train = tiny_configs(max_epochs=MAX_EPOCHS)
    train_and_predict(interrupted / "cache", **run_paths(interrupted), model=model, train=train)

    for name in ("last.ckpt", "best.ckpt"):
        resumed = _checkpoint(run_paths(interrupted)["model_dir"] / name)
        reference = _checkpoint(run_paths(uninterrupted)["model_dir"] / name)
        assert (resumed["epoch"], resumed["global_step"]) == (reference["epoch"], reference["global_step"])
        assert resumed["state_dict"].keys() == reference["state_dict"].keys()
        for key, value in reference["state_dict"].items():
            assert torch.equal(resumed["state_dict"][key], value), f"{name}: {key} differs after the resume"
    scores = [[(r["series_key"], r["score"]) for r in read_csv(run_paths(root)["predictions_csv"])]
              for root in (interrupted, uninterrupted)]
    assert scores[0] == scores[1]


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
