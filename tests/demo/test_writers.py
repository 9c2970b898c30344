from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from pipeline.demo.dicom_writer import SITES, PatientHeader, stored_values, write_ct_series, write_localizer
from pipeline.demo.geometry import AxialGeometry
from pipeline.demo.nifti_writer import ORIENTATIONS, write_nifti

SHAPE = (6, 10, 12)
GEOMETRY = AxialGeometry(shape=SHAPE, origin_lps_mm=(-13.75, -11.25, -200.5), pixel_spacing_mm=2.5, slice_spacing_mm=5.0)
PATIENT = PatientHeader(
    patient_id="MRN1234567",
    name="ROSSI^ANNA",
    birth_date="19560412",
    study_date="20190305",
    study_time="101502",
    sex="F",
    age="062Y",
    accession="ACC000123456",
    referring="SMITH^JOHN",
)


def _volume(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1024.0, 1500.0, size=SHAPE).astype(np.float32)


def _write(folder: Path, hu: np.ndarray, site, *, reverse: bool = False, seed: int = 0) -> list[Path]:
    return write_ct_series(
        folder,
        hu,
        geometry=GEOMETRY,
        patient=PATIENT,
        site=site,
        uid_key=("test", "0"),
        reverse_instances=reverse,
        rng=np.random.default_rng(seed),
        taken_names=set(),
    )


def _lps_of_pixel(ds: pydicom.Dataset, row: int, col: int) -> np.ndarray:
    """DICOM PS3.3 C.7.6.2.1.1: P = IPP + col * dc * X + row * dr * Y."""
    orientation = np.array(ds.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    return (
        np.array(ds.ImagePositionPatient, dtype=float)
        + col * col_spacing * orientation[:3]
        + row * row_spacing * orientation[3:]
    )


@pytest.mark.parametrize("site", SITES, ids=[s.name for s in SITES])
def test_ct_series_is_valid_dicom_with_the_tags_ingest_needs(tmp_path, site):
    paths = _write(tmp_path, _volume(), site)
    assert len(paths) == SHAPE[0]
    for path in paths:
        assert re.fullmatch(r"[0-9a-f]{8}(\.dcm)?", path.name)
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "CT" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.Rows, ds.Columns) == SHAPE[1:]
        assert [float(v) for v in ds.PixelSpacing] == [2.5, 2.5]
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 5.0
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, site.bits_stored, site.bits_stored - 1)
        assert ds.PixelRepresentation == int(site.signed)
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == site.intercept
        assert ds.Manufacturer == site.manufacturer and ds.ManufacturerModelName == site.model
        assert float(ds.KVP) == site.kvp
        assert ds.PatientID == PATIENT.patient_id and str(ds.PatientName) == PATIENT.name
        assert ds.PatientBirthDate == PATIENT.birth_date and ds.AccessionNumber == PATIENT.accession
        assert ds.InstitutionName == site.institution and ds.StudyDate == PATIENT.study_date
    series = {pydicom.dcmread(p).SeriesInstanceUID for p in paths}
    sops = {pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert len(series) == 1 and len(sops) == SHAPE[0]


@pytest.mark.parametrize("site", SITES, ids=[s.name for s in SITES])
def test_hu_round_trips_through_rescale_within_half_a_hu(tmp_path, site):
    hu = _volume(1)
    paths = _write(tmp_path, hu, site)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        read = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.abs(read - hu[k]).max() <= 0.5


def test_stored_values_clip_to_the_bits_stored():
    unsigned = stored_values(np.array([-2000.0, 5000.0]), SITES[0])
    assert unsigned.dtype == np.dtype("<u2") and unsigned.tolist() == [0, 4095]
    signed = stored_values(np.array([-2000.0, 5000.0]), SITES[1])
    assert signed.dtype == np.dtype("<i2") and signed.tolist() == [-2000, 5000]


@pytest.mark.parametrize("reverse", [False, True])
def test_slice_positions_follow_orientation_and_spacing(tmp_path, reverse):
    paths = _write(tmp_path, _volume(), SITES[0], reverse=reverse)
    datasets = [pydicom.dcmread(p) for p in paths]
    normal = np.cross(
        np.array(datasets[0].ImageOrientationPatient[:3], dtype=float),
        np.array(datasets[0].ImageOrientationPatient[3:], dtype=float),
    )
    along = np.array([np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float)) for ds in datasets])
    np.testing.assert_allclose(np.diff(along), 5.0, atol=1e-4)
    for k, ds in enumerate(datasets):
        np.testing.assert_allclose(np.array(ds.ImagePositionPatient, dtype=float), GEOMETRY.slice_position(k), atol=1e-4)
        assert float(ds.SliceLocation) == pytest.approx(GEOMETRY.slice_position(k)[2])
    instances = [int(ds.InstanceNumber) for ds in datasets]
    expected = list(range(SHAPE[0], 0, -1)) if reverse else list(range(1, SHAPE[0] + 1))
    assert instances == expected


