"""The issue's acceptance test: every real test file shipped in the pydicom, pydicom-data
and nibabel wheels, plus built series, in one folder with a manifest naming each file."""

from __future__ import annotations

import csv
import gzip
import shutil
import warnings
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from pipeline.io.deid import PHI_KEYWORDS, path_token
from pipeline.io.ingest import ingest_cohort
from tests.io.dicom_builders import (
    PYDICOM_FILES,
    expected_from_slices,
    site_packages,
    voxel_world_lps,
    write_ct_series,
    write_localizer,
)
from tests.io.shipped import ingest_settings

SOURCES = {
    "pydicom": PYDICOM_FILES,
    "pydicom_data": site_packages() / "data_store" / "data",
    "nibabel": site_packages() / "nibabel" / "tests" / "data",
}
NOT_PATIENT_IMAGES = ("RTDOSE", "SEG", "RTSTRUCT", "RTPLAN", "SR")
KEY = "real-files-key"


def _is_pixel_image(path: Path) -> bool:
    """Independent of ingest: pydicom/nibabel can decode pixels of a patient image."""
    if path.name.endswith((".nii", ".nii.gz")):
        try:
            return isinstance(nib.load(path), (nib.Nifti1Image, nib.Nifti2Image))
        except Exception:
            return False
    try:
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds or str(ds.get("Modality", "")).upper() in NOT_PATIENT_IMAGES:
            return False
        _ = ds.pixel_array  # decoding is the check
        return True
    except Exception:
        return False


def _phi_strings(raw: Path) -> set[str]:
    found: set[str] = set()
    for path in raw.rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            for keyword in PHI_KEYWORDS:
                value = str(ds.get(keyword, "") or "").strip()
                if len(value) >= 6 and not value.isdigit():
                    found.add(value)
        except Exception:
            continue
    return found


@pytest.fixture(scope="module")
def real_folder(module_tmp) -> dict:
    root = module_tmp("real")
    raw = root / "raw"
    for name, source in SOURCES.items():
        shutil.copytree(source, raw / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = write_ct_series(raw / "built" / "series", 14, seed=11, duplicate=(5,))
    write_localizer(raw / "built" / "series", 2, seed=12)
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file())
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "label", "path", "origin"])
        writer.writerow(["BUILT-1", 1, "built/series", "built"])
        for number, rel in enumerate(f for f in files if not f.startswith("built/")):
            writer.writerow([f"REAL-{number}", number % 2, rel, rel.split("/")[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = ingest_cohort(raw, manifest, root / "out", pseudonym_key=KEY,
                                **ingest_settings(workers=2))
        pixel_images = {rel for rel in files if _is_pixel_image(raw / rel)}
    return {"raw": raw, "out": root / "out", "files": files, "summary": summary, "pixel_images": pixel_images, "built": built}


def _ledger_by_file(real_folder: dict) -> dict[str, dict[str, str]]:
    """Ledger rows keyed by the real relative path.

    Rows follow the sorted file list, each path written as its keyed token (a folder may
    be named by an identifier: ``dicomdirtests/77654033`` is a PatientID).
    """
    ledger = list(csv.DictReader((real_folder["out"] / "ledger.csv").open()))
    assert len(ledger) == len(real_folder["files"])
    for real, row in zip(real_folder["files"], ledger):
        assert row["path"] == path_token(KEY, real)
    return dict(zip(real_folder["files"], ledger))


def test_every_file_has_exactly_one_ledger_row_and_counts_add_up(real_folder: dict) -> None:
    ledger = list(_ledger_by_file(real_folder).values())
    redacted = [r["path"] for r in ledger if r["path"] not in real_folder["files"]]
    assert redacted and all("77654033" not in p for p in redacted)
    counts = Counter(r["status"] for r in ledger)
    assert sum(real_folder["summary"].counts.values()) == len(real_folder["files"])
    assert {k: v for k, v in real_folder["summary"].counts.items() if v} == dict(counts)
    assert all(r["reason"] for r in ledger if r["status"] != "ingested")


def test_at_least_90_percent_of_pixel_bearing_images_are_ingested(real_folder: dict) -> None:
    ledger = _ledger_by_file(real_folder)
    images = real_folder["pixel_images"]
    assert len(images) > 100
    ingested = [p for p in images if ledger[p]["status"] == "ingested"]
    missed = sorted(f"{p}: {ledger[p]['status']} {ledger[p]['reason']}" for p in images if p not in ingested)
    assert len(ingested) / len(images) >= 0.9, missed


def test_ct_volumes_equal_pydicom_hu(real_folder: dict) -> None:
    index = list(csv.DictReader((real_folder["out"] / "index.csv").open()))
    ledger = _ledger_by_file(real_folder)
    source_of = {r["series_key"]: real for real, r in ledger.items() if r["status"] == "ingested"}
    checked = 0
    for row in index:
        if row["modality"] != "CT" or row["source_format"] != "dicom" or row["n_source_files"] != "1":
            continue
        path = real_folder["raw"] / source_of[row["series_key"]]
        ds = pydicom.dcmread(path)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            continue
        hu = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        data = np.asanyarray(nib.load(real_folder["out"] / row["image_path"]).dataobj)
        assert sorted(data.shape) == sorted(hu.shape)
        np.testing.assert_array_equal(np.sort(data, axis=None), np.sort(hu, axis=None), err_msg=row["series_key"])
        checked += 1
    assert checked >= 5

    built = next(r for r in index if r["origin"] == "built")
    image = nib.load(real_folder["out"] / built["image_path"])
    data = np.asanyarray(image.dataobj)
    expected = expected_from_slices(voxel_world_lps(image.affine, data.shape), real_folder["built"]["paths"])
    np.testing.assert_array_equal(data, expected)


def test_no_identifier_from_the_inputs_appears_under_out_dir(real_folder: dict) -> None:
    phi = _phi_strings(real_folder["raw"])
    assert len(phi) > 10
    texts = b"".join(p.read_bytes() for p in real_folder["out"].glob("*.csv"))
    volumes = sorted((real_folder["out"] / "volumes").glob("*.nii*"))
    assert volumes
    headers = b"".join(_opened(p)[:352] for p in volumes)
    leaked = sorted(value for value in phi if value.encode() in texts or value.encode() in headers)
    assert not leaked


def _opened(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data
