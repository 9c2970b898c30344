"""Read every file's header once and classify it.

Headers are read in a process pool because parsing is CPU-bound Python; pixel data is
not read here (:mod:`pipeline.io.dicom_read` defers it). Each file becomes one
:class:`FileRecord` with a ``kind``:

* ``dicom``: a DICOM image with pixel data, ready to be grouped into series;
* ``nifti``: a ``.nii`` / ``.nii.gz`` image;
* ``raster``: a PNG, JPEG or TIFF image file (:mod:`pipeline.io.raster`), by its name's ending;
* ``not_image``: a valid object that is not a patient image (SR, RTSTRUCT, RTPLAN,
  RT Dose, SEG, PDF, presentation state, DICOMDIR, waveform...);
* ``quarantined``: anything unreadable (junk, truncated, broken header), with the reason;
  also, without being opened, anything that is not a regular file inside the raw folder
  (:func:`pipeline.io.tree.not_regular`).

A missing dependency (``ImportError`` while reading) is not the file's fault: it raises
:class:`pipeline.io.failures.DependencyError` and stops the stage instead of
quarantining every file.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path

from pipeline.io.declared_size import PIXEL_TAGS
from pipeline.io.dicom_header import DicomHeader, geometry_problem, image_header
from pipeline.io.dicom_read import read_dataset
from pipeline.io.dicom_values import uid_name
from pipeline.io.failures import environment_error, short_error
from pipeline.io.raster import RASTER_SUFFIXES, RasterHeader
from pipeline.io.tree import not_regular

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")

_NON_IMAGE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("1.2.840.10008.1.3.10", "DICOMDIR (media directory index)"),
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report or key object selection"),
    ("1.2.840.10008.5.1.4.1.1.481.2", "RT Dose (dose grid, not an image of the patient)"),
    ("1.2.840.10008.5.1.4.1.1.481.3", "RT Structure Set"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RT Plan"),
    ("1.2.840.10008.5.1.4.1.1.481.", "RT treatment object"),
    ("1.2.840.10008.5.1.4.1.1.66", "segmentation, registration or raw data"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document (PDF/CDA/STL)"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform"),
    ("1.2.840.10008.5.1.4.1.1.67", "real-world value map"),
)
"""SOP Class UID prefixes of objects that are valid but not images (PS3.4 Annex B).

