from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel import orientations

from pipeline.demo.cohort import LESION_COLUMNS, MANIFEST_COLUMNS, make_cohort, patient_streams, write_lesion_truth
from pipeline.demo.dicom_writer import SITES
from pipeline.demo.phantom import DEFAULT_PHANTOM, render_phantom

TINY = {"n_patients": 8, "nifti_fraction": 0.25, "matrix": 48, "n_slices": 12, "pixel_spacing_mm": 5.0,
        "slice_thickness_mm": 5.0}


def _make(root: Path, seed: int = 7, **overrides):
    settings = {**TINY, **overrides}
    return make_cohort(root / "raw", root / "manifest.csv", seed=seed, **settings)


@pytest.fixture(scope="module")
def cohort(module_tmp):
    return _make(module_tmp("cohort"))


def _manifest(summary) -> list[dict[str, str]]:
    with summary.manifest_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        return list(reader)


def _series(folder: Path) -> dict[str, list[pydicom.Dataset]]:
    groups: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        groups[ds.SeriesInstanceUID].append(ds)
    return groups


def _read_volume(summary, record) -> np.ndarray:
    """The written volume back as (k, r, c) HU, ordered by position, not by file or instance."""
    path = summary.raw_dir / record.path
    if record.fmt == "nifti":
        image = nib.load(path)
        transform = orientations.ornt_transform(
            orientations.io_orientation(image.affine), orientations.axcodes2ornt(("L", "P", "S"))
        )
        return orientations.apply_orientation(image.get_fdata(), transform).transpose(2, 1, 0)
    (axial,) = [s for s in _series(path).values() if s[0].ImageType[2] == "AXIAL"]
    axial.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in axial])


def test_manifest_rows_resolve_and_match_the_records(cohort):
    rows = _manifest(cohort)
    assert len(rows) == TINY["n_patients"] == cohort.n_patients
    for row, record in zip(rows, cohort.records):
        assert re.fullmatch(r"MRN\d{7}", row["patient_id"])
        assert row == {"patient_id": record.patient_id, "label": str(record.label), "path": record.path,
                       "site": record.site}
        target = cohort.raw_dir / row["path"]
        if record.fmt == "nifti":
            assert target.is_file() and row["path"].endswith(".nii.gz")
        else:
            assert target.is_dir() and re.fullmatch(r"[0-9a-f]{8}", row["path"])
    assert len({row["patient_id"] for row in rows}) == len(rows)
    assert sorted(p.name for p in cohort.raw_dir.iterdir()) == sorted(row["path"] for row in rows)


def test_labels_sites_and_formats_are_balanced(cohort):
    assert cohort.n_positive == TINY["n_patients"] // 2
    assert {r.site for r in cohort.records} == {s.name for s in SITES}
    assert cohort.n_nifti == round(TINY["n_patients"] * TINY["nifti_fraction"])
    assert any(r.orientation not in ("", "RAS") for r in cohort.records if r.fmt == "nifti")


def test_written_volumes_are_the_phantoms_and_lesions_only_in_positives(cohort):
    for index, record in enumerate(cohort.records):
        streams = patient_streams(7, index)
        site = next(s for s in SITES if s.name == record.site)
        phantom = render_phantom(
            shape=(TINY["n_slices"], TINY["matrix"], TINY["matrix"]),
            pixel_spacing_mm=TINY["pixel_spacing_mm"],
            slice_spacing_mm=TINY["slice_thickness_mm"],
            with_lesion=bool(record.label),
            noise_sd_hu=site.noise_sd_hu,
            anatomy_rng=streams["anatomy"],
            lesion_rng=streams["lesion"],
            noise_rng=streams["noise"],
        )
        assert phantom.lesion_mask.any() == bool(record.label) == (record.lesion is not None)
        volume = _read_volume(cohort, record)
        assert volume.shape == phantom.hu.shape
        assert np.abs(volume - phantom.hu).max() <= 0.5


