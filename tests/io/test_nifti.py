from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError
from pipeline.io.nifti import NiftiShapeError, NiftiSizeError, load_nifti
from pipeline.io.nifti_write import write_canonical
from pipeline.io.scan import read_header
from tests.io.dicom_builders import site_packages
from tests.io.peak_rss import run_python
from tests.io.shipped import MAX_VOXELS


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
    with pytest.raises(NiftiShapeError, match=r"image must be 2D or 3D; got shape 17x21x3x20") as caught:
        load_nifti(path)
    assert isinstance(caught.value, PipelineInputError) and issubclass(NiftiSizeError, NiftiShapeError)


def _write_declared(path: Path, shape: tuple[int, ...], dtype: type, data_bytes: int) -> None:
    """A NIfTI-1 header declaring ``shape`` followed by ``data_bytes`` zero bytes (gzip when .gz)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header.binaryblock + b"\x00" * 4)
        chunk = bytes(min(data_bytes, 2**20))
        left = data_bytes
        while left > 0:
            handle.write(chunk[:left])
            left -= len(chunk)


def test_a_416_byte_header_declaring_4_gib_is_refused_before_any_allocation(tmp_path: Path) -> None:
    path = tmp_path / "liar.nii"
    _write_declared(path, (1024, 1024, 1024), np.int32, 64)
    assert path.stat().st_size == 416
    record = read_header(path, "liar.nii", max_voxels=MAX_VOXELS)
    assert record.kind == "quarantined"
    assert "shape 1024x1024x1024 of int32 = 4,294,967,296 bytes from byte 352; the file holds 416 bytes" in record.reason
    done = run_python(
        "from pipeline.io.nifti import NiftiSizeError, load_nifti\n"
        f"try:\n    load_nifti({str(path)!r})\nexcept NiftiSizeError as error:\n    print('refused:', error)"
    )
    assert "refused: truncated" in done.stdout, done.stderr
    assert done.peak_bytes < 400 * 2**20


def test_a_gzip_stream_longer_than_its_header_is_refused_without_inflating_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nii.gz"
    _write_declared(path, (16, 16, 16), np.int16, 16**3 * 2 + 512 * 2**20)
    assert path.stat().st_size < 1_000_000
    assert read_header(path, "bomb.nii.gz", max_voxels=MAX_VOXELS).kind == "nifti"  # the header alone is fine
    done = run_python(
        "from pipeline.io.nifti import NiftiSizeError, load_nifti\n"
        f"try:\n    load_nifti({str(path)!r})\nexcept NiftiSizeError as error:\n    print('refused:', error)"
    )
    assert "refused: the gzip stream expands beyond the declared shape 16x16x16 of int16 = 8,192 bytes" in done.stdout
    assert done.peak_bytes < 400 * 2**20


def test_a_gzip_bomb_is_quarantined_from_its_header_by_max_voxels_or_its_ratio(tmp_path: Path) -> None:
    path = tmp_path / "zeros.nii.gz"
    _write_declared(path, (512, 512, 512), np.uint8, 512**3)  # 128 MiB of zeros in about 130 KB
    small = read_header(path, "zeros.nii.gz", max_voxels=2**20)
    assert small.kind == "quarantined"
    assert "shape 512x512x512 of uint8 = 134,217,728 bytes (134,217,728 voxels); ingest.max_voxels is 1,048,576" in small.reason
    default = read_header(path, "zeros.nii.gz", max_voxels=MAX_VOXELS)
    assert default.kind == "quarantined" and "decompression bomb" in default.reason
    with pytest.raises(NiftiSizeError, match=r"decompression bomb: the NIfTI header declares shape 512x512x512"):
        load_nifti(path)


def test_a_truncated_gzip_volume_is_refused_with_the_bytes_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "short.nii.gz"
    _write_declared(path, (32, 32, 32), np.int16, 1000)
    with pytest.raises(NiftiSizeError, match=r"truncated: .* of int16 = 65,536 bytes; the data holds 1,000 bytes"):
        load_nifti(path)


def test_scaled_big_endian_data_reads_as_nibabel_reads_it(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=">i2").reshape(4, 5, 6)
    image = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    image.header.set_slope_inter(0.5, -10)
    nib.save(image, tmp_path / "be.nii.gz")
    array, affine = load_nifti(tmp_path / "be.nii.gz")
    reference = nib.load(tmp_path / "be.nii.gz")
    np.testing.assert_allclose(array, reference.get_fdata())
    np.testing.assert_array_equal(affine, reference.affine)


def test_written_nii_is_the_file_nibabel_save_writes(tmp_path: Path) -> None:
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) - 100
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    write_canonical(data, affine, tmp_path / "ours.nii")
    reference = nib.Nifti1Image(np.asfortranarray(data), affine, nib.Nifti1Header())
    reference.header.set_data_dtype(np.int16)
    reference.header.set_xyzt_units("mm")
    reference.set_qform(affine, code=1)
    reference.set_sform(affine, code=1)
    nib.save(reference, tmp_path / "nibabel.nii")
    assert (tmp_path / "ours.nii").read_bytes() == (tmp_path / "nibabel.nii").read_bytes()


def test_gzip_bytes_do_not_depend_on_threads_or_file_name_and_monai_reads_both(tmp_path: Path) -> None:
    from monai.transforms import LoadImage

    data = np.random.default_rng(0).integers(-1000, 2000, size=(64, 48, 40)).astype(np.int16)
    affine = np.diag([-0.7, 0.7, 1.25, 1.0])
    write_canonical(data, affine, tmp_path / "a.nii.gz", threads=1)
    write_canonical(data, affine, tmp_path / "other-name.nii.gz", threads=4)
    write_canonical(data, affine, tmp_path / "a.nii")
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "other-name.nii.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.nii.gz").read_bytes()) == (tmp_path / "a.nii").read_bytes()
    expected = np.asanyarray(nib.load(tmp_path / "a.nii").dataobj)
    for name in ("a.nii", "a.nii.gz"):
        loaded = LoadImage(image_only=True)(str(tmp_path / name))
        np.testing.assert_array_equal(np.asarray(loaded), expected)


def test_a_volume_filled_in_its_canonical_layout_is_written_byte_for_byte_as_a_plain_one_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import itertools

    from pipeline.io import nifti_write as nifti

    values = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    copies: list[bool] = []
    original = np.asfortranarray

    def watched(array: np.ndarray) -> np.ndarray:
        result = original(array)
        copies.append(not np.shares_memory(result, array))
        return result

    monkeypatch.setattr(nifti.np, "asfortranarray", watched)
    checked = 0
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = np.eye(3)[:, order] * np.array(signs) * np.array([0.7, 1.1, 2.5])
            laid_out = nifti.canonical_layout(values.shape, affine, np.int16)
            laid_out[...] = values
            write_canonical(values, affine, tmp_path / "plain.nii")
            write_canonical(laid_out, affine, tmp_path / "laid_out.nii")
            assert copies[-1] is False  # the laid-out volume went to the file as it lies
            assert (tmp_path / "plain.nii").read_bytes() == (tmp_path / "laid_out.nii").read_bytes()
            checked += 1
    assert checked == 48