RT Image (``...481.1``) is an image and is not in the list; the order matters because
the first matching prefix wins.
"""

_NON_IMAGE_MODALITIES: dict[str, str] = {
    "SR": "structured report",
    "KO": "key object selection",
    "PR": "presentation state",
    "RTSTRUCT": "RT Structure Set",
    "RTPLAN": "RT Plan",
    "RTDOSE": "RT Dose (dose grid, not an image of the patient)",
    "RTRECORD": "RT treatment record",
    "SEG": "segmentation",
    "REG": "registration",
    "DOC": "encapsulated document",
    "ECG": "waveform",
}


@dataclass
class NiftiHeader:
    """Shape and voxel size of a NIfTI file, from its header only."""

    shape: tuple[int, ...]
    zooms: tuple[float, ...]


@dataclass
class FileRecord:
    """One file under the raw folder and what its header says.

    Attributes:
        path: POSIX path relative to the raw folder.
        kind: ``dicom``, ``nifti``, ``raster``, ``not_image`` or ``quarantined``.
        reason: why a file is ``not_image`` or ``quarantined`` (empty otherwise).
        dicom: the header of a DICOM image.
        nifti: the header of a NIfTI image.
        raster: the header of a PNG, JPEG or TIFF image.
        phi: identifier strings found in the header; kept in memory for redaction only.
        geometry: for a DICOM image, which geometry value is present but unusable
            (``PixelSpacing is not 2 positive numbers``); empty when none is. Ingest
            quarantines such a file unless ``ingest.assume_missing_geometry``.
    """

    path: str
    kind: str
    reason: str = ""
    dicom: DicomHeader | None = None
    nifti: NiftiHeader | None = None
    raster: RasterHeader | None = None
    phi: set[str] = field(default_factory=set)
    series_uid: str = ""
    study_uid: str = ""
    geometry: str = ""


class ValueSharing:
    """Makes equal strings and tuples in header records one object each, across records.

    The files of a series repeat most header values (UIDs, modality, vendor, orientation,
    spacing, the patient's name among the redactor's values), but each file's parse makes
    its own copies. Shared, they take memory once, and :mod:`pickle` writes each once: for
    200 CT series of 32 files the store's header records went from 5.6 to 2.4 MB, their
    pickling from 51 to 25 ms and their loading from 42 to 30 ms. Tuples are matched by their ``repr`` so that ``-0.0`` stays
    apart from ``0.0`` and ``1`` from ``1.0`` (equal in Python, not in a volume's affine).
    Only immutable values are shared; lists, sets and dicts stay each record's own.
    """

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._tuples: dict[str, tuple] = {}
        self._fields: dict[type, tuple[str, ...]] = {}

    def share(self, records: list[FileRecord]) -> None:
        """Replace, in place, each record's strings and tuples by the first equal one seen."""
        for record in records:
            self._share_fields(record)
            record.phi = {self._value(v) for v in record.phi}
            for header in (record.dicom, record.nifti):  # a RasterHeader is frozen, and one per image
                if header is not None:
                    self._share_fields(header)
            if record.dicom is not None:
                record.dicom.technical = {k: self._value(v) for k, v in record.dicom.technical.items()}

    def _share_fields(self, obj: object) -> None:
        names = self._fields.get(type(obj))
        if names is None:
            names = self._fields[type(obj)] = tuple(f.name for f in dataclass_fields(obj))  # type: ignore[arg-type]
        for name in names:
            value = getattr(obj, name)
            if type(value) is str or type(value) is tuple:
                setattr(obj, name, self._value(value))

    def _value(self, value):  # noqa: ANN001, ANN202
        if type(value) is str:
            return self._strings.setdefault(value, value)
        if type(value) is tuple:
            return self._tuples.setdefault(repr(value), value)
        return value


def read_headers(raw_dir: str | Path, paths: list[str], *, workers: int, max_voxels: int) -> list[FileRecord]:
    """Read and classify each file's header, in ``workers`` processes.

    Args:
        raw_dir: the root the paths are relative to.
        paths: relative POSIX paths.
        workers: processes; 1 reads in this process (no pool start-up cost).
        max_voxels: a file declaring more voxels is quarantined from its header alone
            (``ingest.max_voxels``).

    Returns:
        One record per path, in the same order. Never raises for a bad file.
    """
    root = str(raw_dir)
    jobs = [(root, p, max_voxels) for p in paths]
    if workers <= 1 or len(jobs) < 8:
        return [_read_one(job) for job in jobs]
    chunk = max(1, min(64, math.ceil(len(jobs) / (workers * 8))))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_read_one, jobs, chunksize=chunk))


def read_header(full_path: str | Path, rel_path: str, *, max_voxels: int) -> FileRecord:
    """Classify one file (see the module docstring for the kinds); ``max_voxels`` as in :func:`read_headers`."""
    full = str(full_path)
    root = full[: len(full) - len(rel_path)] if full.endswith(rel_path) else os.path.dirname(full)
    return _classify(root or ".", full, rel_path, max_voxels)


def _read_one(job: tuple[str, str, int]) -> FileRecord:
    root, rel, max_voxels = job
    return _classify(root, os.path.join(root, rel), rel, max_voxels)


def _classify(root: str, full: str, rel: str, max_voxels: int) -> FileRecord:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            refused = not_regular(root, full)
            if refused:
                return FileRecord(rel, "quarantined", refused)
            if rel.lower().endswith(NIFTI_SUFFIXES):
                return _classify_nifti(full, rel, max_voxels)
            if rel.lower().endswith(RASTER_SUFFIXES):
                return _classify_raster(full, rel, max_voxels)
            return _classify_dicom(full, rel, max_voxels)
        except Exception as error:  # one bad file must never stop the scan
            environment = environment_error(error)
            if environment is not None:
                raise environment from error
            return FileRecord(rel, "quarantined", f"unreadable: {type(error).__name__}: {short_error(error, full)}")


