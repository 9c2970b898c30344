"""One DICOM image header: geometry per frame, unusable geometry named, native pixel layout."""

from __future__ import annotations

import pydicom
import pytest

from pipeline.io.dicom_header import geometry_problem
from pipeline.io.scan import read_header
from tests.io.dicom_builders import PYDICOM_FILES, site_packages
from tests.io.shipped import MAX_VOXELS


@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("PixelSpacing", None, ""),
        ("PixelSpacing", [0.5, 0.5], ""),
        ("PixelSpacing", [0.5], "PixelSpacing must be 2 finite number(s); got a value that is not"),
        ("PixelSpacing", [0.5, 0.0], "PixelSpacing must be positive; got a value <= 0"),
        ("SliceThickness", -1.0, "SliceThickness must be positive; got a value <= 0"),
        ("ImagePositionPatient", [0.0, 0.0, 0.0], ""),
        ("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.0, 1.0], "ImageOrientationPatient must be 6 finite number(s)"),
    ],
)
def test_a_present_but_unusable_geometry_value_is_named(keyword: str, value: object, problem: str) -> None:
    ds = pydicom.Dataset()
    if value is not None:
        setattr(ds, keyword, value)
    assert geometry_problem(ds).startswith(problem) and bool(geometry_problem(ds)) == bool(problem)


def test_an_enhanced_ct_gets_positions_and_rescale_values_per_frame() -> None:
    path = site_packages() / "data_store" / "data" / "eCT_Supplemental.dcm"
    header = read_header(path, path.name, max_voxels=MAX_VOXELS).dicom
    assert header is not None and header.frames == 2
    ds = pydicom.dcmread(path)
    expected = [tuple(float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient)
                for item in ds.PerFrameFunctionalGroupsSequence]
    assert header.positions == expected and len(header.slopes) == len(header.intercepts) == 2


def test_uncompressed_grey_pixels_get_their_offset_and_dtype_and_compressed_ones_none() -> None:
    plain = read_header(PYDICOM_FILES / "CT_small.dcm", "CT_small.dcm", max_voxels=MAX_VOXELS).dicom
    big_endian = read_header(PYDICOM_FILES / "MR_small_bigendian.dcm", "MR_small_bigendian.dcm",
                             max_voxels=MAX_VOXELS).dicom
    compressed = read_header(PYDICOM_FILES / "JPEG2000.dcm", "JPEG2000.dcm", max_voxels=MAX_VOXELS).dicom
    assert plain is not None and big_endian is not None and compressed is not None
    offset, dtype = plain.native  # type: ignore[misc]
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    assert dtype == "<i2" and (PYDICOM_FILES / "CT_small.dcm").read_bytes()[offset : offset + 32] == ds.PixelData[:32]
    assert big_endian.native is not None and big_endian.native[1].startswith(">")
    assert compressed.native is None
