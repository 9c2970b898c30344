"""Planning a volume: slice order by position, spacing checks and policy, the affine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from pipeline.io.deid import file_ref
from pipeline.io.nifti import LPS_TO_RAS
from pipeline.io.pixels import read_planes
from pipeline.io.scan import read_header
from pipeline.io.series import group_series
from pipeline.io.volume_plan import plan_volume
from tests.io.dicom_builders import (
    expected_from_slices,
    image_headers,
    site_packages,
    voxel_world_lps,
    write_ct_series,
)
from tests.io.shipped import MAX_VOXELS


def test_slices_are_ordered_by_position_not_by_name_or_instance_number(tmp_path: Path) -> None:
    info = write_ct_series(tmp_path, 9, intercepts=tuple(-1024.0 + 3 * i for i in range(9)))
    candidates, skipped = group_series(image_headers(tmp_path))
    assert len(candidates) == 1 and not skipped
    outcome = plan_volume(candidates[0], "reject")
    assert outcome.plan is not None
    ordered = [tmp_path / p.path for p in outcome.plan.planes]
    assert ordered == info["paths"]
    volume, _ = read_planes(str(tmp_path), candidates[0].headers, outcome.plan)
    assert volume.shape == (128, 128, 9)
    for index, path in enumerate(info["paths"]):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(volume[:, :, index].T, hu)  # per-slice intercepts applied
    assert volume.dtype == np.int16


def test_an_invalid_orientation_is_recorded_as_the_reason_for_the_fallback(tmp_path: Path) -> None:
    write_ct_series(tmp_path, 4, orientation=(1.0, 0.0, 0.0, 1.0, 0.0, 0.0))  # parallel: not a plane
    candidates, _ = group_series(image_headers(tmp_path))
    outcome = plan_volume(candidates[0], "reject")
    assert outcome.plan is not None
    notes = " | ".join(outcome.plan.notes)
    assert "ImageOrientationPatient missing or not two orthogonal unit vectors" in notes
    assert "no usable orientation: planes kept in stored" in notes
    assert "no ImagePositionPatient" not in notes  # every slice has one


def test_a_missing_slice_is_rejected_or_resampled_and_always_recorded(tmp_path: Path) -> None:
    info = write_ct_series(tmp_path, 8, spacing=2.0, missing=(3,))
    candidate = group_series(image_headers(tmp_path))[0][0]
    rejected = plan_volume(candidate, "reject")
    assert rejected.plan is None
    assert "gap of 4 mm" in rejected.rejected and "about 1 missing slice" in rejected.rejected
    resampled = plan_volume(candidate, "resample")
    assert resampled.plan is not None and resampled.plan.resample is not None
    assert len(resampled.plan.resample) == 8
    assert any("resampled onto 2 mm" in note for note in resampled.plan.notes)
    volume, _ = read_planes(str(tmp_path), candidate.headers, resampled.plan)
    expected_middle = (info["hu"][2] + info["hu"][4]) / 2
    np.testing.assert_allclose(volume[:, :, 3].T, expected_middle, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(volume[:, :, 4].T, info["hu"][4])


def test_the_affine_maps_every_voxel_onto_its_source_pixel_for_oblique_slices(tmp_path: Path) -> None:
    cosines = (0.8660254, 0.5, 0.0, -0.5, 0.8660254, 0.0)
    info = write_ct_series(tmp_path, 5, orientation=cosines, spacing=3.0)
    candidate = group_series(image_headers(tmp_path))[0][0]
    plan = plan_volume(candidate, "reject").plan
    assert plan is not None
    volume, _ = read_planes(str(tmp_path), candidate.headers, plan)
    affine_ras = LPS_TO_RAS @ plan.affine_lps
    expected = expected_from_slices(voxel_world_lps(affine_ras, volume.shape), info["paths"])
    np.testing.assert_array_equal(volume, expected)


def test_enhanced_ct_frames_are_placed_by_their_frame_positions() -> None:
    path = site_packages() / "data_store" / "data" / "eCT_Supplemental.dcm"
    header = read_header(path, path.name, max_voxels=MAX_VOXELS).dicom
    assert header is not None and header.frames == 2 and header.positions is not None
    candidates, _ = group_series({path.name: header})
    plan = plan_volume(candidates[0], "reject").plan
    assert plan is not None
    volume, _ = read_planes(str(path.parent), {path.name: header}, plan)
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    order = np.argsort([np.dot(p, np.cross(header.orientation[:3], header.orientation[3:])) for p in header.positions])
    for index, frame in enumerate(order):
        item = ds.PerFrameFunctionalGroupsSequence[frame]
        if "PixelValueTransformationSequence" not in item:
            item = ds.SharedFunctionalGroupsSequence[0]
        group = item.PixelValueTransformationSequence[0]
        hu = frames[frame] * float(group.RescaleSlope) + float(group.RescaleIntercept)
        np.testing.assert_array_equal(volume[:, :, index].T, hu)


def test_a_second_object_at_the_same_position_is_skipped_naming_the_kept_file(tmp_path: Path) -> None:
    info = write_ct_series(tmp_path, 5)
    ds = pydicom.dcmread(info["paths"][2])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.999"  # another object, same place
    ds.save_as(tmp_path / "again.dcm")
    candidates, skipped = group_series(image_headers(tmp_path))
    assert len(candidates) == 1 and not skipped
    outcome = plan_volume(candidates[0], "reject")
    assert outcome.plan is not None and len(outcome.plan.planes) == 5
    ((path, reason),) = outcome.skipped.items()
    kept = {"again.dcm", info["paths"][2].name} - {path}
    assert reason.startswith("duplicate slice position ") and reason.endswith(f" along the normal; kept {file_ref(kept.pop())}")


def test_the_plain_python_cross_product_and_median_give_numpys_bits() -> None:
    from pipeline.io.volume_plan import _cross, _median

    rng = np.random.default_rng(1)
    for _ in range(5000):
        a, b = rng.normal(size=3) * 10.0 ** rng.integers(-3, 4), rng.normal(size=3)
        assert _cross(a, b).tobytes() == np.cross(a, b).tobytes()
        values = rng.normal(size=int(rng.integers(1, 12))) * 10.0 ** rng.integers(-3, 4)
        assert _median(values) == float(np.median(values))
    assert np.isnan(_median(np.array([1.0, np.nan, 2.0])))
