"""Pixel reading: the direct fast path and pydicom decoding give the stored values, rescaled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipeline.errors import PipelineInputError
from pipeline.io.pixels import PixelError, read_planes
from pipeline.io.scan import read_header
from pipeline.io.series import Plane
from pipeline.io.volume_plan import VolumePlan
from tests.io.dicom_builders import PYDICOM_FILES, site_packages
from tests.io.shipped import MAX_VOXELS


def _native_files() -> list[Path]:
    found = []
    for folder in (PYDICOM_FILES, site_packages() / "data_store" / "data"):
        for path in sorted(folder.glob("*.dcm")):
            record = read_header(path, path.name, max_voxels=MAX_VOXELS)
            header = record.dicom
            if header is not None and header.native is not None and header.photometric != "PALETTE COLOR" and not header.modality_lut:
                found.append(path)
    return found


def test_direct_reads_of_uncompressed_pixels_equal_pydicom() -> None:
    """The offset fast path must return exactly pydicom's stored values, every encoding."""
    files = _native_files()
    assert len(files) >= 10
    for path in files:
        header = read_header(path, path.name, max_voxels=MAX_VOXELS).dicom
        assert header is not None
        plane = Plane(path.name, 0, None, None, None, None)
        planes = [Plane(path.name, f, None, None, None, None) for f in range(header.frames)] if header.frames > 1 else [plane]
        plan = VolumePlan(planes, np.eye(4), None, False)
        ours, _ = read_planes(str(path.parent), {path.name: header}, plan)
        expected = pydicom.dcmread(path).pixel_array
        if header.photometric == "MONOCHROME1":
            expected = expected.max().astype(np.int64) + expected.min() - expected.astype(np.int64)
        expected = expected.reshape(header.frames, header.rows, header.cols)
        np.testing.assert_array_equal(ours.transpose(2, 1, 0), expected, err_msg=path.name)


def test_a_modality_lut_sequence_is_applied_like_pydicom() -> None:
    from pydicom.pixels import apply_modality_lut

    path = site_packages() / "data_store" / "data" / "mlut_18.dcm"
    header = read_header(path, path.name, max_voxels=MAX_VOXELS).dicom
    assert header is not None and header.modality_lut
    plan = VolumePlan([Plane(path.name, 0, None, None, None, None)], np.eye(4), None, False)
    ours, notes = read_planes(str(path.parent), {path.name: header}, plan)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(ours[:, :, 0].T, apply_modality_lut(ds.pixel_array, ds))
    assert "Modality LUT Sequence applied" in notes


def test_a_decoder_panic_quarantines_the_file_instead_of_ending_the_stage(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small_RLE.dcm")
    ds.Columns = 15  # the Rust RLE decoder indexes past its buffer and panics (pyo3 PanicException)
    ds.save_as(tmp_path / "rle.dcm")
    record = read_header(tmp_path / "rle.dcm", "rle.dcm", max_voxels=MAX_VOXELS)
    assert record.kind == "dicom"
    plan = VolumePlan([Plane("rle.dcm", 0, None, None, None, None)], np.eye(4), None, True)
    with pytest.raises(PixelError, match=r"^rle.dcm: pixel data cannot be decoded: PanicException: index out of bounds") as caught:
        read_planes(str(tmp_path), {"rle.dcm": record.dicom}, plan)
    assert isinstance(caught.value, PipelineInputError)  # the file's fault, never a bug of ours
    assert caught.value.path == "rle.dcm" and caught.value.reason.startswith("pixel data cannot be decoded")



def test_a_file_cut_between_the_header_scan_and_the_pixel_read_is_reported_by_name(tmp_path: Path) -> None:
    from pipeline.io.build_volume import BuildJob, build_volume
    from pipeline.io.series import group_series
    from pipeline.io.volume_plan import plan_volume
    from tests.io.dicom_builders import image_headers, truncate, write_ct_series

    info = write_ct_series(tmp_path / "raw", 6, seed=3)
    candidates, _ = group_series(image_headers(tmp_path / "raw"))
    plan = plan_volume(candidates[0], "reject").plan
    assert plan is not None
    cut = info["paths"][2]
    truncate(cut, 0.5)  # after the scan found its pixels at an offset the file no longer reaches
    result = build_volume(BuildJob("k", str(tmp_path / "raw"), str(tmp_path / "out.nii"), plan, candidates[0].headers))
    assert result.failed_path == cut.name
    offset = candidates[0].headers[cut.name].native[0]  # type: ignore[index]
    left = (cut.stat().st_size - offset) // 2
    assert result.failure == f"pixel data cannot be decoded: ValueError: file holds {left} pixels, the header needs 16384"
    assert not (tmp_path / "out.nii").exists()


def test_integer_rescale_into_int16_equals_exact_integer_arithmetic_for_every_stored_type() -> None:
    from pipeline.io.pixels import _rescale_into_int16

    rng = np.random.default_rng(0)
    cases = 0
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        for low, high in ((info.min, info.max), (0, 100), (max(info.min, -3000), min(info.max, 3000)), (40000, 60000)):
            if low < info.min or high > info.max:
                continue
            stored = rng.integers(low, high, size=(7, 9), endpoint=True).astype(dtype)
            for slope, intercept in ((1.0, 0.0), (1.0, -1024.0), (1.0, -40000.0), (1.0, 40000.0), (2.0, -1024.0), (None, None)):
                dest = np.full((9, 7), 123, dtype=np.int16).T[::-1]  # a strided destination, as a laid-out volume gives
                exact = stored.astype(np.int64) * int(slope or 1) + int(intercept or 0)
                fits = -32768 <= exact.min() and exact.max() <= 32767
                assert _rescale_into_int16(dest, stored, slope, intercept) == fits
                np.testing.assert_array_equal(dest, exact if fits else 123)
                cases += 1
    assert cases > 60


def test_colour_keeps_three_channels_and_a_palette_is_mapped_through_its_table() -> None:
    from pydicom.pixels import apply_color_lut

    for name in ("SC_rgb_dcmtk_+eb+cr.dcm", "examples_palette.dcm"):
        path = PYDICOM_FILES / name
        header = read_header(path, path.name, max_voxels=MAX_VOXELS).dicom
        assert header is not None
        plan = VolumePlan([Plane(path.name, 0, None, None, None, None)], np.eye(4), None, True)
        ours, notes = read_planes(str(path.parent), {path.name: header}, plan)
        ds = pydicom.dcmread(path)
        expected = apply_color_lut(ds.pixel_array, ds) if name == "examples_palette.dcm" else ds.pixel_array
        assert ours.shape == (header.cols, header.rows, 1, 3)
        np.testing.assert_array_equal(ours[:, :, 0, :], expected.transpose(1, 0, 2))
        assert ("PALETTE COLOR mapped to RGB through its lookup table" in notes) == (name == "examples_palette.dcm")
