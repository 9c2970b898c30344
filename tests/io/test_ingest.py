"""The cohort driver end to end: every file ledgered, volumes and index right, nothing leaked."""

from __future__ import annotations

import json

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import ConfigError, PipelineInputError
from pipeline.io.deid import path_token, pseudonym
from pipeline.io.ingest import RawFolderError, ingest_cohort
from pipeline.io.manifest import ManifestError
from pipeline.outputs import OutputOverlapError
from tests.io.cohorts import KEY, all_output_bytes, one_series_cohort, rows
from tests.io.dicom_builders import PHI, PYDICOM_FILES, expected_from_slices, voxel_world_lps, write_ct_series
from tests.io.shipped import ingest_settings


def test_a_demo_shaped_cohort_is_ingested_and_every_file_accounted_for(cohort: dict) -> None:
    summary = ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY,
                            **ingest_settings(workers=2))
    out = cohort["out"]
    ledger = rows(out / "ledger.csv")
    n_files = sum(1 for p in cohort["raw"].rglob("*") if p.is_file())
    assert len(ledger) == n_files == summary.n_files
    assert sum(summary.counts.values()) == n_files
    assert f"ingest: {n_files} files = " in summary.line()
    by_reason = {row["status"]: [] for row in ledger}
    for row in ledger:
        by_reason[row["status"]].append(row)
    assert summary.counts == {status: len(by_reason.get(status, [])) for status in summary.counts}
    assert summary.counts["ingested"] == 10 + 8 + 1
    scouts = [r for r in ledger if r["status"] == "skipped" and "most_slices" in r["reason"]]
    assert len(scouts) == 2 and all("10 planes vs 2" in r["reason"] for r in scouts)
    reasons = {r["status"] + ":" + r["reason"] for r in ledger}
    assert any(x.startswith("skipped:duplicate SOPInstanceUID") for x in reasons)
    assert any(x.startswith("quarantined:truncated") for x in reasons)
    assert any(x.startswith("quarantined:not DICOM or NIfTI") for x in reasons)
    assert any(x.startswith("not_image:not an image: RT Structure Set") for x in reasons)
    assert "not_image:the manifest" in reasons
    assert sum(r["status"] == "unreferenced" for r in ledger) == 3

    index = rows(out / "index.csv")
    assert list(index[0])[:8] == ["series_key", "patient_id", "label", "split", "image_path", "modality", "spacing", "shape"]
    assert list(index[0])[-1] == "site"
    assert not {"path", "series_uid", "study_uid"} & set(index[0])
    assert [r["label"] for r in index] == ["1", "0", "1"]
    assert index[0]["patient_id"] == pseudonym(KEY, "patient", PHI["PatientID"])
    assert [r["site"] for r in index] == ["site_a", "site_b", "site_a"]
    assert index[0]["shape"] == "128x128x10" and index[0]["spacing"] == "0.6615x0.6615x2.5"
    assert index[2]["modality"] == "CT" and index[2]["shape"] == "6x7x5"
    assert index[0]["manufacturer"] == "GE MEDICAL SYSTEMS" and index[0]["kvp"] == "120"

    image = nib.load(out / index[0]["image_path"])
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    data = np.asanyarray(image.dataobj)
    expected = expected_from_slices(voxel_world_lps(image.affine, data.shape), cohort["axial"]["paths"])
    np.testing.assert_array_equal(data, expected)

    blob = all_output_bytes(out)
    for value in PHI.values():
        assert value.encode() not in blob, value
    assert b"PX-2" not in blob and b"PX-3" not in blob


def test_manifest_errors_list_every_bad_row_before_anything_is_written(cohort: dict) -> None:
    cohort["manifest"].write_text(
        "patient_id,label,path,series_uid\n"
        "A,1,f3a9,\n"
        "B,yes,0b1c,\n"
        "C,0,,1.2.3.4.5.6.7.8.9\n"
        "D,1,nowhere,\n"
        "E,0,f3a9/,\n"
    )
    with pytest.raises(ManifestError) as caught:
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY, **ingest_settings())
    message = str(caught.value)
    assert "found 4 problem(s)" in message
    assert "line 3: 'label' (column 2) must be 0 or 1; got a word of 3 letters" in message
    assert "line 4: locator (series_uid) must match at least one file" in message
    assert "line 5: 'path' (column 3) must name a file or folder" in message
    assert "line 6: locator (path) must be unique; it repeats line 2" in message
    # Cells are described, never quoted: they may be ids, dates or folders named after patients.
    for cell in ("yes", "7.8.9", "nowhere", "f3a9"):
        assert cell not in message
    assert not (cohort["out"] / "index.csv").exists()


