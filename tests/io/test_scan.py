from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipeline.io.scan import DependencyError, environment_error, read_header, read_headers, walk
from pipeline.io.series import Plane, VolumePlan, read_planes
from tests.io.dicom_builders import PYDICOM_FILES, site_packages, truncate
from tests.io.peak_rss import run_python


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("CT_small.dcm", "dicom", ""),
        ("MR_small_jpeg_ls_lossless.dcm", "dicom", ""),
        ("rtstruct.dcm", "not_image", "RT Structure Set"),
        ("rtplan.dcm", "not_image", "RT Plan"),
        ("test-SR.dcm", "not_image", "structured report"),
        ("rtdose.dcm", "not_image", "RT Dose"),
        ("waveform_ecg.dcm", "not_image", "waveform"),
        ("MR_truncated.dcm", "quarantined", "truncated"),
        ("README.txt", "quarantined", "not DICOM or NIfTI"),
        ("zipMR.gz", "quarantined", "not DICOM or NIfTI"),
    ],
)
def test_real_files_are_classified(tmp_path: Path, name: str, kind: str, reason: str) -> None:
    copy = tmp_path / name
    shutil.copyfile(PYDICOM_FILES / name, copy)
    record = read_header(copy, name)
    assert record.kind == kind
    assert reason in record.reason


