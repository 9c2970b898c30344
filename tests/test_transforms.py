from __future__ import annotations

import inspect

import nibabel as nib
import numpy as np
import pytest
import torch

from pipeline.config import PreprocessConfig
from pipeline.errors import ConfigError
from pipeline.augment import BatchAugment
from pipeline.transforms import deterministic_transforms, resolve_intensity
from tests.params import config

#: preprocess.resize, intensity and crop_foreground as params.yaml ships them; no dataset range.
SHIPPED = {"resize": config(PreprocessConfig).resize, "intensity": config(PreprocessConfig).intensity,
           "value_range": None, "crop_foreground": config(PreprocessConfig).crop_foreground}


def write_ct(path, *, shape=(64, 64, 20), spacing=(2.5, 2.5, 5.0), marker_at=None) -> None:
    """A RAS NIfTI in HU: air, a body cylinder of soft tissue, optional bright marker."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = (x - shape[0] / 2) ** 2 + (y - shape[1] / 2) ** 2 < (shape[0] / 3) ** 2
    hu = np.full(shape, -1000.0, np.float32)
    hu[body] = 40.0
    if marker_at is not None:
        i, j, k = marker_at
        hu[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2] = 400.0
    nib.save(nib.Nifti1Image(hu, np.diag([*spacing, 1.0])), str(path))


def test_ct_volume_becomes_roi_sized_window_scaled_tensor(tmp_path):
    path = tmp_path / "ct.nii.gz"
    write_ct(path)
    out = deterministic_transforms(
        spatial_dims=3, pixdim=(5.0, 5.0, 5.0), roi=(32, 32, 16), hu_window=(-1000.0, 400.0), modality="CT",
        in_channels=1, **SHIPPED
    )({"image": str(path)})["image"]
    assert tuple(out.shape) == (1, 32, 32, 16)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    soft_tissue = (40.0 + 1000.0) / 1400.0
    assert torch.isclose(out.max(), torch.tensor(soft_tissue), atol=0.02)


def test_marker_keeps_its_side_after_resampling(tmp_path):
    path = tmp_path / "ct.nii.gz"
    write_ct(path, marker_at=(40, 32, 10))  # on the +x (patient left, RAS) half
    out = deterministic_transforms(
        spatial_dims=3, pixdim=(2.5, 2.5, 5.0), roi=(64, 64, 20), hu_window=(-1000.0, 400.0), modality="CT",
        in_channels=1, **SHIPPED
    )({"image": str(path)})["image"][0]
    peak = np.unravel_index(int(torch.argmax(out)), out.shape)
    assert peak[0] > 32  # the marker stays on the +x half


@pytest.mark.parametrize("widest", [3, 13])
def test_two_d_from_volume_takes_the_slice_of_largest_body_area(tmp_path, widest):
    """Body discs of radius 6 voxels on every slice but one, of radius 20 at ``widest``, whose
    tissue alone is 200 HU: the 2D image must be that slice (its value and its wide disc)."""
    x, y = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    r2 = (x - 32) ** 2 + (y - 32) ** 2
    hu = np.full((64, 64, 20), -1000.0, np.float32)
    hu[r2 < 6**2] = 40.0
    hu[..., widest][r2 < 20**2] = 200.0
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([2.5, 2.5, 5.0, 1.0])), str(path))
    out = deterministic_transforms(
        spatial_dims=2, pixdim=(2.5, 2.5), roi=(64, 64), hu_window=(-1000.0, 400.0), modality="CT",
        in_channels=1, **SHIPPED
    )({"image": str(path)})["image"]
    assert tuple(out.shape) == (1, 64, 64)
    tissue = (200.0 + 1000.0) / 1400.0
    assert torch.isclose(out.max(), torch.tensor(tissue), atol=0.01)
    disc = (out[0] > 0.5 * tissue).sum().item()
    assert disc > 0.8 * np.pi * 20**2  # the wide disc, not one of the radius-6 ones


def test_non_ct_is_scaled_by_percentiles(tmp_path):
    path = tmp_path / "mr.nii.gz"
    data = np.random.default_rng(0).uniform(0, 3000, (32, 32, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    out = deterministic_transforms(
        spatial_dims=3, pixdim=(1.0, 1.0, 1.0), roi=(32, 32, 8), hu_window=(-1000.0, 400.0), modality="MR",
        in_channels=1, **SHIPPED
    )({"image": str(path)})["image"]
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_batch_augment_is_seeded_and_changes_the_batch():
    x = torch.rand(4, 1, 8, 8, 4)
    a = BatchAugment(3, seed=7, max_shift=0)(x)
    b = BatchAugment(3, seed=7, max_shift=0)(x)
    c = BatchAugment(3, seed=8, max_shift=0)(x)
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_batch_augment_flips_exactly_when_asked():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    always = BatchAugment(2, seed=0, flip_prob=1.0, scale=0.0, shift=0.0, noise_std=0.0, max_shift=0)(x)
    assert torch.equal(always, x.flip(2).flip(3))
    never = BatchAugment(2, seed=0, flip_prob=0.0, scale=0.0, shift=0.0, noise_std=0.0, max_shift=0)(x)
    assert torch.equal(never, x)


def test_batch_augment_shift_moves_each_sample_and_fills_with_zeros():
    x = torch.zeros(6, 1, 9, 9, 9)
    x[:, :, 4, 4, 4] = 1.0
    out = BatchAugment(3, seed=1, flip_prob=0.0, scale=0.0, shift=0.0, noise_std=0.0, max_shift=2)(x)
    assert out.shape == x.shape
    peaks = [tuple(int(v) for v in torch.nonzero(out[i, 0])[0]) for i in range(6)]
    assert all(float(out[i].sum()) == 1.0 for i in range(6))  # moved, not duplicated or lost
    assert all(all(2 <= c <= 6 for c in p) for p in peaks)
    assert len(set(peaks)) > 1


def test_batch_augment_draws_an_epoch_from_the_seed_and_the_epoch_alone():
    """A resumed run augments epoch 1 as an uninterrupted run does after epoch 0's draws."""
    x = torch.rand(4, 1, 8, 8, 8)
    uninterrupted = BatchAugment(3, seed=3, max_shift=2)
    uninterrupted(x)  # epoch 0
    uninterrupted.set_epoch(1)
    resumed = BatchAugment(3, seed=3, max_shift=2)
    resumed.set_epoch(1)
    assert torch.equal(resumed(x), uninterrupted(x))
    fresh = BatchAugment(3, seed=3, max_shift=2)
    assert not torch.equal(fresh(x), resumed(x))  # epoch 0 draws differently from epoch 1


