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