def test_dicom_headers_carry_the_fake_phi_and_one_ct_series(cohort):
    for record in (r for r in cohort.records if r.fmt == "dicom"):
        groups = _series(cohort.raw_dir / record.path)
        axial = [s for s in groups.values() if s[0].ImageType[2] == "AXIAL"]
        scouts = [s for s in groups.values() if s[0].ImageType[2] == "LOCALIZER"]
        assert len(axial) == 1 and len(axial[0]) == TINY["n_slices"]
        assert len(scouts) == (1 if record.n_localizer_frames else 0)
        for ds in (d for series in groups.values() for d in series):
            assert ds.PatientID == record.patient_id
            assert str(ds.PatientName) and ds.PatientBirthDate and ds.AccessionNumber and ds.StudyDate
            assert ds.InstitutionName
        first = axial[0][0]
        site = next(s for s in SITES if s.name == record.site)
        assert first.Manufacturer == site.manufacturer and first.PixelRepresentation == int(site.signed)


def test_the_mess_is_there(cohort):
    dicom = [r for r in cohort.records if r.fmt == "dicom"]
    assert any(r.n_localizer_frames for r in dicom) and not all(r.n_localizer_frames for r in dicom)
    reversed_ = [r for r in dicom if r.reversed_instances]
    assert reversed_ and len(reversed_) < len(dicom)
    for record in reversed_:
        (axial,) = [s for s in _series(cohort.raw_dir / record.path).values() if s[0].ImageType[2] == "AXIAL"]
        axial.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
        assert [int(ds.InstanceNumber) for ds in axial] == list(range(len(axial), 0, -1))
    names = [p.name for r in dicom for p in (cohort.raw_dir / r.path).iterdir()]
    assert any(n.endswith(".dcm") for n in names) and any("." not in n for n in names)
    assert all(re.fullmatch(r"[0-9a-f]{8}(\.dcm)?", n) for n in names)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_params_give_identical_bytes_and_another_seed_does_not(tmp_path):
    first, second, other = _make(tmp_path / "a"), _make(tmp_path / "b"), _make(tmp_path / "c", seed=8)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert first.line().replace(str(tmp_path / "a"), "") == second.line().replace(str(tmp_path / "b"), "")
    assert _hashes(tmp_path / "a") != _hashes(tmp_path / "c")
    assert [r.patient_id for r in first.records] != [r.patient_id for r in other.records]


def test_rerun_clears_stale_files(tmp_path):
    stale = tmp_path / "raw" / "old" / "stale.dcm"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"junk")
    summary = _make(tmp_path)
    assert not stale.exists() and not stale.parent.exists()
    assert len(list(summary.raw_dir.iterdir())) == summary.n_patients


def test_refuses_to_empty_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="'raw_dir' must be a folder of its own"):
        make_cohort(Path("."), tmp_path / "m.csv", seed=0, **TINY)
    assert (tmp_path / "keep.txt").exists()


def test_the_lesion_file_puts_each_centre_on_its_lesion_in_the_written_volume(tmp_path: Path) -> None:
    import dataclasses

    # Lung nodules only, every patient NIfTI (in assorted axis orders): each centre, taken
    # through the file's own affine, must land on nodule values, not on lung (-850 HU).
    phantom = dataclasses.replace(DEFAULT_PHANTOM, lung_lesion_fraction=1.0, lesion_diameter_mm=(14.0, 18.0),
                                  small_lesion_fraction=0.0)
    summary = _make(tmp_path, n_patients=8, nifti_fraction=1.0, matrix=64, pixel_spacing_mm=5.0, phantom=phantom)
    assert write_lesion_truth(tmp_path / "lesions.csv", summary.records) == summary.n_positive > 0
    with (tmp_path / "lesions.csv").open() as handle:
        rows = {row["patient_id"]: row for row in csv.DictReader(handle)}
    assert list(next(iter(rows.values()))) == list(LESION_COLUMNS)
    for record in summary.records:
        if record.lesion is None:
            assert record.patient_id not in rows
            continue
        row = rows[record.patient_id]
        image = nib.load(tmp_path / "raw" / record.path)
        ras = np.array([-float(row["centre_x_mm"]), -float(row["centre_y_mm"]), float(row["centre_z_mm"]), 1.0])
        voxel = np.rint(np.linalg.inv(image.affine) @ ras)[:3].astype(int)
        value = float(image.get_fdata()[tuple(voxel)])
        assert value > -400, (record.orientation, value)  # a solid nodule: -50..60 HU plus noise
