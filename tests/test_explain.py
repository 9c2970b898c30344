"""Grad-CAM maps: on the model's input grid, from a stage fine enough to localise, written per case."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError
from pipeline.explain import choose_layer, stage_cells
from pipeline.predict import main
from tests.trained_runs import SETTINGS, trained_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def nifti(runs):
    return next(runs[3].raw_dir.rglob("*.nii.gz"))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_map_lies_on_the_input_grid_in_0_1(runs, nifti, spatial_dims):
    from pipeline import load_classifier

    clf = load_classifier(runs[spatial_dims].model, device="cpu")
    plain = clf(nifti)
    r = clf(nifti, saliency=True)
    assert r.saliency.shape == SETTINGS[spatial_dims]["roi"]
    assert np.isfinite(r.saliency).all() and r.saliency.min() == 0.0 and r.saliency.max() == pytest.approx(1.0)
    assert r.score == pytest.approx(plain.score, abs=1e-7)
    # GradCAM restores its module's training flag afterwards: the model must stay in eval mode.
    assert not clf.network.training
    assert clf(nifti).score == pytest.approx(plain.score, abs=1e-7)
    # A 24-voxel ROI leaves 6 cells in layer1 (stride 4): no stage reaches 8, so the finest is used.
    assert r.saliency_layer == "layer1"


def test_auto_picks_the_deepest_stage_with_8_cells_in_plane(runs):
    from pipeline import load_classifier

    network = load_classifier(runs[2].model, device="cpu").network
    assert stage_cells(network, (1, 64, 64))["layer2"] == (8, 8)
    assert choose_layer(network, (1, 64, 64)) == "layer2"
    assert choose_layer(network, (1, 128, 128)) == "layer3"
    assert choose_layer(network, (1, 256, 256)) == "layer4"
    assert choose_layer(network, (1, 64, 64), "layer4") == "layer4"
    with pytest.raises(PipelineInputError, match=r"saliency layer must be 'auto' or one of .*got 'fc'"):
        choose_layer(network, (1, 64, 64), "fc")


def test_predict_writes_a_world_aligned_nifti_per_3d_case(runs, nifti, tmp_path, capsys):
    out, maps = tmp_path / "p.csv", tmp_path / "maps"
    assert main([str(runs[3].model), str(nifti), "--out", str(out), "--saliency", str(maps)]) == 0
    assert f"Grad-CAM maps from layer1 in {maps}" in capsys.readouterr().out
    row = next(csv.DictReader(out.open(newline="")))
    image = nib.load(maps / row["saliency"])
    assert row["saliency"] == f"{row['series_key']}.nii.gz"
    assert image.shape == SETTINGS[3]["roi"]
    # The affine of the prepared image: its voxels are preprocess.pixdim mm, RAS.
    assert np.allclose(np.diag(image.affine)[:3], SETTINGS[3]["pixdim"])


def test_predict_writes_a_png_overlay_per_2d_case_and_overlays_on_request(runs, nifti, tmp_path):
    from pipeline import load_classifier

    out, maps = tmp_path / "p.csv", tmp_path / "maps"
    assert main([str(runs[2].model), str(nifti), "--out", str(out), "--saliency", str(maps)]) == 0
    row = next(csv.DictReader(out.open(newline="")))
    assert row["saliency"].endswith(".png") and (maps / row["saliency"]).read_bytes()[:4] == b"\x89PNG"
    clf = load_classifier(runs[3].model, device="cpu")
    assert clf(nifti, saliency=True).save_overlay(tmp_path / "case.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PipelineInputError, match=r"must hold a saliency map to draw an overlay.*saliency=True"):
        clf(nifti).save_overlay(tmp_path / "none.png")


def _reference_grad_cam(network, images, layer):
    """Grad-CAM by its definition: ReLU(sum_k mean(dlogit/dA_k) A_k), upsampled, scaled to [0, 1]."""
    import torch
    import torch.nn.functional as F

    kept = {}
    stage = getattr(network, layer)
    hooks = [stage.register_forward_hook(lambda _m, _i, out: kept.__setitem__("a", out)),
             stage.register_full_backward_hook(lambda _m, _gi, gout: kept.__setitem__("g", gout[0]))]
    try:
        with torch.enable_grad():
            network(images)[:, 0].sum().backward()
    finally:
        for hook in hooks:
            hook.remove()
    network.zero_grad(set_to_none=True)
    a, g = kept["a"].detach(), kept["g"].detach()
    weights = g.mean(dim=tuple(range(2, g.ndim)), keepdim=True)
    raw = F.interpolate(F.relu((weights * a).sum(1, keepdim=True)), size=images.shape[2:], mode="bilinear")[:, 0]
    low = raw.flatten(1).min(1).values[:, None, None]
    high = raw.flatten(1).max(1).values[:, None, None]
    return ((raw - low) / (high - low)).numpy()


def test_the_map_is_largest_where_the_evidence_for_the_positive_class_is():
    # MONAI's default postprocessing maps each map's (min, max) to (1, 0); left in, every
    # peak would sit where the model sees the least evidence. The map must match Grad-CAM
    # as defined (1 = most evidence), on a network and images where it is not flat.
    import torch
    from monai.networks.nets import resnet10

    from pipeline.explain import grad_cam

    torch.manual_seed(3)
    network = resnet10(spatial_dims=2, n_input_channels=1, num_classes=1).eval()
    images = torch.zeros(3, 1, 64, 64)
    for i, (row, col) in enumerate([(4, 4), (40, 12), (20, 44)]):
        images[i, 0, row : row + 16, col : col + 16] = 1.0
    reference = _reference_grad_cam(network, images.clone(), "layer2")
    assert all(m.max() > m.min() for m in reference)  # the case the flip would get wrong
    maps = grad_cam(network, None, images, "layer2")
    assert maps.shape == (3, 64, 64)
    np.testing.assert_allclose(maps, reference, atol=1e-5)
    for ours, theirs in zip(maps, reference):
        assert np.unravel_index(ours.argmax(), ours.shape) == np.unravel_index(theirs.argmax(), theirs.shape)


def test_a_map_without_positive_evidence_is_flat_zero_not_a_peak_at_the_corner():
    from pipeline.explain import scale_to_unit

    flat = scale_to_unit(np.zeros((4, 4), dtype=np.float32))
    assert flat.dtype == np.float32 and not flat.any()
    ramp = scale_to_unit(np.arange(6, dtype=np.float32).reshape(2, 3) + 2.0)
    assert ramp.min() == 0.0 and ramp.max() == 1.0 and ramp[1, 2] == 1.0


def test_a_flat_map_is_drawn_as_no_overlay_and_a_map_with_evidence_in_colour(tmp_path):
    from PIL import Image

    from pipeline.explain import save_overlay

    image = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (32, 1))[None]
    flat = np.asarray(Image.open(save_overlay(tmp_path / "flat.png", image, np.zeros((32, 32), np.float32))).convert("RGB"))
    assert np.array_equal(flat[..., 0], flat[..., 1]) and np.array_equal(flat[..., 1], flat[..., 2])  # grey only
    evidence = np.zeros((32, 32), np.float32)
    evidence[8:16, 8:16] = 1.0
    tinted = np.asarray(Image.open(save_overlay(tmp_path / "map.png", image, evidence)).convert("RGB")).astype(int)
    assert np.abs(tinted[..., 0] - tinted[..., 2]).max() > 20  # colour where the map is drawn