def test_localizer_is_a_separate_coronal_scout_in_the_same_study(tmp_path):
    hu = _volume()
    ct = pydicom.dcmread(_write(tmp_path, hu, SITES[0])[0])
    taken = {p.name.split(".")[0] for p in tmp_path.iterdir()}
    scouts = write_localizer(
        tmp_path,
        hu,
        geometry=GEOMETRY,
        patient=PATIENT,
        site=SITES[0],
        uid_key=("test", "0"),
        n_frames=2,
        rng=np.random.default_rng(5),
        taken_names=taken,
    )
    assert len(list(tmp_path.iterdir())) == SHAPE[0] + 2
    coronal, sagittal = (pydicom.dcmread(p) for p in scouts)
    for ds in (coronal, sagittal):
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        assert ds.SeriesInstanceUID != ct.SeriesInstanceUID
        assert ds.StudyInstanceUID == ct.StudyInstanceUID and ds.FrameOfReferenceUID == ct.FrameOfReferenceUID
        assert ds.pixel_array.shape[0] == SHAPE[0]
    assert [float(v) for v in coronal.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    assert [float(v) for v in sagittal.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assert coronal.pixel_array.shape == (SHAPE[0], SHAPE[2])
    top = GEOMETRY.slice_position(SHAPE[0] - 1)[2]
    assert _lps_of_pixel(coronal, 0, 0)[2] == pytest.approx(top)
    assert _lps_of_pixel(coronal, SHAPE[0] - 1, 0)[2] == pytest.approx(GEOMETRY.slice_position(0)[2])
    with pytest.raises(ValueError, match="'n_frames' must be 1 or 2; got 3"):
        write_localizer(tmp_path, hu, geometry=GEOMETRY, patient=PATIENT, site=SITES[0], uid_key=("t",),
                        n_frames=3, rng=np.random.default_rng(0), taken_names=set())


def test_same_inputs_give_identical_dicom_bytes(tmp_path):
    first = _write(tmp_path / "a", _volume(), SITES[1], seed=3)
    second = _write(tmp_path / "b", _volume(), SITES[1], seed=3)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_nifti_voxel_lands_where_the_dicom_pixel_does(tmp_path, orientation):
    hu = np.full(SHAPE, -1000.0, dtype=np.float32)
    k, r, c = 4, 2, 7
    hu[k, r, c] = 999.0
    dicom = _write(tmp_path / "dicom", hu, SITES[0])
    expected_lps = _lps_of_pixel(pydicom.dcmread(dicom[k]), r, c)
    expected_ras = expected_lps * np.array([-1.0, -1.0, 1.0])

    path = tmp_path / f"{orientation}.nii.gz"
    affine = write_nifti(path, hu, geometry=GEOMETRY, orientation=orientation)
    image = nib.load(path)
    assert "".join(nib.aff2axcodes(image.affine)) == orientation
    np.testing.assert_allclose(image.affine, affine)
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
    np.testing.assert_allclose(image.header.get_qform(), affine, atol=1e-4)
    data = np.asarray(image.dataobj)
    assert data.dtype == np.int16
    (ijk,) = np.argwhere(data == 999)
    np.testing.assert_allclose((image.affine @ np.r_[ijk, 1.0])[:3], expected_ras, atol=1e-4)
    assert np.array_equal(np.sort(data, axis=None), np.sort(np.rint(hu).astype(np.int16), axis=None))


def test_nifti_is_byte_identical_on_rewrite(tmp_path):
    hu = _volume(2)
    write_nifti(tmp_path / "a.nii.gz", hu, geometry=GEOMETRY, orientation="LAS")
    (tmp_path / "b").mkdir()
    write_nifti(tmp_path / "b" / "a.nii.gz", hu, geometry=GEOMETRY, orientation="LAS")
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b" / "a.nii.gz").read_bytes()


def test_nifti_rejects_an_unknown_orientation(tmp_path):
    with pytest.raises(ValueError, match=r"'orientation' must be one of \['LPS'"):
        write_nifti(tmp_path / "x.nii.gz", _volume(), geometry=GEOMETRY, orientation="XYZ")
