"""The model file: everything to rebuild the model is inside it, and an altered file is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.modelfile import FORMAT_VERSION, KEY, ModelFileError, read_model_file, seal
from tests.trained_runs import SETTINGS, trained_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(runs):
    return torch.load(runs[2].model, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_file_records_network_weights_and_preprocess(runs, spatial_dims):
    meta = read_model_file(runs[spatial_dims].model).meta
    assert meta["format_version"] == FORMAT_VERSION
    network = meta["network"]
    assert (network["arch"], network["spatial_dims"], network["in_channels"], network["num_classes"]) == (
        "resnet18", spatial_dims, 1, 1)
    assert meta["weights"]["source"] == "none" and meta["normalization"] is None
    pre = meta["preprocess"]
    assert pre["spatial_dims"] == spatial_dims and pre["dtype"] == "float16"
    assert tuple(pre["roi"]) == SETTINGS[spatial_dims]["roi"] and tuple(pre["pixdim"]) == SETTINGS[spatial_dims]["pixdim"]
    assert pre["hu_window"] == [-1000.0, 400.0]
    # preprocess records its transforms and intensity mode per modality (the demo is CT)
    assert ("LargestAxialSliced" if spatial_dims == 2 else "Orientationd") in pre["transforms"]["CT"]
    assert pre["intensity"] == {"CT": "ct_window"} and pre["intensity_setting"] == "auto"
    assert "counts" not in pre  # the cohort's counts describe the data, not how to prepare an image


def test_a_new_process_with_only_the_checkpoint_rebuilds_the_model(runs, tmp_path):
    from pipeline import load_classifier

    run = runs[3]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run.model, alone / "model.ckpt")
    nifti = next(run.raw_dir.rglob("*.nii.gz"))
    script = (
        "import sys, pipeline\n"
        "clf = pipeline.load_classifier('model.ckpt', threshold=0.5, device='cpu')\n"
        "r = clf(sys.argv[1])\n"
        "print(repr(r.score), r.positive, repr(r.reason))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_PSEUDONYM_KEY", None)
    done = subprocess.run([sys.executable, "-c", script, str(nifti)], cwd=alone, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    score, positive, reason = done.stdout.split()
    assert reason == "''"
    here = load_classifier(run.model, threshold=0.5)(nifti)
    assert abs(float(score) - here.score) < 1e-6 and positive == str(here.positive)
    assert sorted(p.name for p in alone.iterdir()) == ["model.ckpt"]


def _write(checkpoint: dict, path: Path, *, reseal: bool = False) -> Path:
    if reseal:
        checkpoint = {**checkpoint, KEY: seal(checkpoint[KEY], checkpoint["state_dict"])}
    torch.save(checkpoint, path)
    return path


def test_altered_metadata_is_refused(checkpoint, tmp_path):
    meta = {**checkpoint[KEY], "preprocess": {**checkpoint[KEY]["preprocess"], "hu_window": [-100.0, 100.0]}}
    path = _write({**checkpoint, KEY: meta}, tmp_path / "m.ckpt")
    with pytest.raises(ModelFileError, match=r"'m.ckpt' must hold the metadata and weights that train sealed.*altered"):
        read_model_file(path)


def test_altered_weights_are_refused(checkpoint, tmp_path):
    state = dict(checkpoint["state_dict"])
    name = next(k for k in state if k.endswith("fc.weight"))
    state[name] = state[name] + 1e-3
    path = _write({**checkpoint, "state_dict": state}, tmp_path / "w.ckpt")
    with pytest.raises(ModelFileError, match=r"altered after training"):
        read_model_file(path)


def test_another_format_version_is_refused(checkpoint, tmp_path):
    path = _write({**checkpoint, KEY: {**checkpoint[KEY], "format_version": 99}}, tmp_path / "v.ckpt", reseal=True)
    with pytest.raises(ModelFileError, match=r"must be format 'medimg-classifier' version 1; got .* version 99"):
        read_model_file(path)


def test_a_missing_key_is_named(checkpoint, tmp_path):
    meta = {k: v for k, v in checkpoint[KEY].items() if k != "normalization"}
    path = _write({**checkpoint, KEY: meta}, tmp_path / "k.ckpt", reseal=True)
    with pytest.raises(ModelFileError, match=r"'medimg' must hold \['normalization'\]; they are missing"):
        read_model_file(path)


def test_weights_of_another_network_are_refused_naming_them(checkpoint, tmp_path):
    from pipeline import load_classifier

    meta = {**checkpoint[KEY], "network": {**checkpoint[KEY]["network"], "arch": "resnet34"}}
    path = _write({**checkpoint, KEY: meta}, tmp_path / "a.ckpt", reseal=True)
    with pytest.raises(ModelFileError, match=r"weights must fit the network .* missing \['layer1.2"):
        load_classifier(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"state_dict": {}, "epoch": 3}, r"a Lightning checkpoint without the 'medimg' entry"),
        ({"weights": torch.zeros(2)}, r"not a checkpoint written by this pipeline's train stage"),
    ],
)
def test_foreign_checkpoints_are_refused(tmp_path, content, message):
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    with pytest.raises(ModelFileError, match=message):
        read_model_file(path)


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text(json.dumps({"medimg": 1}))
    with pytest.raises(ModelFileError, match=r"'notes.ckpt' must be a PyTorch checkpoint of plain values"):
        read_model_file(path)
    with pytest.raises(ModelFileError, match=r"must exist; it was not found"):
        read_model_file(tmp_path / "absent.ckpt")
