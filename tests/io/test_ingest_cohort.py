from __future__ import annotations

import csv
import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from pipeline.io.deid import path_token, pseudonym
from pipeline.io.ingest import ingest_cohort
from pipeline.io.manifest import ManifestError
from tests.io.dicom_builders import (
    PHI,
    PYDICOM_FILES,
    expected_from_slices,
    truncate,
    voxel_world_lps,
    write_ct_series,
    write_localizer,
)

KEY = "test-key-0123456789"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _all_output_bytes(out: Path) -> bytes:
    blob = b""
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            blob += gzip.decompress(data) if path.suffix == ".gz" else data
    return blob


@pytest.fixture
def cohort(tmp_path: Path) -> dict:
    """Demo-shaped raw folder: random names, a scout beside the axial series, mess."""
    raw = tmp_path / "raw"
    axial = write_ct_series(raw / "f3a9", 10, seed=1)
    write_localizer(raw / "f3a9", 2, seed=2)
    second = write_ct_series(raw / "0b1c", 8, seed=3, duplicate=(1,))
    cut = raw / "0b1c" / "cut_copy.dcm"
    shutil.copyfile(second["paths"][0], cut)
    truncate(cut)
    (raw / "0b1c" / "Thumbs.db").write_bytes(b"\x00junk")
    shutil.copyfile(PYDICOM_FILES / "rtstruct.dcm", raw / "0b1c" / "structures.dcm")
    volume = np.arange(6 * 7 * 5, dtype=np.int16).reshape(6, 7, 5) - 1000
    nib.save(nib.Nifti1Image(volume, np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])), raw / "77e1.nii.gz")
    write_ct_series(raw / "not_listed", 3, seed=9)
    manifest = raw / "manifest.csv"
    manifest.write_text(
        "patient_id,label,path,split,site\n"
        f"{PHI['PatientID']},1,f3a9,train,site_a\n"
        "PX-2,0,0b1c,test,site_b\n"
        "PX-3,1,77e1.nii.gz,val,site_a\n"
    )
    return {"raw": raw, "manifest": manifest, "out": tmp_path / "out", "axial": axial}


def test_a_demo_shaped_cohort_is_ingested_and_every_file_accounted_for(cohort: dict) -> None:
    summary = ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY, workers=2)
    out = cohort["out"]
    ledger = _rows(out / "ledger.csv")
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

    index = _rows(out / "index.csv")
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

    blob = _all_output_bytes(out)
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
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY)
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


def test_series_uid_locators_select_one_series_and_the_rest_is_unreferenced(cohort: dict, tmp_path: Path) -> None:
    manifest = tmp_path / "by_uid.csv"
    manifest.write_text(f"patient_id,label,series_uid\nA,1,{cohort['axial']['series_uid']}\n")
    summary = ingest_cohort(cohort["raw"], manifest, cohort["out"], pseudonym_key=KEY)
    assert summary.counts["ingested"] == 10
    assert summary.n_volumes == 1
    assert summary.counts["unreferenced"] == summary.n_files - 10


def test_series_choice_error_stops_and_names_the_row(cohort: dict) -> None:
    with pytest.raises(ManifestError, match=r"line 2: locator \(path\) must match one series .* got 2 \(planes: \[10, 2\]\)"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY, series_choice="error")


def test_a_row_whose_files_are_all_unreadable_is_recorded_and_the_run_goes_on(cohort: dict) -> None:
    broken = cohort["raw"] / "broken"
    broken.mkdir()
    (broken / "a.dcm").write_bytes(b"not dicom at all")
    shutil.copyfile(PYDICOM_FILES / "MR_truncated.dcm", broken / "b.dcm")
    with cohort["manifest"].open("a") as handle:
        handle.write("PX-4,0,broken,test,site_b\n")
    summary = ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY)
    assert summary.rows_without_volume == (5,)
    assert "1 rows without a volume (see ledger.csv): lines 5" in summary.line()
    statuses = {r["path"]: r["status"] for r in _rows(cohort["out"] / "ledger.csv")}
    assert statuses[path_token(KEY, "broken/a.dcm")] == statuses[path_token(KEY, "broken/b.dcm")] == "quarantined"


def test_a_gap_is_rejected_by_default_and_resampled_on_request(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_ct_series(raw / "p", 8, missing=(4,))
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,label,path\nA,1,p\n")
    rejected = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY)
    assert rejected.n_volumes == 0 and rejected.counts["skipped"] == 7
    assert "gap of 5 mm" in _rows(tmp_path / "out" / "ledger.csv")[0]["reason"]
    resampled = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY, spacing_policy="resample")
    assert resampled.n_volumes == 1 and resampled.counts["ingested"] == 7
    row = _rows(tmp_path / "out" / "index.csv")[0]
    assert row["shape"] == "128x128x8" and "resampled onto 2.5 mm" in row["ingest_note"]