def test_dicomdir_and_nifti_are_classified(tmp_path: Path) -> None:
    shutil.copyfile(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    shutil.copyfile(site_packages() / "nibabel" / "tests" / "data" / "anatomical.nii", tmp_path / "a.nii")
    assert read_header(tmp_path / "DICOMDIR", "DICOMDIR").kind == "not_image"
    nifti = read_header(tmp_path / "a.nii", "a.nii")
    assert nifti.kind == "nifti" and nifti.nifti is not None and nifti.nifti.shape == (33, 41, 25)


def test_a_truncated_copy_of_a_good_file_is_quarantined(tmp_path: Path) -> None:
    copy = tmp_path / "cut.dcm"
    shutil.copyfile(PYDICOM_FILES / "CT_small.dcm", copy)
    truncate(copy, 0.5)
    record = read_header(copy, "cut.dcm")
    assert record.kind == "quarantined"
    assert "truncated" in record.reason


def test_header_scan_in_a_pool_matches_the_serial_scan(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "README.txt", "JPEG2000.dcm", "MR_small_RLE.dcm",
                 "emri_small.dcm" if (PYDICOM_FILES / "emri_small.dcm").exists() else "MR_small_expb.dcm",
                 "MR_small_implicit.dcm", "MR_small_bigendian.dcm"):
        shutil.copyfile(PYDICOM_FILES / name, tmp_path / name)
    paths = walk(tmp_path)
    serial = read_headers(tmp_path, paths, workers=1)
    pooled = read_headers(tmp_path, paths, workers=2)
    assert [(r.path, r.kind, r.reason) for r in serial] == [(r.path, r.kind, r.reason) for r in pooled]


def test_walk_lists_every_file_including_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.dcm").write_bytes(b"1")
    (tmp_path / ".DS_Store").write_bytes(b"1")
    assert walk(tmp_path) == [".DS_Store", "a/b/x.dcm"]


def _native_files() -> list[Path]:
    found = []
    for folder in (PYDICOM_FILES, site_packages() / "data_store" / "data"):
        for path in sorted(folder.glob("*.dcm")):
            record = read_header(path, path.name)
            header = record.dicom
            if header is not None and header.native is not None and header.photometric != "PALETTE COLOR" and not header.modality_lut:
                found.append(path)
    return found


def test_direct_reads_of_uncompressed_pixels_equal_pydicom() -> None:
    """The offset fast path must return exactly pydicom's stored values, every encoding."""
    files = _native_files()
    assert len(files) >= 10
    for path in files:
        header = read_header(path, path.name).dicom
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
    header = read_header(path, path.name).dicom
    assert header is not None and header.modality_lut
    plan = VolumePlan([Plane(path.name, 0, None, None, None, None)], np.eye(4), None, False)
    ours, notes = read_planes(str(path.parent), {path.name: header}, plan)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(ours[:, :, 0].T, apply_modality_lut(ds.pixel_array, ds))
    assert "Modality LUT Sequence applied" in notes


def _special_folder(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    (raw / "in").mkdir(parents=True)
    shutil.copyfile(PYDICOM_FILES / "CT_small.dcm", raw / "in" / "ct.dcm")
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0")
    os.symlink(outside, raw / "in" / "to_outside.dcm")
    os.symlink(raw / "in" / "ct.dcm", raw / "in" / "to_inside.dcm")
    os.symlink(tmp_path / "nothing", raw / "in" / "broken.dcm")
    os.symlink(tmp_path, raw / "in" / "folder_outside")
    os.mkfifo(raw / "in" / "pipe.dcm")
    return raw


def test_every_non_folder_entry_is_walked_and_only_files_inside_are_opened(tmp_path: Path) -> None:
    raw = _special_folder(tmp_path)
    files = walk(raw)
    assert files == sorted(
        f"in/{n}" for n in ("ct.dcm", "to_outside.dcm", "to_inside.dcm", "broken.dcm", "folder_outside", "pipe.dcm")
    )
    records = {r.path: r for r in read_headers(raw, files, workers=1)}  # a FIFO opened would block here
    assert records["in/ct.dcm"].kind == records["in/to_inside.dcm"].kind == "dicom"
    assert "outside the raw folder; not followed" in records["in/to_outside.dcm"].reason
    assert "outside the raw folder" in records["in/folder_outside"].reason
    assert "broken symbolic link" in records["in/broken.dcm"].reason
    assert records["in/pipe.dcm"].reason == "not a regular file: a FIFO (named pipe); never opened"
    assert all(records[p].kind == "quarantined" for p in files if p.split("/")[1] not in ("ct.dcm", "to_inside.dcm"))


def test_a_missing_module_stops_the_scan_instead_of_quarantining_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(9):  # >= 8 files: read in the process pool (forked, so it inherits the patch)
        shutil.copyfile(PYDICOM_FILES / "CT_small.dcm", raw / f"{i}.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)  # what an interpreter without pydicom does
    for workers in (1, 2):
        with pytest.raises(DependencyError, match=r"ModuleNotFoundError: .*pydicom.* under the interpreter '.*python.*'.*\.venv.*make setup"):
            read_headers(raw, walk(raw), workers=workers)


def test_an_import_error_behind_a_pixel_error_is_an_environment_error() -> None:
    from pipeline.io.series import PixelError

    try:
        try:
            raise ModuleNotFoundError("No module named 'pylibjpeg'")
        except ImportError as cause:
            raise PixelError("a.dcm", "pixel data cannot be decoded") from cause
    except PixelError as error:
        found = environment_error(error)
    assert isinstance(found, DependencyError) and "pylibjpeg" in str(found)
    assert environment_error(ValueError("bad file")) is None
HOSTILE_PEAK_BYTES = 400 * 2**20
"""Peak RSS allowed while one hostile header is classified (imports take about 150 MB)."""


def _classify_in_subprocess(path: Path, max_voxels: int = 2**31) -> tuple[str, str, float]:
    code = (
        "import json; from pipeline.io.scan import read_header; "
        f"r = read_header({str(path)!r}, 'f', max_voxels={max_voxels}); print(json.dumps([r.kind, r.reason]))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    kind, reason = json.loads(done.stdout.strip().splitlines()[-1])
    return kind, reason, done.peak_bytes


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
    kind, reason, peak = _classify_in_subprocess(path, max_voxels=2**62)
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
    record = read_header(tmp_path / "bomb.dcm", "bomb.dcm")
    assert record.kind == "quarantined"
    assert "decompression bomb" in record.reason and "536,870,912 bytes" in record.reason


def _deflated_bomb(path: Path, inflated_bytes: int) -> None:
    """A Deflated Explicit VR file whose deflated dataset is ``inflated_bytes`` of zeros."""
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    with path.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(pydicom.filebase.DicomFileLike(handle), meta)
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        chunk = bytes(2**20)
        for _ in range(inflated_bytes // len(chunk)):
            handle.write(deflater.compress(chunk))
        handle.write(deflater.flush())


def test_a_deflated_dataset_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    _deflated_bomb(tmp_path / "dfl.dcm", 128 * 2**20)
    assert (tmp_path / "dfl.dcm").stat().st_size < 200_000
    kind, reason, peak = _classify_in_subprocess(tmp_path / "dfl.dcm")
    assert kind == "quarantined" and "decompression bomb: the deflated dataset" in reason
    assert peak < HOSTILE_PEAK_BYTES
    assert read_header(PYDICOM_FILES / "image_dfl.dcm", "image_dfl.dcm").kind == "dicom"