def test_a_row_whose_files_are_all_unreadable_is_recorded_and_the_run_goes_on(cohort: dict) -> None:
    broken = cohort["raw"] / "broken"
    broken.mkdir()
    (broken / "a.dcm").write_bytes(b"not dicom at all")
    shutil.copyfile(PYDICOM_FILES / "MR_truncated.dcm", broken / "b.dcm")
    with cohort["manifest"].open("a") as handle:
        handle.write("PX-4,0,broken,test,site_b\n")
    summary = ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY, **ingest_settings())
    assert summary.rows_without_volume == (5,)
    assert "1 rows without a volume (see ledger.csv): lines 5" in summary.line()
    statuses = {r["path"]: r["status"] for r in rows(cohort["out"] / "ledger.csv")}
    assert statuses[path_token(KEY, "broken/a.dcm")] == statuses[path_token(KEY, "broken/b.dcm")] == "quarantined"


def test_a_gap_is_rejected_by_default_and_resampled_on_request(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_ct_series(raw / "p", 8, missing=(4,))
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,label,path\nA,1,p\n")
    rejected = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings())
    assert rejected.n_volumes == 0 and rejected.counts["skipped"] == 7
    assert "gap of 5 mm" in rows(tmp_path / "out" / "ledger.csv")[0]["reason"]
    resampled = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY,
                              **ingest_settings(spacing_policy="resample"))
    assert resampled.n_volumes == 1 and resampled.counts["ingested"] == 7
    row = rows(tmp_path / "out" / "index.csv")[0]
    assert row["shape"] == "128x128x8" and "resampled onto 2.5 mm" in row["ingest_note"]
    # the settings that made these voxels are recorded beside them, for the model file
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings == {"series_choice": "most_slices", "spacing_policy": "resample",
                        "assume_missing_geometry": False, "max_voxels": ingest_settings()["max_voxels"]}


def test_outputs_inside_the_raw_folder_are_refused(cohort: dict) -> None:
    with pytest.raises(OutputOverlapError, match=r"'out_dir' must not be inside 'raw_dir'"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["raw"] / "out", pseudonym_key=KEY, **ingest_settings())


def test_a_raw_folder_that_does_not_exist_is_named(cohort: dict, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(RawFolderError, match=rf"^'raw_dir' must be an existing folder; got '{missing}'\. Check the path") as caught:
        ingest_cohort(missing, cohort["manifest"], cohort["out"], pseudonym_key=KEY, **ingest_settings())
    assert isinstance(caught.value, PipelineInputError) and not cohort["out"].exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("spacing_policy", "drop", r"'spacing_policy' must be one of \['reject', 'resample'\]; got 'drop'\."),
        ("series_choice", "largest", r"'series_choice' must be one of \['most_slices', 'error'\]; got 'largest'\."),
        ("volume_format", "nrrd", r"'volume_format' must be one of \['nii', 'nii.gz'\]; got 'nrrd'\."),
        ("workers", 0, r"'workers' must be an integer >= 1; got 0\."),
        ("workers", "2", r"'workers' must be an integer >= 1; got '2'\."),
    ],
)
def test_bad_options_name_the_valid_ones(cohort: dict, setting: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{message}$"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY,
                      **ingest_settings(**{setting: value}))
    assert not cohort["out"].exists()


def test_the_io_package_stays_free_of_torch_and_lightning() -> None:
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, pipeline.io;"
        "names = [m.name for m in pkgutil.iter_modules(pipeline.io.__path__)];"
        "[importlib.import_module('pipeline.io.' + n) for n in names];"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'lightning', 'pytorch_lightning'));"
        "print(len(names), bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) >= 20  # every module of the package was imported


