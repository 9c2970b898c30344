"""Write a phantom as a real CT series (and a scout) the way a scanner export looks.

Files are valid Part 10 DICOM (CT Image Storage, Explicit VR Little Endian) with the
geometry, rescale and PHI tags an ingest stage must handle. Everything that varies
between files comes from the caller's random stream or from UIDs derived from
``uid_key``, so the same inputs give the same bytes; no wall-clock value is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from pipeline.demo.geometry import AXIAL_ORIENTATION, AxialGeometry

#: Share of files written without the ``.dcm`` extension, as many PACS exports do.
NO_EXTENSION_FRACTION = 0.25


@dataclass(frozen=True)
class Site:
    """A scanner site: its vendor tags, pixel storage and noise.

    Attributes:
        name: the manifest's ``site`` value.
        institution: InstitutionName (PHI; removed by ingest).
        manufacturer, model: Manufacturer and ManufacturerModelName.
        kernel: ConvolutionKernel.
        kvp: tube voltage, kV.
        signed: store pixels as int16 (PixelRepresentation 1) rather than uint16.
        bits_stored: BitsStored; 12 for uint16 storage, 16 for int16.
        intercept: RescaleIntercept, HU; RescaleSlope is 1.
        noise_sd_hu: SD of the image noise, HU.
    """

    name: str
    institution: str
    manufacturer: str
    model: str
    kernel: str
    kvp: float
    signed: bool
    bits_stored: int
    intercept: float
    noise_sd_hu: float


SITES: tuple[Site, ...] = (
    Site(
        name="site_a",
        institution="Northfield General Hospital",
        manufacturer="ACME Medical",
        model="Tomograph 64",
        kernel="B30f",
        kvp=120.0,
        signed=False,
        bits_stored=12,
        intercept=-1024.0,
        noise_sd_hu=12.0,
    ),
    Site(
        name="site_b",
        institution="St. Example University Clinic",
        manufacturer="Imaginary Systems",
        model="Helix 128",
        kernel="STANDARD",
        kvp=100.0,
        signed=True,
        bits_stored=16,
        intercept=0.0,
        noise_sd_hu=18.0,
    ),
)

#: The scanner of a demo external-validation site (``python -m pipeline.stages.demo ...
#: --external-site NAME``): another vendor, and noisier images than either internal site.
EXTERNAL_SITE = Site(
    name="site_c",
    institution="Far Valley Regional Hospital",
    manufacturer="Quartz Imaging",
    model="Orbit 32",
    kernel="SOFT",
    kvp=110.0,
    signed=True,
    bits_stored=16,
    intercept=-1024.0,
    noise_sd_hu=30.0,
)


@dataclass(frozen=True)
class PatientHeader:
    """The fake identifying data one patient's files carry (all of it PHI).

    Attributes:
        patient_id: PatientID, also the manifest's ``patient_id``.
        name: PatientName, ``FAMILY^GIVEN``.
        birth_date, study_date: DICOM dates ``YYYYMMDD``.
        study_time: DICOM time ``HHMMSS``.
        sex: ``F`` or ``M``.
        age: PatientAge, e.g. ``063Y``.
        accession: AccessionNumber.
        referring: ReferringPhysicianName.
    """

    patient_id: str
    name: str
    birth_date: str
    study_date: str
    study_time: str
    sex: str
    age: str
    accession: str
    referring: str


def series_uids(uid_key: Sequence[str]) -> dict[str, str]:
    """Study, frame-of-reference and series UIDs derived from ``uid_key``.

    ``generate_uid(entropy_srcs=...)`` hashes its sources, so the same key gives the same
    UIDs on every machine and different patients never collide in practice.
    """
    key = [str(part) for part in uid_key]
    return {
        "study": generate_uid(entropy_srcs=[*key, "study"]),
        "frame_of_reference": generate_uid(entropy_srcs=[*key, "frame_of_reference"]),
        "ct_series": generate_uid(entropy_srcs=[*key, "series", "ct"]),
        "localizer_series": generate_uid(entropy_srcs=[*key, "series", "localizer"]),
    }


def hex_names(rng: np.random.Generator, count: int, taken: set[str] | None = None) -> list[str]:
    """``count`` distinct random 8-hex-digit names, none of them in ``taken``."""
    taken = set() if taken is None else taken
    names: list[str] = []
    while len(names) < count:
        name = f"{int(rng.integers(0, 2**32)):08x}"
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    geometry: AxialGeometry,
    patient: PatientHeader,
    site: Site,
    uid_key: Sequence[str],
    reverse_instances: bool,
    rng: np.random.Generator,
    taken_names: set[str],
) -> list[Path]:
    """Write ``hu`` as one axial CT series, one file per slice, under random names.

    Args:
        folder: the patient's folder (created if needed).
        hu: ``(K, R, C)`` HU volume; slice ``k`` sits at ``geometry.slice_position(k)``.
        geometry: where the voxels are.
        patient: the PHI to write.
        site: vendor tags, pixel storage and rescale.
        uid_key: strings that seed this patient's UIDs (see :func:`series_uids`).
        reverse_instances: number instances from the top slice down, so InstanceNumber
            runs against the z order, as head-first scanners often export.
        rng: stream for file names.
        taken_names: names already used in ``folder``; updated.

    Returns:
        The written paths, in slice order ``k``.
    """
    n_slices, rows, cols = hu.shape
    if (n_slices, rows, cols) != geometry.shape:
        raise ValueError(f"'hu' must have the geometry's shape {geometry.shape}; got {hu.shape}.")
    folder.mkdir(parents=True, exist_ok=True)
    uids = series_uids(uid_key)
    ds = _base_dataset(patient, site, uids, series_uid=uids["ct_series"])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesNumber = 2
    ds.SeriesDescription = f"CHEST {_ds(geometry.slice_spacing_mm)}mm {site.kernel}"
    ds.SliceThickness = _ds(geometry.slice_spacing_mm)
    ds.SpacingBetweenSlices = _ds(geometry.slice_spacing_mm)
    ds.ImageOrientationPatient = [_ds(v) for v in AXIAL_ORIENTATION]
    ds.PixelSpacing = [_ds(geometry.pixel_spacing_mm)] * 2
    ds.Rows, ds.Columns = rows, cols
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = _ds(site.intercept)
    ds.RescaleType = "HU"
    _set_pixel_format(ds, signed=site.signed, bits_stored=site.bits_stored)

    stored = stored_values(hu, site)
    names = hex_names(rng, n_slices, taken_names)
    paths: list[Path] = []
    for k in range(n_slices):
        position = geometry.slice_position(k)
        sop_uid = generate_uid(entropy_srcs=[*map(str, uid_key), "sop", "ct", str(k)])
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = n_slices - k if reverse_instances else k + 1
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceLocation = _ds(position[2])
        ds.PixelData = stored[k].tobytes()
        suffix = "" if rng.random() < NO_EXTENSION_FRACTION else ".dcm"
        path = folder / f"{names[k]}{suffix}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_localizer(
    folder: Path,
    hu: np.ndarray,
    *,
    geometry: AxialGeometry,
    patient: PatientHeader,
    site: Site,
    uid_key: Sequence[str],
    n_frames: int,
    rng: np.random.Generator,
    taken_names: set[str],
) -> list[Path]:
    """Write a scout series (coronal, then sagittal) beside the CT series.

    Each scout is a projection of the phantom: the water-equivalent path length through
    the body, in tenths of a mm, so it looks like a radiograph. It shares the study and
    frame of reference but has its own SeriesInstanceUID and ImageType LOCALIZER, which
    is what an ingest stage must recognise and skip.

    Args:
        n_frames: 1 (coronal) or 2 (coronal and sagittal) single-frame images.
        Other arguments: as for :func:`write_ct_series`.

    Returns:
        The written paths.
    """
    if n_frames not in (1, 2):
        raise ValueError(f"'n_frames' must be 1 or 2; got {n_frames!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    uids = series_uids(uid_key)
    ds = _base_dataset(patient, site, uids, series_uid=uids["localizer_series"])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Topogram"
    ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    _set_pixel_format(ds, signed=False, bits_stored=12)

    path_length = np.clip(hu.astype(np.float32) + 1000.0, 0.0, None) / 1000.0
    n_slices, rows, cols = hu.shape
    dxy, dz = geometry.pixel_spacing_mm, geometry.slice_spacing_mm
    x0, y0, _ = geometry.origin_lps_mm
    z_top = geometry.slice_position(n_slices - 1)[2]
    views = [
        # (projection along y -> (k, c), row direction +x, centre y)
        (path_length.sum(axis=1) * dxy, (1.0, 0.0, 0.0), (x0, y0 + 0.5 * (rows - 1) * dxy, z_top)),
        (path_length.sum(axis=2) * dxy, (0.0, 1.0, 0.0), (x0 + 0.5 * (cols - 1) * dxy, y0, z_top)),
    ][:n_frames]
    names = hex_names(rng, n_frames, taken_names)
    paths: list[Path] = []
    for index, (projection, row_direction, top_left) in enumerate(views):
        image = np.clip(np.rint(projection[::-1] * 10.0), 0, 4095).astype("<u2")
        sop_uid = generate_uid(entropy_srcs=[*map(str, uid_key), "sop", "localizer", str(index)])
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = index + 1
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_direction, 0.0, 0.0, -1.0)]
        ds.ImagePositionPatient = [_ds(v) for v in top_left]
        ds.PixelSpacing = [_ds(dz), _ds(dxy)]
        ds.Rows, ds.Columns = image.shape
        ds.PixelData = image.tobytes()
        path = folder / f"{names[index]}{'' if rng.random() < NO_EXTENSION_FRACTION else '.dcm'}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def stored_values(hu: np.ndarray, site: Site) -> np.ndarray:
    """HU -> stored pixel values of ``site``: ``round(hu) - intercept`` in its integer type.

    The inverse is DICOM's ``hu = stored * RescaleSlope + RescaleIntercept`` with slope 1,
    so the round trip is exact to the rounding (0.5 HU). Values are clipped to what
    ``bits_stored`` can hold.
    """
    values = np.rint(hu.astype(np.float64)) - site.intercept
    if site.signed:
        low, high, dtype = -(2 ** (site.bits_stored - 1)), 2 ** (site.bits_stored - 1) - 1, "<i2"
    else:
        low, high, dtype = 0, 2**site.bits_stored - 1, "<u2"
    return np.clip(values, low, high).astype(dtype)


def _base_dataset(patient: PatientHeader, site: Site, uids: dict[str, str], *, series_uid: str) -> Dataset:
    """Tags shared by every file of a patient's study: PHI, study, site, frame of reference."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = patient.study_time
    ds.AccessionNumber = patient.accession
    ds.Modality = "CT"
    ds.Manufacturer = site.manufacturer
    ds.InstitutionName = site.institution
    ds.ReferringPhysicianName = patient.referring
    ds.StudyDescription = "CT CHEST"
    ds.ManufacturerModelName = site.model
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = patient.age
    ds.BodyPartExamined = "CHEST"
    ds.KVP = _ds(site.kvp)
    ds.ConvolutionKernel = site.kernel
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = patient.accession[-6:]
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _set_pixel_format(ds: Dataset, *, signed: bool, bits_stored: int) -> None:
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0


def _ds(value: float) -> str:
    """A decimal string (VR DS, at most 16 characters) with no float noise like 12.299999."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if len(text) > 16:
        raise ValueError(f"a DICOM decimal string must fit 16 characters; got {text!r} from {value!r}.")
    return "0" if text in ("-0", "") else text
