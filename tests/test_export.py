"""ONNX and TorchScript exports give the PyTorch model's logits (onnxruntime, torch.jit)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from pipeline.export import ExportError, export_model, main, metadata_path
from pipeline.modelfile import KEY, seal
from tests.trained_runs import trained_runs

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def batch(classifier, seed: int = 1) -> torch.Tensor:
    return torch.rand(3, *classifier.input_shape, generator=torch.Generator().manual_seed(seed))


def pytorch_logits(classifier, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return classifier.logits(x).cpu().numpy()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_onnx_runs_in_onnxruntime_with_pytorchs_logits(runs, tmp_path, spatial_dims, capsys):
    from pipeline import load_classifier

    model = runs[spatial_dims].model
    out = tmp_path / "model.onnx"
    assert main([str(model), str(out), "--format", "onnx", "--threshold", "0.3"]) == 0, capsys.readouterr().err
    classifier = load_classifier(model, device="cpu")
    x = batch(classifier)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["logit"], {"image": x.numpy()})[0]
    assert got.shape == (3,)
    np.testing.assert_allclose(got, pytorch_logits(classifier, x), atol=1e-4, rtol=0)
    meta = json.loads(metadata_path(out).read_text())
    assert meta["input"]["shape"] == ["batch", *classifier.input_shape] and meta["threshold"] == 0.3
    assert meta["preprocess"]["roi"] == classifier.meta["preprocess"]["roi"]
    assert meta["model_digest"] == classifier.meta["digest"]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_torchscript_loads_in_torch_with_pytorchs_logits(runs, tmp_path, spatial_dims):
    from pipeline import load_classifier

    model = runs[spatial_dims].model
    out = tmp_path / "model.pt"
    export_model(model, "torchscript", out)
    classifier = load_classifier(model, device="cpu")
    x = batch(classifier, seed=2)
    with torch.no_grad():
        got = torch.jit.load(str(out))(x).numpy()
    np.testing.assert_allclose(got, pytorch_logits(classifier, x), atol=1e-4, rtol=0)
    assert metadata_path(out).is_file()


@pytest.mark.parametrize(
    "normalization",
    [{"kind": "mean_std", "mean": [0.449], "std": [0.226]}, {"kind": "volume_zscore", "mean": [], "std": []}],
)
def test_the_input_normalisation_is_inside_the_exported_graph(runs, tmp_path, normalization):
    from pipeline import load_classifier

    checkpoint = torch.load(runs[2].model, map_location="cpu", weights_only=True)
    meta = seal({**checkpoint[KEY], "normalization": normalization}, checkpoint["state_dict"])
    model = tmp_path / "normalised.ckpt"
    torch.save({**checkpoint, KEY: meta}, model)
    classifier = load_classifier(model, device="cpu")
    x = batch(classifier, seed=3)
    assert not np.allclose(pytorch_logits(classifier, x), pytorch_logits(load_classifier(runs[2].model), x))
    export_model(model, "onnx", tmp_path / "n.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], pytorch_logits(classifier, x), atol=1e-4)


def test_onnx_export_without_onnx_names_the_extra(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` meets where it is not installed
    with pytest.raises(ExportError, match=r"needs the 'onnx' package.*pip install -e \.\[export\]"):
        export_model(runs[2].model, "onnx", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
