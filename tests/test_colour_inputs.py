"""Colour images reach the network as three channels: ingest -> preprocess -> train -> load_classifier.

Before issue 16 ingest turned RGB into grey and training built a one-channel stem, so an
ImageNet stem's colour filters were summed away. Here RGB PNG files and an RGB DICOM
secondary capture go through the library as the stages run it, with ImageNet weights
(a stand-in checkpoint of ImageNet's layout in a temporary, offline hub cache).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config import IngestConfig, ModelConfig, TrainConfig
from pipeline.inference import load_classifier
from pipeline.io.ingest import ingest_cohort
from pipeline.modelfile import read_model_file
from pipeline.predict_inputs import cases_from_paths, scoring_session
from pipeline.preprocessing import build_cache
from pipeline.splits import assign_splits
from pipeline.tables import read_rows, write_rows
from pipeline.training import train_and_predict
from tests.io.dicom_builders import PYDICOM_FILES
from tests.io.shipped import ingest_settings
from tests.models.resnet_checkpoints import resnet_state_dict
from tests.params import config

KEY = "colour-test-key-0123"
ROI = (48, 48)


def _picture(rng: np.random.Generator, positive: bool) -> np.ndarray:
    """A skin-coloured photograph, 60 x 80; a positive one holds a red disc."""
    picture = np.zeros((60, 80, 3), np.uint8) + np.array([190, 150, 120], np.uint8)
    picture = np.clip(picture + rng.normal(0, 6, picture.shape), 0, 255).astype(np.uint8)
    if positive:
        y, x = np.mgrid[0:60, 0:80]
        cy, cx = rng.integers(15, 45), rng.integers(15, 65)
        picture[(y - cy) ** 2 + (x - cx) ** 2 < 64] = (170, 40, 40)
    return picture


@pytest.fixture(scope="module")
def colour_run(module_tmp) -> dict[str, Path]:
    root = module_tmp("colour")
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    lines = ["patient_id,label,path"]
    for i in range(20):
        Image.fromarray(_picture(rng, i % 2 == 1)).save(raw / f"photo{i:02d}.png")
        lines.append(f"P{i:02d},{i % 2},photo{i:02d}.png")
    shutil.copyfile(PYDICOM_FILES / "SC_rgb_dcmtk_+eb+cr.dcm", raw / "capture.dcm")  # RGB, JPEG baseline
    lines.append("P20,0,capture.dcm")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    ingest_cohort(raw, root / "manifest.csv", root / "ingested", pseudonym_key=KEY,
                  **ingest_settings(assume_missing_geometry=True))
    index = root / "ingested" / "index.csv"
    splits = assign_splits(read_rows(index), seed=0, val_fraction=0.3, test_fraction=0.3)
    write_rows(root / "split.csv", ({"patient_id": s.patient_id, "split": s.split, "label": s.label} for s in splits),
               ("patient_id", "split", "label"))
    build_cache(index, root / "split.csv", root / "cache", spatial_dims=2, roi=ROI, pixdim=(1.0, 1.0),
                hu_window=(-1000.0, 400.0), channels="auto", resize="fit", intensity="fixed_range",
                intensity_range=(0.0, 255.0), crop_foreground=False)
    return {"root": root, "raw": raw, "index": index, "cache": root / "cache"}


@pytest.fixture
def imagenet_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, str]:
    """ImageNet's ResNet-18 file name in an offline hub cache; random weights of its layout."""
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    state = resnet_state_dict("resnet18", seed=7)
    path = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.save(state, path)
    return state, hashlib.sha256(path.read_bytes()).hexdigest()


def test_colour_is_kept_by_ingest_and_cached_with_three_channels(colour_run):
    index = read_rows(colour_run["index"])
    assert len(index) == 21 and {r["channels"] for r in index} == {"3"}
    meta = json.loads((colour_run["cache"] / "meta.json").read_text())
    assert meta["in_channels"] == 3 and meta["channels_reason"] == "auto: rgb, 21 of 21 images colour"
    train = np.load(colour_run["cache"] / "train.npy", mmap_mode="r")
    assert train.shape[1:] == (3, *ROI)
    # Skin or lesion colour, not grey: red well above blue at the centre of every photograph.
    centre = np.asarray(train[:, :, ROI[0] // 2, ROI[1] // 2], dtype=np.float32)
    assert (centre[:, 0] > centre[:, 2] + 0.2).all()


def test_three_channels_reach_the_stem_for_an_rgb_input(colour_run, imagenet_checkpoint, tmp_path):
    state, sha256 = imagenet_checkpoint
    out = tmp_path / "run"
    model = config(ModelConfig, arch="resnet18", weights="imagenet", weights_sha256=sha256, freeze_until_epoch=0)
    train = config(TrainConfig, seed=0, max_epochs=1, batch_size=4, lr=1e-4, accelerator="cpu", devices=1,
                   precision="32", augment=False)
    train_and_predict(colour_run["cache"], out / "models", out / "predictions.csv", out / "summary.json",
                      out / "dvclive", model=model, train=train)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["in_channels"] == 3
    # ImageNet's stem used as it is: its colour filters kept, not summed into one grey filter.
    assert summary["weights"]["source"] == "imagenet" and summary["weights"]["channel_adaptation"] == "none"
    model_file = read_model_file(out / "models" / "best.ckpt")
    assert model_file.meta["network"]["in_channels"] == 3 and model_file.meta["preprocess"]["in_channels"] == 3
    assert tuple(model_file.state["conv1.weight"].shape) == tuple(state["conv1.weight"].shape) == (64, 3, 7, 7)

    classifier = load_classifier(out / "models" / "best.ckpt", device="cpu")
    seen: list[torch.Tensor] = []
    handle = classifier.network.conv1.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    settings = config(IngestConfig, pseudonym_key=KEY, workers=1, assume_missing_geometry=True)
    try:
        with scoring_session() as session:
            inputs = [colour_run["raw"] / "photo01.png", colour_run["raw"] / "capture.dcm"]
            results = classifier.score_cases(cases_from_paths(inputs, session, settings))
    finally:
        handle.remove()
    assert [r.reason for r in results] == ["", ""] and all(r.score is not None for r in results)
    stem_input = seen[0]
    assert tuple(stem_input.shape) == (2, 3, *ROI)
    # Three different channels (the photograph's colour, ImageNet-normalised per channel), not one grey repeated.
    assert not torch.allclose(stem_input[:, 0], stem_input[:, 1]) and not torch.allclose(stem_input[:, 1], stem_input[:, 2])