def write_radiograph(path, *, lung: float, border: int = 0, shape=(24, 24)) -> np.ndarray:
    """A 2D 8-bit-valued image: background 10, a field of value ``lung`` inside ``border``."""
    data = np.full(shape, 10.0, np.float32)
    data[border : shape[0] - border, border : shape[1] - border] = lung
    data[border, border] = 250.0  # one bright marker so percentiles differ from the field
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return data


def radiograph_transform(**kwargs):
    return deterministic_transforms(
        spatial_dims=2, pixdim=(1.0, 1.0), roi=(24, 24), hu_window=(-1000.0, 400.0), modality="CR",
        in_channels=1, **{**SHIPPED, **kwargs},
    )


@pytest.mark.parametrize(
    ("modality", "expected"),
    [("CT", "ct_window"), ("CR", "fixed_range"), ("dx", "fixed_range"), ("US", "fixed_range"), ("SC", "fixed_range"),
     ("MR", "percentile"), ("OT", "percentile")],
)
def test_auto_intensity_is_chosen_by_modality(modality, expected):
    assert resolve_intensity("auto", modality) == expected
    assert resolve_intensity("percentile", modality) == "percentile"


def test_unknown_intensity_mode_is_named():
    with pytest.raises(ConfigError, match=r"'preprocess.intensity' must be one of \['auto', .*\]; got 'minmax'"):
        resolve_intensity("minmax", "CR")


def test_fixed_range_keeps_absolute_brightness_that_percentiles_erase(tmp_path):
    write_radiograph(tmp_path / "clear.nii.gz", lung=60.0, border=2)
    write_radiograph(tmp_path / "opaque.nii.gz", lung=180.0, border=2)
    fixed = radiograph_transform(value_range=(0.0, 255.0))
    clear, opaque = (fixed({"image": str(tmp_path / f"{n}.nii.gz")})["image"] for n in ("clear", "opaque"))
    assert float(opaque[0, 12, 12]) == pytest.approx(180 / 255, abs=1e-4)
    assert float(clear[0, 12, 12]) == pytest.approx(60 / 255, abs=1e-4)
    per_image = radiograph_transform(intensity="percentile")
    a, b = (per_image({"image": str(tmp_path / f"{n}.nii.gz")})["image"] for n in ("clear", "opaque"))
    assert float(a[0, 12, 12]) == pytest.approx(float(b[0, 12, 12]), abs=0.05)  # the difference is gone


def test_auto_does_not_crop_a_radiograph_to_a_threshold(tmp_path):
    data = write_radiograph(tmp_path / "cr.nii.gz", lung=120.0, border=6)
    out = radiograph_transform(value_range=(0.0, 255.0))({"image": str(tmp_path / "cr.nii.gz")})["image"][0]
    np.testing.assert_allclose(out.numpy(), data / 255.0, atol=1e-4)  # framing kept as exported
    cropped = radiograph_transform(value_range=(0.0, 255.0), crop_foreground=True)(
        {"image": str(tmp_path / "cr.nii.gz")}
    )["image"][0]
    assert not np.allclose(cropped.numpy(), data / 255.0, atol=1e-4)


def test_fixed_range_without_a_range_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"'value_range' must be \(low, high\).*CR.*Set preprocess.intensity_range"):
        radiograph_transform(intensity="fixed_range")


