from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.cache import open_split
from pipeline.config import ConfigError, PreprocessConfig, load_params
from pipeline.preprocessing import build_cache
from pipeline.tables import read_rows, write_rows
from tests.params import config
from tests.test_transforms import write_ct

ROOT = Path(__file__).resolve().parents[1]
#: The channel, resize, intensity and crop settings params.yaml ships, for calls that are not about them.
AS_SHIPPED = {k: getattr(config(PreprocessConfig), k)
              for k in ("channels", "resize", "intensity", "intensity_range", "crop_foreground")}
INDEX_COLUMNS = (
    "series_key", "patient_id", "label", "image_path", "modality", "spacing", "shape", "channels", "site",
)


def make_index(tmp_path):
    out = tmp_path / "ingested"
    (out / "volumes").mkdir(parents=True)
    rows = []
    for i in range(6):
        write_ct(out / "volumes" / f"s{i}.nii.gz", marker_at=(32, 32, 10) if i % 2 else None)
        rows.append({"series_key": f"s{i}", "patient_id": f"p{i}", "label": i % 2, "image_path": f"volumes/s{i}.nii.gz",
                     "modality": "CT", "spacing": "2.5x2.5x5", "shape": "64x64x20", "channels": 1,
                     "site": "a" if i < 3 else "b"})
    rows.append({"series_key": "flat", "patient_id": "p0", "label": 0, "image_path": "volumes/flat.nii.gz",
                 "modality": "DX", "spacing": "0.2x0.2", "shape": "512x512", "channels": 1, "site": "a"})
    rows.append({"series_key": "gone", "patient_id": "p1", "label": 1, "image_path": "volumes/gone.nii.gz",
                 "modality": "CT", "spacing": "1x1x1", "shape": "8x8x8", "channels": 1, "site": "a"})
    rows.append({"series_key": "orphan", "patient_id": "p99", "label": 0, "image_path": "volumes/s0.nii.gz",
                 "modality": "CT", "spacing": "1x1x1", "shape": "8x8x8", "channels": 1, "site": "a"})
    write_rows(out / "index.csv", rows, INDEX_COLUMNS)
    parts = ["train", "train", "val", "val", "test", "test"]
    write_rows(tmp_path / "split.csv", ({"patient_id": f"p{i}", "split": parts[i], "label": i % 2} for i in range(6)),
               ("patient_id", "split", "label"))
    return out / "index.csv", tmp_path / "split.csv"


def test_a_log_reader_sees_how_far_each_part_has_come(tmp_path, capsys):
    index, split = make_index(tmp_path)
    build_cache(index, split, tmp_path / "cache", spatial_dims=3, roi=(16, 16, 8),
                pixdim=(5.0, 5.0, 10.0), hu_window=(-1000.0, 400.0), **AS_SHIPPED)
    lines = capsys.readouterr().err.splitlines()  # not a terminal: whole lines, the last count of each part
    for part, n in (("train", 3), ("val", 2), ("test", 2)):  # planned rows; exclusions happen in the loop
        assert any(line.startswith(f"preprocess: {part}: {n}/{n} series") for line in lines), lines


def test_every_series_is_cached_or_excluded_with_a_reason(tmp_path):
    index, split = make_index(tmp_path)
    summary = build_cache(index, split, tmp_path / "cache", spatial_dims=3, roi=(16, 16, 8),
                          pixdim=(5.0, 5.0, 10.0), hu_window=(-1000.0, 400.0), **AS_SHIPPED)
    assert summary.cached == {"train": 2, "val": 2, "test": 2}
    assert summary.excluded == 3
    reasons = {r["series_key"]: r["reason"] for r in read_rows(tmp_path / "cache" / "excluded.csv")}
    assert "cannot feed a 3D model; set preprocess.spatial_dims: 2" in reasons["flat"]
    assert reasons["gone"].startswith("transform failed")
    assert reasons["orphan"] == "patient has no part in split.csv"

    train = open_split(tmp_path / "cache", "train")
    assert train.images.shape == (2, 1, 16, 16, 8)
    assert [r["series_key"] for r in train.rows] == ["s0", "s1"]
    assert train.rows[0]["site"] == "a"
    # The marker patient is brighter somewhere than the plain one.
    assert float(np.max(train.images[1])) > float(np.max(train.images[0]))
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["counts"] == {"train": 2, "val": 2, "test": 2}
    assert meta["positives"] == {"train": 1, "val": 1, "test": 1}
    assert meta["subgroup_columns"] == ["modality", "site"]
    assert meta["excluded_reasons"] == {"2D image for a 3D model": 1, "transform failed": 1, "no part in split.csv": 1}


