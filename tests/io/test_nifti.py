from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.io.nifti import NiftiShapeError, load_nifti, write_canonical
from tests.io.dicom_builders import site_packages


def _world(affine: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(index + (0,) * (3 - len(index)), dtype=float) + affine[:3, 3]


def test_non_ras_input_becomes_canonical_and_keeps_values_at_the_same_place(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    lps_like = np.array([[-2.0, 0, 0, 10], [0, 0, 3.0, -5], [0, -1.5, 0, 7], [0, 0, 0, 1]])  # axes point L, I, A
    source = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, lps_like), source)
    array, affine = load_nifti(source)
    shape, spacing = write_canonical(array, affine, tmp_path / "out.nii.gz")
    out = nib.load(tmp_path / "out.nii.gz")
    assert nib.aff2axcodes(out.affine) == ("R", "A", "S")
    assert shape == (4, 6, 5) and spacing == (2.0, 3.0, 1.5)
    values = np.asanyarray(out.dataobj)
    assert values.dtype == np.int16
    inverse = np.linalg.inv(out.affine)
    for index in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        target = np.rint(inverse @ np.append(_world(lps_like, index), 1.0))[:3].astype(int)
        assert values[tuple(target)] == data[index]


def test_two_dimensional_images_stay_two_dimensional(tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    shape, spacing = write_canonical(image, np.diag([0.5, 0.5, 1.0, 1.0]), tmp_path / "flat.nii.gz")
    assert shape == (3, 4) and spacing == (0.5, 0.5)
    loaded = nib.load(tmp_path / "flat.nii.gz")
    assert loaded.shape == (3, 4)
    np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), image)


def test_no_free_text_from_the_input_header_is_copied(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((3, 3, 3), dtype=np.int16), np.eye(4))
    image.header["descrip"] = b"Doe^Jane 1951"
    nib.save(image, tmp_path / "in.nii")
    array, affine = load_nifti(tmp_path / "in.nii")
    write_canonical(array, affine, tmp_path / "out.nii.gz")
    assert nib.load(tmp_path / "out.nii.gz").header["descrip"].tobytes().strip(b"\x00") == b""


def test_a_four_dimensional_series_is_refused_with_its_shape() -> None:
    path = site_packages() / "nibabel" / "tests" / "data" / "functional.nii"
    with pytest.raises(NiftiShapeError, match=r"image must be 2D or 3D; got shape 17x21x3x20"):
        load_nifti(path)