def test_outputs_inside_the_raw_folder_are_refused(cohort: dict) -> None:
    with pytest.raises(ValueError, match=r"'out_dir' must not be inside 'raw_dir'"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["raw"] / "out", pseudonym_key=KEY)


def test_bad_options_name_the_valid_ones(cohort: dict) -> None:
    with pytest.raises(ValueError, match=r"'spacing_policy' must be one of \['reject', 'resample'\]; got 'drop'"):
        ingest_cohort(cohort["raw"], cohort["manifest"], cohort["out"], pseudonym_key=KEY, spacing_policy="drop")


def test_the_io_package_stays_free_of_torch_and_lightning() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pipeline.io.ingest, pipeline.io.scan, pipeline.io.series, pipeline.io.nifti;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'lightning', 'pytorch_lightning'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _one_series_cohort(tmp_path: Path, n: int = 4) -> tuple[Path, Path, dict]:
    raw = tmp_path / "raw"
    info = write_ct_series(raw / "p", n, seed=4)
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,label,path,site\nA,1,p,=cmd|' /C calc'!A0\n")
    return raw, manifest, info


def _set_header(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def test_a_rescale_overflow_quarantines_the_file_that_declares_it(tmp_path: Path) -> None:
    raw, manifest, info = _one_series_cohort(tmp_path)
    bad = info["paths"][2]
    _set_header(bad, RescaleSlope=1e20)
    ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY)
    ledger = {r["path"]: r for r in _rows(tmp_path / "out" / "ledger.csv")}
    row = ledger[path_token(KEY, bad.relative_to(raw).as_posix())]
    assert row["status"] == "quarantined" and "Rescale Slope 1e+20" in row["reason"]
    others = [ledger[path_token(KEY, p.relative_to(raw).as_posix())] for p in info["paths"] if p != bad]
    assert all(r["status"] == "skipped" and f"series not built: {path_token(KEY, 'p/' + bad.name)}:" in r["reason"] for r in others)
    assert "the volume" not in " ".join(r["reason"] for r in others)


def test_unparseable_pixel_spacing_quarantines_unless_assumed(tmp_path: Path) -> None:
    raw, manifest, info = _one_series_cohort(tmp_path)
    for path in info["paths"]:
        _set_header(path, PixelSpacing=[7.25, 7.25])
        path.write_bytes(path.read_bytes().replace(b"7.25\\7.25", b"abc\\abc\\ "))
    summary = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY)
    assert summary.n_volumes == 0 and summary.counts["quarantined"] == 4
    reasons = {r["reason"] for r in _rows(tmp_path / "out" / "ledger.csv")}
    assert any("unusable geometry: PixelSpacing must be 2 finite number(s)" in r and "assume_missing_geometry" in r for r in reasons)
    assumed = ingest_cohort(raw, manifest, tmp_path / "out2", pseudonym_key=KEY, assume_missing_geometry=True)
    assert assumed.n_volumes == 1
    assert "1 mm pixels assumed" in _rows(tmp_path / "out2" / "index.csv")[0]["ingest_note"]


def test_an_absent_pixel_spacing_is_still_assumed_with_a_note(tmp_path: Path) -> None:
    raw, manifest, info = _one_series_cohort(tmp_path)
    for path in info["paths"]:
        ds = pydicom.dcmread(path)
        del ds.PixelSpacing
        ds.save_as(path)
    assert ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY).n_volumes == 1


def test_index_cells_that_look_like_formulas_are_neutralised(tmp_path: Path) -> None:
    raw, manifest, _ = _one_series_cohort(tmp_path)
    ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY)
    assert _rows(tmp_path / "out" / "index.csv")[0]["site"] == "'=cmd|' /C calc'!A0"


def test_file_names_that_are_not_utf8_are_hashed_and_ledgered(tmp_path: Path) -> None:
    raw, manifest, info = _one_series_cohort(tmp_path)
    folder = os.fsencode(raw / "p")
    os.rename(os.fsencode(info["paths"][0]), folder + b"/M\xfcller.dcm")  # referenced, in the series
    (raw / "x").mkdir()
    with open(os.fsencode(raw / "x") + b"/M\xfcller_2.dcm", "wb") as handle:  # unreferenced
        handle.write(b"junk")
    summary = ingest_cohort(raw, manifest, tmp_path / "out", pseudonym_key=KEY)
    assert summary.n_volumes == 1 and summary.counts["ingested"] == 4 and summary.counts["unreferenced"] == 1
    text = (tmp_path / "out" / "ledger.csv").read_bytes()
    assert b"ller" not in text and len(_rows(tmp_path / "out" / "ledger.csv")) == 5