def test_file_names_that_are_not_utf8_are_hashed_and_ledgered(tmp_path: Path) -> None:
    raw, manifest, info = one_series_cohort(tmp_path)
    folder = os.fsencode(raw / "p")
    os.rename(os.fsencode(info["paths"][0]), folder + b"/M\xfcller.dcm")  # referenced, in the series
    (raw / "x").mkdir()
    with open(os.fsencode(raw / "x") + b"/M\xfcller_2.dcm", "wb") as handle:  # unreferenced
        handle.write(b"junk")
    summary = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, **ingest_settings())
    assert summary.n_volumes == 1 and summary.counts["ingested"] == 4 and summary.counts["unreferenced"] == 1
    text = (tmp_path / "out" / "ledger.csv").read_bytes()
    assert b"ller" not in text and len(rows(tmp_path / "out" / "ledger.csv")) == 5


def test_every_ingest_param_is_a_required_keyword_of_the_library() -> None:
    """params.yaml is the one source of defaults: the library must not hold a second copy."""
    import dataclasses
    import inspect

    from pipeline.config import IngestConfig
    from pipeline.io.manifest import read_manifest
    from pipeline.io.scan import read_header, read_headers

    keys = [f.name for f in dataclasses.fields(IngestConfig)]
    signature = inspect.signature(ingest_cohort).parameters
    assert [k for k in keys if k not in signature] == []
    for key in keys:
        assert signature[key].kind is inspect.Parameter.KEYWORD_ONLY and signature[key].default is inspect.Parameter.empty, key
    for function, key in ((read_header, "max_voxels"), (read_headers, "max_voxels"), (read_headers, "workers"),
                          (read_manifest, "encoding")):
        parameter = inspect.signature(function).parameters[key]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is inspect.Parameter.empty
    with pytest.raises(TypeError, match=r"missing 1 required keyword-only argument: 'max_voxels'"):
        ingest_cohort("raw", "m.csv", "out", pseudonym_key=KEY,
                      **{k: v for k, v in ingest_settings().items() if k != "max_voxels"})


def _png_with_text(path: Path, array: np.ndarray, text: dict[str, str]) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    Image.fromarray(array).save(path, pnginfo=info)


def test_a_folder_of_png_jpeg_and_tiff_files_is_ingested_and_every_file_accounted_for(tmp_path: Path) -> None:
    from PIL import Image

    raw = tmp_path / "raw"
    (raw / "imgs").mkdir(parents=True)
    grey = (np.arange(40 * 30).reshape(30, 40) % 251).astype(np.uint8)
    _png_with_text(raw / "imgs" / "Doe_Jane.png", grey, {"Author": PHI["PatientName"], "Comment": PHI["PatientID"]})
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    Image.fromarray(colour).save(raw / "imgs" / "b.jpg", quality=90)
    Image.fromarray((grey.astype(np.uint16) * 200)).save(raw / "imgs" / "c.tif")
    (raw / "imgs" / "junk.png").write_bytes(b"not a picture at all")
    Image.fromarray(grey).save(raw / "imgs" / "cut.png")
    data = (raw / "imgs" / "cut.png").read_bytes()
    (raw / "imgs" / "cut.png").write_bytes(data[: len(data) // 2])  # a header that reads, pixels that do not
    Image.fromarray(grey).save(raw / "imgs" / "spare.png")  # under no manifest path
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "patient_id,label,path\n"
        f"{PHI['PatientID']},1,imgs/Doe_Jane.png\nP2,0,imgs/b.jpg\nP3,1,imgs/c.tif\nP4,0,imgs/junk.png\nP5,1,imgs/cut.png\n"
    )
    out = tmp_path / "out"
    summary = ingest_cohort(raw, manifest, out, pseudonym_key=KEY, **ingest_settings())

    ledger = rows(out / "ledger.csv")
    assert len(ledger) == summary.n_files == 6 and sum(summary.counts.values()) == 6
    assert summary.counts == {"ingested": 3, "skipped": 0, "quarantined": 2, "not_image": 0, "unreferenced": 1}
    by_token = {r["path"]: r for r in ledger}
    assert by_token[path_token(KEY, "imgs/junk.png")]["reason"].startswith("unreadable image file: UnidentifiedImageError")
    cut = by_token[path_token(KEY, "imgs/cut.png")]
    assert cut["status"] == "quarantined" and cut["reason"].startswith("OSError: ")
    assert by_token[path_token(KEY, "imgs/spare.png")]["reason"] == "not under any manifest path"
    assert summary.rows_without_volume == (5, 6)

    index = rows(out / "index.csv")
    assert [(r["modality"], r["source_format"], r["shape"], r["channels"], r["spacing"]) for r in index] == [
        ("OT", "png", "40x30", "1", "1x1"), ("OT", "jpeg", "40x30", "3", "1x1"), ("OT", "tiff", "40x30", "1", "1x1")]
    assert all("file has no pixel spacing or orientation: 1 mm pixels and an axial plane assumed" in r["ingest_note"]
               for r in index)
    image = nib.load(out / index[0]["image_path"])
    assert image.shape == (40, 30) and nib.aff2axcodes(image.affine)[:2] == ("R", "A")
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), grey.T[::-1, ::-1])  # LPS -> RAS flips both axes
    jpeg = nib.load(out / index[1]["image_path"])
    assert jpeg.shape == (40, 30, 1, 1, 3) and int(jpeg.header["intent_code"]) == 1007  # NIfTI VECTOR
    tiff = np.asanyarray(nib.load(out / index[2]["image_path"]).dataobj)
    np.testing.assert_array_equal(tiff, (grey.T * 200.0)[::-1, ::-1])

    blob = all_output_bytes(out)
    for value in (PHI["PatientName"], PHI["PatientID"], "Doe_Jane", "Jane"):
        assert value.encode() not in blob, value