def test_the_shift_has_no_second_default_here():
    """max_shift is train.augment_shift_voxels, whose default lives in params.yaml."""
    assert inspect.signature(BatchAugment).parameters["max_shift"].default is inspect.Parameter.empty


def _ingested(path, array, channels=1):
    """``array`` (columns, rows[, 3]) written as ingest writes an image file's volume (1 mm, LPS -> RAS)."""
    from pipeline.io.nifti import LPS_TO_RAS
    from pipeline.io.nifti_write import write_canonical

    write_canonical(array, LPS_TO_RAS.copy(), path, channels=channels)
    return str(path)


def _photo_transform(**kwargs):
    settings = dict(spatial_dims=2, pixdim=(1.0, 1.0), roi=(64, 64), hu_window=(-1000.0, 400.0), modality="OT",
                    in_channels=1, resize="fit", intensity="fixed_range", value_range=(0.0, 255.0),
                    crop_foreground=False)
    settings.update(kwargs)
    return deterministic_transforms(**settings)


@pytest.mark.parametrize(("columns", "rows"), [(1920, 1080), (180, 180), (90, 300)])
def test_fit_scales_a_screenshot_and_a_small_crop_so_their_longer_side_fills_the_roi(tmp_path, columns, rows):
    path = _ingested(tmp_path / "img.nii", np.full((columns, rows), 200, np.int16))
    result = _photo_transform()({"image": path})
    out = result["image"]
    assert tuple(out.shape) == (1, 64, 64)
    longer, shorter = (0, 1) if columns >= rows else (1, 0)
    assert result["extent"][longer] == 64  # the longer side fills the ROI, whatever the size
    assert result["extent"][shorter] == round(64 * min(columns, rows) / max(columns, rows))
    filled = (out[0] > 0.5).sum(dim=shorter)  # image (not padding) along the longer axis
    assert int((filled > 0).sum()) == 64
    assert torch.allclose(out[0][out[0] > 0.5], torch.tensor(200 / 255), atol=1e-3)  # scaled, not blurred away
    # The same images under spacing at 1 mm: the 1,920 px one is centre-cropped to a fragment.
    spaced = _photo_transform(resize="spacing")({"image": path})
    assert tuple(spaced["extent"]) == (columns, rows)


def test_fit_keeps_the_aspect_ratio_of_the_picture(tmp_path):
    picture = np.zeros((400, 200), np.int16)  # 400 columns, 200 rows: a wide picture
    picture[:200, :] = 250  # the left half bright
    out = _photo_transform()({"image": _ingested(tmp_path / "wide.nii", picture)})["image"][0]
    bright = (out > 0.5).nonzero()
    assert int(bright[:, 0].max() - bright[:, 0].min()) + 1 == 32  # half of 64 columns
    assert int(bright[:, 1].max() - bright[:, 1].min()) + 1 == 32  # 200 rows -> 32: aspect 2:1 kept


def test_rgb_keeps_its_channels_and_gray_takes_the_luma(tmp_path):
    rgb = np.zeros((40, 30, 3), np.int16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[:5] = 0
    path = _ingested(tmp_path / "rgb.nii", rgb, channels=3)
    colour = _photo_transform(in_channels=3, roi=(48, 48))({"image": path})["image"]
    assert tuple(colour.shape) == (3, 48, 48)
    inside = colour[:, 24, 24]
    torch.testing.assert_close(inside, torch.tensor([200, 100, 50]) / 255.0, atol=2e-3, rtol=0)
    grey = _photo_transform(in_channels=1, roi=(48, 48))({"image": path})["image"]
    assert tuple(grey.shape) == (1, 48, 48)
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0
    assert float(grey[0, 24, 24]) == pytest.approx(luma, abs=2e-3)
    # A grey image for an RGB model: three equal channels.
    plain = _ingested(tmp_path / "grey.nii", np.full((40, 30), 120, np.int16))
    repeated = _photo_transform(in_channels=3, roi=(48, 48))({"image": plain})["image"]
    assert tuple(repeated.shape) == (3, 48, 48)
    assert torch.equal(repeated[0], repeated[1]) and torch.equal(repeated[1], repeated[2])


def test_a_bad_resize_mode_is_named():
    with pytest.raises(ConfigError, match=r"'preprocess.resize' must be one of \['spacing', 'fit'\]; got 'stretch'"):
        _photo_transform(resize="stretch")


def test_building_the_transforms_says_nothing_about_readers_the_run_does_not_use(caplog, recwarn) -> None:
    import logging

    with caplog.at_level(logging.WARNING):
        deterministic_transforms(
            spatial_dims=3, pixdim=(5.0, 5.0, 6.25), roi=(64, 64, 32), hu_window=(-1000.0, 400.0), modality="CT",
            in_channels=1, resize="spacing", intensity="ct_window", value_range=None, crop_foreground=True,
        )
    assert not [r for r in caplog.records if "nvimagecodec" in r.getMessage().lower()]
    assert not [w for w in recwarn if "nvimgcodec" in str(w.message).lower()]
