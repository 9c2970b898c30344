"""The model folder's stamp: resume an interrupted run of the same fingerprint, else start over."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pipeline.folders import FolderError
from pipeline.training.run_folder import (
    SPEED_ONLY_SETTINGS,
    checkpoint_epoch,
    mark_complete,
    open_run_folder,
    result_fingerprint,
    run_fingerprint,
)

META = {"roi": [24, 24], "counts": {"train": 3}}
CONFIG = {"model": {"arch": "resnet18"}, "train": {"lr": 0.001, "num_workers": 0, "device_cache": "auto",
                                                    "resume": True, "channels_last": False, "compile": False}}


def _stamp(folder) -> dict:
    return json.loads((folder / "fingerprint.json").read_text())


def _interrupted(folder, fingerprint: str) -> None:
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"checkpoint")
    (folder / "fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint, "complete": False}))


def test_speed_settings_leave_the_fingerprint_alone_and_results_do_not():
    base = result_fingerprint(META, CONFIG)
    for key, value in {"num_workers": 4, "device_cache": True, "resume": False, "channels_last": True,
                       "compile": True}.items():
        assert result_fingerprint(META, {**CONFIG, "train": {**CONFIG["train"], key: value}}) == base, key
    assert set(CONFIG["train"]) - {"lr"} == SPEED_ONLY_SETTINGS
    assert result_fingerprint(META, {**CONFIG, "train": {**CONFIG["train"], "lr": 0.002}}) != base
    assert result_fingerprint({**META, "roi": [32, 32]}, CONFIG) != base
    assert run_fingerprint(META, CONFIG) != base  # the speed settings are in the plain hash


def test_an_interrupted_run_of_the_same_fingerprint_resumes_from_last(tmp_path):
    folder = tmp_path / "models"
    _interrupted(folder, "abc")
    assert open_run_folder(folder, "abc", resume=True) == folder / "last.ckpt"
    assert (folder / "last.ckpt").read_bytes() == b"checkpoint"
    assert _stamp(folder) == {"fingerprint": "abc", "complete": False}


def test_another_fingerprint_starts_over_in_an_empty_folder_and_says_so(tmp_path, capsys):
    folder = tmp_path / "models"
    _interrupted(folder, "abc")
    assert open_run_folder(folder, "xyz", resume=True) is None
    assert sorted(p.name for p in folder.iterdir()) == ["fingerprint.json"]
    assert _stamp(folder) == {"fingerprint": "xyz", "complete": False}
    assert "interrupted run of another config or cache; starting over" in capsys.readouterr().out


def test_a_finished_run_or_resume_off_starts_over_quietly(tmp_path, capsys):
    finished = tmp_path / "finished"
    _interrupted(finished, "abc")
    mark_complete(finished, "abc")
    assert _stamp(finished) == {"fingerprint": "abc", "complete": True}
    assert open_run_folder(finished, "abc", resume=True) is None
    assert not (finished / "last.ckpt").exists()
    off = tmp_path / "off"
    _interrupted(off, "abc")
    assert open_run_folder(off, "abc", resume=False) is None
    assert not (off / "last.ckpt").exists()
    assert "starting over" not in capsys.readouterr().out


def test_the_working_directory_is_never_emptied(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FolderError, match="'model_dir' must be a folder of its own"):
        open_run_folder(tmp_path, "abc", resume=False)
    assert os.listdir(tmp_path) == []


def test_the_epoch_is_read_from_the_checkpoint(tmp_path):
    torch.save({"epoch": 4, "state_dict": {"w": torch.zeros(3)}}, tmp_path / "c.ckpt")
    assert checkpoint_epoch(tmp_path / "c.ckpt") == 4
    assert checkpoint_epoch("") == -1