def test_radiographs_share_one_range_estimated_from_training_images_only(tmp_path):
    out = tmp_path / "ingested"
    (out / "volumes").mkdir(parents=True)
    rows, parts = [], ["train", "train", "val", "test"]
    for i, (lung, part) in enumerate(zip((60.0, 180.0, 240.0, 120.0), parts)):
        data = np.full((24, 24), 20.0, np.float32)
        data[4:20, 4:20] = lung
        if part == "val":
            data[0, 0] = 5000.0  # an outlier outside the training split must not set the range
        nib.save(nib.Nifti1Image(data, np.eye(4)), str(out / "volumes" / f"s{i}.nii.gz"))
        rows.append({"series_key": f"s{i}", "patient_id": f"p{i}", "label": i % 2, "image_path": f"volumes/s{i}.nii.gz",
                     "modality": "CR", "spacing": "1x1", "shape": "24x24", "channels": 1, "site": "a"})
    write_rows(out / "index.csv", rows, INDEX_COLUMNS)
    write_rows(tmp_path / "split.csv", ({"patient_id": f"p{i}", "split": p, "label": i % 2} for i, p in enumerate(parts)),
               ("patient_id", "split", "label"))
    build_cache(out / "index.csv", tmp_path / "split.csv", tmp_path / "cache", spatial_dims=2, roi=(24, 24),
                pixdim=(1.0, 1.0), hu_window=(-1000.0, 400.0), channels="auto", resize="spacing", intensity="auto",
                intensity_range=None,
                crop_foreground="auto")
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["intensity"] == {"CR": "fixed_range"}
    low, high = meta["intensity_range"]["CR"]
    assert low == pytest.approx(20.0) and high == pytest.approx(180.0)
    train = open_split(tmp_path / "cache", "train").images
    # One range for all: the brighter training image stays brighter (percentiles made both 1.0).
    assert float(train[0, 0, 12, 12]) == pytest.approx((60 - 20) / 160, abs=1e-3)
    assert float(train[1, 0, 12, 12]) == pytest.approx(1.0, abs=1e-3)
    assert "CropForegroundd" not in meta["transforms"]["CR"]


def test_intensity_keys_are_checked(tmp_path):
    params = load_params(ROOT / "params.yaml")
    params["preprocess"]["intensity_range"] = [255, 0]
    with pytest.raises(ConfigError, match=r"'preprocess.intensity_range' must be \[low, high\] with low < high"):
        PreprocessConfig.from_params(params)
    params["preprocess"].update(intensity_range=None, intensity="zscore")
    with pytest.raises(ConfigError, match=r"'preprocess.intensity' must be one of \['auto', 'ct_window'"):
        PreprocessConfig.from_params(params)
    params["preprocess"].update(intensity="auto", crop_foreground="yes")
    with pytest.raises(ConfigError, match=r"'preprocess.crop_foreground' must be true, false or auto; got 'yes'"):
        PreprocessConfig.from_params(params)


