"""Header reading and classification: every file one record, of one kind, with its reason."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pipeline.errors import PipelineInputError
from pipeline.io.failures import DependencyError
from pipeline.io.scan import ValueSharing, read_header, read_headers
from pipeline.io.tree import walk
from tests.io.dicom_builders import PYDICOM_FILES, site_packages, truncate, write_ct_series
from tests.io.shipped import MAX_VOXELS


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("CT_small.dcm", "dicom", ""),
        ("MR_small_jpeg_ls_lossless.dcm", "dicom", ""),
        ("rtstruct.dcm", "not_image", "not an image: RT Structure Set"),
        ("rtplan.dcm", "not_image", "not an image: RT Plan"),
        ("test-SR.dcm", "not_image", "not an image: structured report or key object selection"),
        ("rtdose.dcm", "not_image", "not an image: RT Dose (dose grid, not an image of the patient)"),
        ("waveform_ecg.dcm", "not_image", "not an image: waveform"),
        ("MR_truncated.dcm", "quarantined", "truncated: the header declares Rows 64 x Columns 64 x NumberOfFrames 1 "
                                            "x 1 samples x 16 bits = 8,192 bytes; Pixel Data holds 8,130"),
        ("README.txt", "quarantined", "not DICOM or NIfTI (no DICOM preamble or SOP Class)"),
        ("zipMR.gz", "quarantined", "not DICOM or NIfTI (no DICOM preamble or SOP Class)"),
    ],
)
def test_real_files_are_classified(tmp_path: Path, name: str, kind: str, reason: str) -> None:
    copy = tmp_path / name
    shutil.copyfile(PYDICOM_FILES / name, copy)
    record = read_header(copy, name, max_voxels=MAX_VOXELS)
    assert (record.kind, record.reason) == (kind, reason)
    assert (record.dicom is not None) == (kind == "dicom")


def test_dicomdir_and_nifti_are_classified(tmp_path: Path) -> None:
    shutil.copyfile(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    shutil.copyfile(site_packages() / "nibabel" / "tests" / "data" / "anatomical.nii", tmp_path / "a.nii")
    assert read_header(tmp_path / "DICOMDIR", "DICOMDIR", max_voxels=MAX_VOXELS).kind == "not_image"
    nifti = read_header(tmp_path / "a.nii", "a.nii", max_voxels=MAX_VOXELS)
    assert nifti.kind == "nifti" and nifti.nifti is not None and nifti.nifti.shape == (33, 41, 25)


def test_a_truncated_copy_of_a_good_file_is_quarantined(tmp_path: Path) -> None:
    copy = tmp_path / "cut.dcm"
    shutil.copyfile(PYDICOM_FILES / "CT_small.dcm", copy)
    truncate(copy, 0.5)
    record = read_header(copy, "cut.dcm", max_voxels=MAX_VOXELS)
    assert record.kind == "quarantined"
    assert record.reason.startswith("truncated: the header declares Rows 128 x Columns 128 x NumberOfFrames 1 x 1 "
                                    "samples x 16 bits = 32,768 bytes; Pixel Data holds ")


def test_header_scan_in_a_pool_matches_the_serial_scan(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "README.txt", "JPEG2000.dcm", "MR_small_RLE.dcm",
                 "emri_small.dcm" if (PYDICOM_FILES / "emri_small.dcm").exists() else "MR_small_expb.dcm",
                 "MR_small_implicit.dcm", "MR_small_bigendian.dcm"):
        shutil.copyfile(PYDICOM_FILES / name, tmp_path / name)
    paths = walk(tmp_path)
    serial = read_headers(tmp_path, paths, workers=1, max_voxels=MAX_VOXELS)
    pooled = read_headers(tmp_path, paths, workers=2, max_voxels=MAX_VOXELS)
    assert [(r.path, r.kind, r.reason) for r in serial] == [(r.path, r.kind, r.reason) for r in pooled]


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
    # A FIFO opened would block here:
    records = {r.path: r for r in read_headers(raw, files, workers=1, max_voxels=MAX_VOXELS)}
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
        with pytest.raises(DependencyError, match=r"ModuleNotFoundError: .*pydicom.* under the interpreter '.*python.*'.*\.venv.*make setup") as caught:
            read_headers(raw, walk(raw), workers=workers, max_voxels=MAX_VOXELS)
        assert isinstance(caught.value, PipelineInputError)  # the stage edge prints it as one line


def test_value_sharing_makes_equal_values_one_object_and_keeps_unequal_lookalikes_apart(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "s", 3, seed=1)
    records = read_headers(tmp_path, walk(tmp_path), workers=1, max_voxels=MAX_VOXELS)
    before = [(r.path, r.series_uid, sorted(r.phi), r.dicom.orientation, r.dicom.technical) for r in records]
    assert records[0].series_uid is not records[1].series_uid  # each parse makes its own copy
    records[1].dicom.pixel_spacing = (-0.0, 1)  # equal to (0.0, 1.0) in Python, not in an affine
    records[2].dicom.pixel_spacing = (0.0, 1.0)
    ValueSharing().share(records)
    first, second, third = records
    assert first.series_uid is second.series_uid is third.series_uid
    assert first.dicom.orientation is second.dicom.orientation
    common = first.phi & second.phi
    assert common and all(any(x is v for x in second.phi) for v in common)  # the patient's name, once
    assert first.phi is not second.phi  # a set stays each record's own
    assert repr(second.dicom.pixel_spacing) == "(-0.0, 1)" and repr(third.dicom.pixel_spacing) == "(0.0, 1.0)"
    assert [(r.path, r.series_uid, sorted(r.phi), r.dicom.orientation, r.dicom.technical) for r in records] == before