def test_a_png_and_a_dicom_capture_of_the_same_pixels_give_the_same_volume_bytes(tmp_path: Path) -> None:
    """Re-exported copies must look alike to the duplicate audit, whatever the file type."""
    import pydicom
    from PIL import Image

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("SC_rgb_small_odd.dcm", "SC_ybr_full_422_uncompressed.dcm", "CT_small.dcm"):
        ds = pydicom.dcmread(PYDICOM_FILES / name)
        pixels = ds.pixel_array
        if name == "CT_small.dcm":  # as a grey capture: 8-bit values
            pixels = (pixels % 256).astype(np.uint8)
            ds.PixelData = pixels.astype(np.int16).tobytes()
        # Captures without geometry, as an image file has none.
        for keyword in ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "RescaleIntercept",
                        "RescaleSlope", "SliceThickness", "SpacingBetweenSlices"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(raw / name)
        Image.fromarray(pixels).save(raw / (name + ".png"))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("patient_id,label,path\n" + "".join(
        f"P{i},{i % 2},{name}\nQ{i},{i % 2},{name}.png\n"
        for i, name in enumerate(("SC_rgb_small_odd.dcm", "SC_ybr_full_422_uncompressed.dcm", "CT_small.dcm"))))
    out = tmp_path / "out"
    ingest_cohort(raw, manifest, out, pseudonym_key=KEY, **ingest_settings(assume_missing_geometry=True))
    index = rows(out / "index.csv")
    assert [r["channels"] for r in index] == ["3", "3", "3", "3", "1", "1"]
    assert [r["source_format"] for r in index] == ["dicom", "png"] * 3
    assert "YBR_FULL_422 converted to RGB" in index[2]["ingest_note"]
    for dicom, png in zip(index[::2], index[1::2]):
        assert dicom["shape"] == png["shape"] and dicom["spacing"] == png["spacing"]
        assert (out / dicom["image_path"]).read_bytes() == (out / png["image_path"]).read_bytes()
    rgb = nib.load(out / index[0]["image_path"])
    expected = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_small_odd.dcm").pixel_array  # (rows, columns, 3)
    assert rgb.shape == (3, 3, 1, 1, 3)
    np.testing.assert_array_equal(np.asanyarray(rgb.dataobj)[:, :, 0, 0, :], expected.transpose(1, 0, 2)[::-1, ::-1])
