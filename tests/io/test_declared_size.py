"""A header's declared image size against ingest.max_voxels and the bytes the file holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from pipeline.io.scan import read_header
from tests.io.dicom_builders import PYDICOM_FILES
from tests.io.peak_rss import HOSTILE_PEAK_BYTES, classify_in_subprocess
from tests.io.shipped import MAX_VOXELS


@pytest.mark.parametrize(
    ("name", "frames", "words"),
    [
        ("CT_small.dcm", 999_999_999, "NumberOfFrames 999999999"),
        ("CT_small.dcm", 150_000_000, "NumberOfFrames 150000000"),
        ("JPEG2000.dcm", 150_000_000, "150,000,000 frames"),
    ],
)
def test_a_header_declaring_absurd_frames_is_quarantined_within_bounded_memory(
    tmp_path: Path, name: str, frames: int, words: str
) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / name)
    ds.NumberOfFrames = frames
    path = tmp_path / name
    ds.save_as(path)
    assert path.stat().st_size < 40_000
    # No voxel limit: the bytes in the file alone must stop it.
    kind, reason, peak = classify_in_subprocess(path, max_voxels=2**62)
    assert kind == "quarantined"
    assert words in reason and "truncated" in reason
    assert peak < HOSTILE_PEAK_BYTES


def test_rows_and_columns_past_the_file_are_quarantined_with_the_declared_size(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.Rows, ds.Columns = 65535, 65535
    ds.save_as(tmp_path / "wide.dcm")
    record = read_header(tmp_path / "wide.dcm", "wide.dcm", max_voxels=2**33)
    assert record.kind == "quarantined"
    assert "Rows 65535 x Columns 65535 x NumberOfFrames 1 x 1 samples x 16 bits = 8,589,672,450 bytes" in record.reason


def test_a_file_declaring_more_than_max_voxels_is_quarantined_from_its_header(tmp_path: Path) -> None:
    shutil.copyfile(PYDICOM_FILES / "CT_small.dcm", tmp_path / "ct.dcm")
    record = read_header(tmp_path / "ct.dcm", "ct.dcm", max_voxels=10_000)
    assert record.kind == "quarantined"
    assert "Rows 128 x Columns 128 x NumberOfFrames 1 = 16,384 voxels; ingest.max_voxels is 10,000" in record.reason
    assert read_header(tmp_path / "ct.dcm", "ct.dcm", max_voxels=16_384).kind == "dicom"


def test_a_compressed_image_expanding_past_the_ratio_limit_is_quarantined(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "JPEG2000.dcm")
    ds.Rows, ds.Columns = 16384, 16384  # 512 MiB decoded from a few hundred bytes
    ds.save_as(tmp_path / "bomb.dcm")
    record = read_header(tmp_path / "bomb.dcm", "bomb.dcm", max_voxels=MAX_VOXELS)
    assert record.kind == "quarantined"
    assert "decompression bomb" in record.reason and "536,870,912 bytes" in record.reason
