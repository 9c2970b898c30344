"""The localisation check: world positions of map voxels, the lesion's reach, the chance rate."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError
from pipeline.localisation import LesionTruth, read_lesion_truth, score_case, summarise, voxel_points_lps
from pipeline.transforms import deterministic_transforms


def test_voxel_points_are_the_affine_applied_to_each_index_in_lps() -> None:
    affine = np.array([[2.0, 0, 0, 10], [0, 3.0, 0, -20], [0, 0, 4.0, 5], [0, 0, 0, 1]])
    points = voxel_points_lps((2, 3, 4), affine).reshape(2, 3, 4, 3)
    assert points[1, 2, 3].tolist() == [-(2 + 10), -(6 - 20), 12 + 5]  # RAS x, y negated
    assert points[0, 0, 0].tolist() == [-10, 20, 5]


def test_a_lesion_reaches_its_margin_and_no_further() -> None:
    lesion = LesionTruth((0.0, 0.0, 0.0), (5.0, 5.0, 5.0))
    points = np.array([[14.9, 0, 0], [0, -15.1, 0], [0, 0, 0], [8.0, 8.0, 8.0]])
    assert lesion.reaches(points, 10.0).tolist() == [True, False, True, True]
    assert lesion.reaches(points, 0.0).tolist() == [False, False, True, False]


def _ct_with_blob(path: Path, blob_lps: tuple[float, float, float], radius_mm: float) -> None:
    """A 128 x 128 x 40 CT in RAS at 2.5 x 2.5 x 5 mm: a soft-tissue body in air, a 300 HU sphere."""
    affine = np.diag([2.5, 2.5, 5.0, 1.0])
    affine[:3, 3] = (-160.0, -150.0, -90.0)
    index = np.indices((128, 128, 40), dtype=np.float64).reshape(3, -1).T
    ras = index @ affine[:3, :3].T + affine[:3, 3]
    volume = np.full(len(ras), -1000.0)
    volume[(ras[:, 0] / 140) ** 2 + ((ras[:, 1] + 10) / 100) ** 2 <= 1] = 40.0
    lps = ras * [-1, -1, 1]
    volume[((lps - blob_lps) ** 2).sum(axis=1) <= radius_mm**2] = 300.0
    nib.save(nib.Nifti1Image(volume.reshape(128, 128, 40).astype(np.int16), affine), str(path))


def test_the_peak_of_a_map_of_the_prepared_image_lands_on_the_blob_after_resampling_and_crop(tmp_path: Path) -> None:
    blob = (-40.0, 30.0, 10.0)  # LPS: right of centre, posterior, above
    _ct_with_blob(tmp_path / "ct.nii", blob, 10.0)
    prepare = deterministic_transforms(
        spatial_dims=3, pixdim=(5.0, 5.0, 6.25), roi=(64, 64, 32), hu_window=(-1000.0, 400.0), modality="CT",
        in_channels=1, resize="spacing", intensity="ct_window", value_range=None, crop_foreground=True,
    )
    out = prepare({"image": str(tmp_path / "ct.nii")})["image"]
    image, affine = np.asarray(out), np.asarray(out.affine)
    saliency = image[0] ** 8  # brightest on the blob, as a map that found it would be

    hit = score_case(image, saliency, affine, LesionTruth(blob, (10.0, 10.0, 10.0)), margin_mm=0.0)
    assert hit.on_lesion and np.allclose(hit.peak_lps, blob, atol=6.5)
    assert 0 < hit.chance < 0.01  # a 10 mm sphere is a sliver of the body
    mirrored = (-blob[0], blob[1], blob[2])  # the other side: a left-right flip would land here
    miss = score_case(image, saliency, affine, LesionTruth(mirrored, (10.0, 10.0, 10.0)), margin_mm=10.0)
    assert not miss.on_lesion and 0 < miss.chance < 0.05
    assert summarise([hit, miss]) == (2, 0.5, pytest.approx((hit.chance + miss.chance) / 2))
    assert not hit.flat and not miss.flat
    # A flat map has no peak: it is a miss even for a lesion covering the whole grid (whose
    # first voxel, where argmax of a flat map points, it would otherwise "find").
    everywhere = LesionTruth(blob, (500.0, 500.0, 500.0))
    flat = score_case(image, np.zeros_like(saliency), affine, everywhere)
    assert flat.flat and not flat.on_lesion and flat.peak_lps is None and flat.chance == 1.0
    assert summarise([]) == (0, None, None)


def test_lesion_files_are_keyed_by_pseudonym_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "lesions.csv"
    good.write_text("patient_id,tissue,centre_x_mm,centre_y_mm,centre_z_mm,semi_x_mm,semi_y_mm,semi_z_mm\n"
                    "MRN1,lung,1,2,3,4,5,6\n")
    assert read_lesion_truth(good, lambda p: "~" + p) == {"~MRN1": LesionTruth((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))}
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,centre_x_mm,centre_y_mm,centre_z_mm,semi_x_mm,semi_y_mm,semi_z_mm\nMRN1,1,2,x,4,5,6\n")
    with pytest.raises(PipelineInputError, match=r"line 2 must hold finite centre coordinates.*'x'"):
        read_lesion_truth(bad, str)
    short = tmp_path / "short.csv"
    short.write_text("patient_id,centre_x_mm\nMRN1,1\n")
    with pytest.raises(PipelineInputError, match=r"must have the columns .* are missing"):
        read_lesion_truth(short, str)