def ingested_pictures(tmp_path, sizes, *, colour=()):
    """PNG files of ``sizes`` (columns, rows) ingested as ingest does, one patient each, all in train."""
    from PIL import Image

    from pipeline.io.ingest import ingest_cohort
    from tests.io.shipped import ingest_settings

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = ["patient_id,label,path"]
    for i, (columns, rows) in enumerate(sizes):
        picture = np.zeros((rows, columns, 3), np.uint8)
        picture[rows // 4 : 3 * rows // 4, columns // 4 : 3 * columns // 4] = (200, 120, 40) if i in colour else 150
        Image.fromarray(picture).save(raw / f"img{i}.png")
        lines.append(f"P{i},{i % 2},img{i}.png")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    ingest_cohort(raw, tmp_path / "manifest.csv", tmp_path / "ingested", pseudonym_key="test-key-0123456789",
                  **ingest_settings())
    index = tmp_path / "ingested" / "index.csv"
    write_rows(tmp_path / "split.csv", ({"patient_id": r["patient_id"], "split": "train", "label": r["label"]}
                                        for r in read_rows(index)), ("patient_id", "split", "label"))
    return index, tmp_path / "split.csv"


def _picture_cache(tmp_path, index, split, **settings):
    values = dict(spatial_dims=2, roi=(64, 64), pixdim=(1.0, 1.0), hu_window=(-1000.0, 400.0), channels="auto",
                  resize="fit", intensity="fixed_range", intensity_range=(0.0, 255.0), crop_foreground=False)
    values.update(settings)
    return build_cache(index, split, tmp_path / "cache", **values)


def test_fit_fills_the_roi_with_a_1920_and_a_180_pixel_image(tmp_path):
    index, split = ingested_pictures(tmp_path, [(1920, 1080), (180, 180)])
    summary = _picture_cache(tmp_path, index, split, crop_foreground=True)
    assert summary.cached["train"] == 2 and summary.excluded == 0 and not summary.cropped
    images = open_split(tmp_path / "cache", "train").images
    for image in images:  # the bright centre half of each picture fills the ROI's longer side
        bright = np.argwhere(image[0] > 0.3)
        assert bright.min(axis=0).tolist()[0] <= 3 and bright.max(axis=0).tolist()[0] >= 60
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["resize"] == "fit" and "FitToRoid" in meta["transforms"]["OT"]
    assert "Spacingd" not in meta["transforms"]["OT"]


def test_spacing_that_leaves_a_speck_is_excluded_and_a_fragment_is_warned(tmp_path):
    index, split = ingested_pictures(tmp_path, [(1920, 1080), (180, 180), (24, 24)])
    summary = _picture_cache(tmp_path, index, split, resize="spacing", pixdim=(12.0, 12.0))
    # 24 px at 1 mm -> 3 voxels at 12 mm (centres 0 to 23 mm): a speck; 1,920 px -> 160 x 90 voxels: the 64 ROI keeps 28 %.
    reasons = {r["series_key"]: r for r in read_rows(tmp_path / "cache" / "excluded.csv")}
    keys = [r["series_key"] for r in read_rows(index)]
    assert set(reasons) == {keys[2]} and reasons[keys[2]]["kind"] == "too small after resampling"
    assert reasons[keys[2]]["reason"] == (
        "image must be at least 4 voxels on a side after resampling; got 3x3 at preprocess.pixdim [12.0, 12.0] mm "
        "(shape 24x24, spacing 1x1 mm), a speck in the [64, 64] ROI. Lower preprocess.pixdim, or set "
        "preprocess.resize: fit")
    assert summary.cropped == (keys[0],)
    assert f"the ROI keeps under 50% of 1 image(s) ({keys[0]}): raise preprocess.roi or pixdim" in summary.line()
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["roi_crop_warnings"] == 1 and meta["excluded_reasons"] == {"too small after resampling": 1}


@pytest.mark.parametrize(("setting", "colour", "expected", "reason"), [
    ("auto", (1,), 3, "auto: rgb, 1 of 2 images colour"),
    ("auto", (), 1, "auto: gray, 0 of 2 images colour"),
    ("gray", (0, 1), 1, "gray, 2 of 2 images colour"),
    ("rgb", (), 3, "rgb, 0 of 2 images colour"),
])
def test_channels_are_chosen_for_the_cohort_and_recorded(tmp_path, setting, colour, expected, reason):
    index, split = ingested_pictures(tmp_path, [(60, 40), (50, 50)], colour=colour)
    assert [r["channels"] for r in read_rows(index)] == ["3" if i in colour else "1" for i in range(2)]
    summary = _picture_cache(tmp_path, index, split, channels=setting)
    assert summary.in_channels == expected and f"{expected} channel(s): {reason}" in summary.line()
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert (meta["in_channels"], meta["channels"], meta["channels_reason"]) == (expected, setting, reason)
    images = open_split(tmp_path / "cache", "train").images
    assert images.shape == (2, expected, 64, 64)
    if expected == 3 and colour:
        r, g, b = (float(images[colour[0], c, 32, 32]) for c in range(3))
        assert (r, g, b) == pytest.approx((200 / 255, 120 / 255, 40 / 255), abs=2e-3)  # colour kept, not summed
    if expected == 1 and colour:
        luma = 0.299 * 200 + 0.587 * 120 + 0.114 * 40
        assert float(images[colour[0], 0, 32, 32]) == pytest.approx(luma / 255, abs=2e-3)


def test_a_channels_value_other_than_1_or_3_names_the_series_and_the_fix(tmp_path):
    from pipeline.tables import TableError

    index, split = ingested_pictures(tmp_path, [(40, 30)])
    rows = read_rows(index)
    rows[0]["channels"] = "4"
    write_rows(index, rows, list(rows[0]))
    with pytest.raises(TableError, match=rf"index column 'channels' must be 1 or 3; got '4' for series "
                                         rf"'{rows[0]['series_key']}'\. Re-run ingest"):
        _picture_cache(tmp_path, index, split)


def test_channels_setting_is_checked():
    params = load_params(ROOT / "params.yaml")
    params["preprocess"]["channels"] = "colour"
    with pytest.raises(ConfigError, match=r"'preprocess.channels' must be one of \['auto', 'gray', 'rgb'\]; got 'colour'"):
        PreprocessConfig.from_params(params)
    params["preprocess"].update(channels="auto", resize="stretch")
    with pytest.raises(ConfigError, match=r"'preprocess.resize' must be one of \['spacing', 'fit'\]; got 'stretch'"):
        PreprocessConfig.from_params(params)