def _classify_nifti(full: str, rel: str, max_voxels: int) -> FileRecord:
    from pipeline.io.nifti import layout_problem, read_layout

    try:
        layout = read_layout(full)
    except Exception as error:
        if environment_error(error) is not None:
            raise
        return FileRecord(rel, "quarantined", f"unreadable NIfTI header: {type(error).__name__}: {short_error(error, full)}")
    problem = layout_problem(layout, max_voxels)
    if problem:
        return FileRecord(rel, "quarantined", problem)
    zooms = tuple(float(z) for z in layout.header.get_zooms())  # type: ignore[attr-defined]
    return FileRecord(rel, "nifti", nifti=NiftiHeader(shape=layout.shape, zooms=zooms))


def _classify_raster(full: str, rel: str, max_voxels: int) -> FileRecord:
    from pipeline.io.raster import read_raster_header

    try:
        header, problem = read_raster_header(full, max_voxels)
    except Exception as error:
        if environment_error(error) is not None:
            raise
        return FileRecord(rel, "quarantined", f"unreadable image file: {type(error).__name__}: {short_error(error, full)}")
    if header is None:
        return FileRecord(rel, "quarantined", problem)
    return FileRecord(rel, "raster", raster=header)


def _classify_dicom(full: str, rel: str, max_voxels: int) -> FileRecord:
    ds, problem = read_dataset(full)
    if ds is None:
        return FileRecord(rel, "quarantined", problem)
    record = _classify_dataset(ds, full, rel, max_voxels)
    if record.kind == "dicom":
        record.geometry = geometry_problem(ds)
    return _with_uids(record, ds)


def _classify_dataset(ds: object, full: str, rel: str, max_voxels: int) -> FileRecord:
    """An image with its header, a valid non-image object, or a quarantined file."""
    from pipeline.io.deid import phi_values

    if len(ds) == 0:  # type: ignore[arg-type]
        return FileRecord(rel, "quarantined", "no readable DICOM elements (truncated or corrupt file)")
    phi = phi_values(ds)
    get = ds.get  # type: ignore[attr-defined]
    sop_class = str(get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "") or "")  # type: ignore[attr-defined]
    modality = str(get("Modality", "") or "").strip().upper()
    why_not = _non_image_reason(sop_class, modality)
    if why_not:
        return FileRecord(rel, "not_image", why_not, phi=phi)
    if "Rows" not in ds or "Columns" not in ds:  # type: ignore[operator]
        if "Image Storage" in uid_name(sop_class):
            return FileRecord(rel, "quarantined", "image object without Rows/Columns (incomplete file)", phi=phi)
        return FileRecord(rel, "not_image", "DICOM object without an image matrix (no Rows/Columns)", phi=phi)
    if not any(tag in ds for tag in PIXEL_TAGS):  # type: ignore[operator]
        return FileRecord(rel, "quarantined", "DICOM image header without Pixel Data (truncated transfer?)", phi=phi)
    try:
        header, problem = image_header(ds, full, modality, sop_class, max_voxels)
    except Exception as error:
        if environment_error(error) is not None:
            raise
        return FileRecord(rel, "quarantined", f"unusable image header: {type(error).__name__}: {short_error(error, full)}", phi=phi)
    if problem:
        return FileRecord(rel, "quarantined", problem, phi=phi)
    return FileRecord(rel, "dicom", dicom=header, phi=phi)


def _with_uids(record: FileRecord, ds: object) -> FileRecord:
    """Attach the series and study UIDs so UID locators also find non-image objects."""
    try:
        record.series_uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        record.study_uid = str(getattr(ds, "StudyInstanceUID", "") or "")
    except Exception:
        pass
    return record


def _non_image_reason(sop_class: str, modality: str) -> str:
    for prefix, what in _NON_IMAGE_PREFIXES:
        if sop_class.startswith(prefix):
            return f"not an image: {what}"
    if modality in _NON_IMAGE_MODALITIES:
        return f"not an image: {_NON_IMAGE_MODALITIES[modality]}"
    return ""
