"""Walk a raw folder, read every file's header once, and classify it.

Only headers are read here: pixel data is skipped with pydicom's ``defer_size`` (the
reader seeks past it and remembers where it starts), so a 300-slice series is grouped
without decoding a single pixel, and uncompressed pixels can later be read straight from
that offset. Headers are read in a process pool because parsing is CPU-bound Python.

Each file becomes one :class:`FileRecord` with a ``kind``:

* ``dicom``: a DICOM image with pixel data, ready to be grouped into series;
* ``nifti``: a ``.nii`` / ``.nii.gz`` image;
* ``not_image``: a valid object that is not a patient image (SR, RTSTRUCT, RTPLAN,
  RT Dose, SEG, PDF, presentation state, DICOMDIR, waveform...);
* ``quarantined``: anything unreadable (junk, truncated, broken header), with the reason;
  also, without being opened, anything that is not a regular file inside the raw folder
  (a symbolic link whose target lies outside it or is missing, a FIFO, a socket, a
  device): opening a FIFO blocks forever, and a link to ``/etc/passwd`` is not data.

A missing dependency (``ImportError`` while reading) is not the file's fault: it raises
:class:`DependencyError` and stops the stage instead of quarantining every file.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineInputError

DEFER_BYTES = 4096
"""Elements larger than this (pixel data, big private blobs) are not loaded with the header."""

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")

DEFAULT_MAX_VOXELS = 2**31
"""``ingest.max_voxels`` of params.yaml, for callers outside a stage (tests, notebooks)."""

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

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_FLOAT_BITS = {0x7FE00008: 32, 0x7FE00009: 64}
"""Float and Double Float Pixel Data: the value size is the element's, not BitsAllocated."""

GEOMETRY_KEYWORDS: tuple[tuple[str, int], ...] = (
    ("PixelSpacing", 2),
    ("ImagerPixelSpacing", 2),
    ("ImageOrientationPatient", 6),
    ("ImagePositionPatient", 3),
    ("SliceThickness", 1),
    ("SpacingBetweenSlices", 1),
)
"""Geometry attributes and their value counts; present but unparseable means the file's
geometry is unknown, which is not the same as absent (see :func:`geometry_problem`)."""

_ENVIRONMENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
"""OS errors that describe the machine (no file handles, no memory), not a file."""


class DependencyError(PipelineInputError):
    """The interpreter running the stage lacks something every file needs (a module)."""


def environment_error(error: BaseException) -> DependencyError | None:
    """The stage-stopping error for ``error`` (or its causes), or None when the file is to blame.

    An ``ImportError`` while reading one file would fail on every file: recording it as
    each file's quarantine reason hides the real problem (a stage run by a Python
    without the project's packages, e.g. ``dvc repro`` without the venv activated).
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ImportError) or (isinstance(seen, OSError) and seen.errno in _ENVIRONMENT_ERRNOS):
            what = f"{type(seen).__name__}: {short_error(seen)}"
            return DependencyError(
                f"ingest must run under the project's Python environment; reading a file failed with {what} "
                f"under the interpreter {sys.executable!r}. This is not the file's fault, so no file was "
                "quarantined. Activate the project's virtual environment (source .venv/bin/activate) or run "
                "'make setup', then re-run (dvc repro)."
            )
        # Only explicit causes (``raise ... from``): a library that tried an optional
        # import and then failed on the file carries the ImportError as mere context.
        seen = seen.__cause__
    return None


@dataclass
class DicomHeader:
    """What grouping, ordering and pixel reading need from one DICOM image file.

    Per-frame lists have one entry per frame (one for a classic single-frame file).
    Positions and orientation are in the patient (LPS) frame, mm.

    Attributes:
        sop_uid, series_uid, study_uid: identifiers; used to group, never written.
        sop_class: SOP Class UID.
        modality: (0008,0060), e.g. ``CT``.
        rows, cols: matrix size.
        frames: NumberOfFrames (1 for single-frame).
        samples: SamplesPerPixel (3 for colour).
        photometric: PhotometricInterpretation.
        orientation: ImageOrientationPatient, 6 direction cosines, or ``None``.
        positions: ImagePositionPatient per frame, or ``None`` when absent.
        pixel_spacing: (row spacing, column spacing) mm, or ``None``.
        slice_spacing: SpacingBetweenSlices or SliceThickness, mm, or ``None``.
        slopes, intercepts: Rescale Slope/Intercept per frame (``None`` when absent).
        modality_lut: whether a Modality LUT Sequence replaces slope/intercept.
        instance_number: InstanceNumber, only a tie-breaker.
        echo: EchoNumbers, so multi-echo MR in one series splits into volumes.
        image_type: ImageType joined by ``\\``.
        transfer_syntax: Transfer Syntax UID.
        native: ``(offset, dtype)`` to read uncompressed grey pixels directly from the
            file, or ``None`` when pydicom must decode.
        technical: allow-listed technical metadata (see :mod:`pipeline.io.deid`).
    """

    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str
    modality: str
    rows: int
    cols: int
    frames: int
    samples: int
    photometric: str
    orientation: tuple[float, ...] | None
    positions: list[tuple[float, float, float]] | None
    pixel_spacing: tuple[float, float] | None
    slice_spacing: float | None
    slopes: list[float | None]
    intercepts: list[float | None]
    modality_lut: bool
    instance_number: int | None
    echo: str
    image_type: str
    transfer_syntax: str
    native: tuple[int, str] | None
    technical: dict[str, str] = field(default_factory=dict)


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
        kind: ``dicom``, ``nifti``, ``not_image`` or ``quarantined``.
        reason: why a file is ``not_image`` or ``quarantined`` (empty otherwise).
        dicom: the header of a DICOM image.
        nifti: the header of a NIfTI image.
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
    phi: set[str] = field(default_factory=set)
    series_uid: str = ""
    study_uid: str = ""
    geometry: str = ""


def walk(raw_dir: str | Path) -> list[str]:
    """Every entry under ``raw_dir`` that is not a folder, as sorted POSIX paths relative to it.

    Hidden files count too: a ledger that hides ``.DS_Store`` would not add up. So do
    symbolic links (to files or folders, broken or not), FIFOs, sockets and devices, and
    a folder that cannot be listed: each gets a ledger row, and :func:`read_header`
    quarantines the ones it must not open. Links to folders are not descended into, so a
    file is found once, under its own path.
    """
    root = str(raw_dir)
    found = []

    def unlisted(error: OSError) -> None:
        if error.filename and os.path.abspath(error.filename) != os.path.abspath(root):
            found.append(Path(os.path.relpath(error.filename, root)).as_posix())

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=unlisted):
        linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in files + linked:
            found.append(Path(os.path.relpath(os.path.join(folder, name), root)).as_posix())
    return sorted(found)


def not_regular(root: str, full: str) -> str:
    """Why ``full`` must not be opened as a file of the raw folder ``root``; '' when it may.

    Only ``lstat``/``stat``/``realpath`` are used: none of them opens the entry.
    """
    mode = os.lstat(full).st_mode
    if stat.S_ISLNK(mode):
        target = os.path.realpath(full)
        real_root = os.path.realpath(root)
        if not os.path.exists(target):
            return "broken symbolic link (its target does not exist); not followed"
        if os.path.commonpath([target, real_root]) != real_root:
            return "symbolic link to a target outside the raw folder; not followed (copy the file in instead)"
        mode = os.stat(full).st_mode
        if stat.S_ISDIR(mode):
            return "symbolic link to a folder inside the raw folder; not followed, its files have rows of their own"
    if stat.S_ISDIR(mode):
        return "folder that cannot be listed (permission denied?); its files are not counted"
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
        kind = next((words for test, words in kinds if test(mode)), "not a regular file")
        return f"not a regular file: {kind}; never opened"
    return ""


def read_headers(
    raw_dir: str | Path, paths: list[str], workers: int, max_voxels: int = DEFAULT_MAX_VOXELS
) -> list[FileRecord]:
    """Read and classify each file's header, in ``workers`` processes.

    Args:
        raw_dir: the root the paths are relative to.
        paths: relative POSIX paths.
        workers: processes; 1 reads in this process (no pool start-up cost).
        max_voxels: a file declaring more voxels is quarantined from its header alone.

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


def read_header(full_path: str | Path, rel_path: str, max_voxels: int = DEFAULT_MAX_VOXELS) -> FileRecord:
    """Classify one file; see the module docstring for the kinds."""
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


def _classify_dicom(full: str, rel: str, max_voxels: int) -> FileRecord:
    ds_holder: list[object] = []
    record = _classify_dicom_dataset(full, rel, ds_holder, max_voxels)
    if record.kind == "dicom" and ds_holder:
        record.geometry = geometry_problem(ds_holder[0])
    return _with_uids(record, ds_holder[0]) if ds_holder else record


def geometry_problem(ds: object) -> str:
    """Which geometry attribute is present but not usable numbers; '' when all are fine.

    Absent attributes are no problem here (a secondary capture has no spacing, and the
    planner assumes 1 mm with a note); a value such as ``PixelSpacing = 'abc'`` means the
    writer put something wrong there, and guessing 1 mm would silently mis-scale.
    """
    get = ds.get  # type: ignore[attr-defined]
    for keyword, count in GEOMETRY_KEYWORDS:
        try:
            value = get(keyword)
        except Exception:
            return f"{keyword} cannot be read"
        if value is None or (isinstance(value, (str, bytes)) and not value.strip()):
            continue
        numbers = _float(value) if count == 1 else _floats(value, count)
        if numbers is None:
            return f"{keyword} must be {count} finite number(s); got a value that is not"
        positive = keyword.endswith(("Spacing", "Thickness"))
        if positive and min((numbers,) if isinstance(numbers, float) else numbers) <= 0:
            return f"{keyword} must be positive; got a value <= 0"
    return ""


def _classify_dicom_dataset(full: str, rel: str, ds_holder: list[object], max_voxels: int) -> FileRecord:
    import pydicom
    from pydicom.errors import InvalidDicomError

    deflated, problem = _deflated_problem(full)
    if problem:
        return FileRecord(rel, "quarantined", problem)
    # pydicom inflates a deflated dataset into memory, where deferred offsets no longer
    # point into the file: read it whole (its size was just bounded).
    defer = None if deflated else DEFER_BYTES
    try:
        with CappedReader(full) as handle:
            ds = pydicom.dcmread(handle, defer_size=defer)
    except InvalidDicomError:
        # Files written without the 128-byte preamble are still DICOM; force=True reads
        # them, and the checks below reject junk that merely parsed.
        try:
            with CappedReader(full) as handle:
                ds = pydicom.dcmread(handle, defer_size=defer, force=True)
            if not _looks_like_dicom(ds):
                return FileRecord(rel, "quarantined", "not DICOM or NIfTI (no DICOM preamble or SOP Class)")
        except Exception as error:
            if environment_error(error) is not None:
                raise
            return FileRecord(rel, "quarantined", "not DICOM or NIfTI (no DICOM preamble or SOP Class)")
    from pipeline.io.deid import phi_values

    ds.fileobj_type = CappedReader  # deferred elements are read later through a re-opened file
    ds_holder.append(ds)
    if len(ds) == 0:
        return FileRecord(rel, "quarantined", "no readable DICOM elements (truncated or corrupt file)")
    phi = phi_values(ds)
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    why_not = _non_image_reason(sop_class, modality)
    if why_not:
        return FileRecord(rel, "not_image", why_not, phi=phi)
    if "Rows" not in ds or "Columns" not in ds:
        if "Image Storage" in uid_name(sop_class):
            return FileRecord(rel, "quarantined", "image object without Rows/Columns (incomplete file)", phi=phi)
        return FileRecord(rel, "not_image", "DICOM object without an image matrix (no Rows/Columns)", phi=phi)
    if not any(tag in ds for tag in _PIXEL_TAGS):
        return FileRecord(rel, "quarantined", "DICOM image header without Pixel Data (truncated transfer?)", phi=phi)
    try:
        header, problem = _image_header(ds, full, modality, sop_class, max_voxels)
    except Exception as error:
        if environment_error(error) is not None:
            raise
        return FileRecord(rel, "quarantined", f"unusable image header: {type(error).__name__}: {short_error(error, full)}", phi=phi)
    if problem:
        return FileRecord(rel, "quarantined", problem, phi=phi)
    return FileRecord(rel, "dicom", dicom=header, phi=phi)


class CappedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more bytes than remain in it.

    Python allocates the ``n`` bytes a read asks for before reading; pydicom asks for
    an element's declared length, so one corrupt length (4 GB) in a 40 KB file would
    allocate 4 GB.
    """

    def __init__(self, path: str, mode: str = "rb") -> None:  # pydicom re-opens with (path, "rb")
        super().__init__(io.FileIO(path, "rb"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(0, self._size - self.tell()))
            if size == 0:
                return b""
        return super().read(size)


def _deflated_problem(full: str) -> tuple[bool, str]:
    """Whether the file uses the Deflated transfer syntax, and why it must not be read.

    pydicom inflates such a dataset whole before parsing it, so its inflated size is
    measured first, streaming with bounded memory, and held to the ratio a gzip NIfTI
    is held to (:data:`pipeline.io.nifti.MAX_INFLATE_RATIO`).
    """
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from pipeline.io.nifti import INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO

    with open(full, "rb") as handle:
        try:
            read_preamble(handle, force=True)
            meta = _read_file_meta_info(handle)
        except Exception:  # not DICOM, or a broken meta group: the full read decides
            return False, ""
        if str(meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian:
            return False, ""
        stored = os.path.getsize(full)
        limit = max(INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO * stored)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while not inflater.eof and (chunk := handle.read(2**20)):
            while chunk and not inflater.eof:
                total += len(inflater.decompress(chunk, 2**20))
                chunk = inflater.unconsumed_tail
                if total > limit:
                    return True, (
                        f"decompression bomb: the deflated dataset of a {stored:,}-byte file expands past "
                        f"{limit:,} bytes, more than {MAX_INFLATE_RATIO}-fold; refused before inflating the rest"
                    )
    return True, ""


def _with_uids(record: FileRecord, ds: object) -> FileRecord:
    """Attach the series and study UIDs so UID locators also find non-image objects."""
    try:
        record.series_uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        record.study_uid = str(getattr(ds, "StudyInstanceUID", "") or "")
    except Exception:
        pass
    return record


def uid_name(uid: str) -> str:
    """pydicom's name for a UID ('CT Image Storage'), or '' when it has none."""
    from pydicom.uid import UID

    try:
        return UID(uid).name if uid else ""
    except Exception:
        return ""


def _looks_like_dicom(ds: object) -> bool:
    try:
        sop_class = str(getattr(ds, "SOPClassUID", "") or "")
        return sop_class.startswith("1.2.840.10008.") and len(ds) > 3  # type: ignore[arg-type]
    except Exception:
        return False


def _non_image_reason(sop_class: str, modality: str) -> str:
    for prefix, what in _NON_IMAGE_PREFIXES:
        if sop_class.startswith(prefix):
            return f"not an image: {what}"
    if modality in _NON_IMAGE_MODALITIES:
        return f"not an image: {_NON_IMAGE_MODALITIES[modality]}"
    return ""


def _image_header(
    ds: object, full: str, modality: str, sop_class: str, max_voxels: int
) -> tuple[DicomHeader | None, str]:
    from pipeline.io.deid import TECHNICAL_KEYWORDS

    get = ds.get  # type: ignore[attr-defined]
    rows, cols = int(get("Rows")), int(get("Columns"))
    frames = int(get("NumberOfFrames", 1) or 1)
    samples = int(get("SamplesPerPixel", 1) or 1)
    if rows < 1 or cols < 1 or frames < 1 or samples < 1:
        return None, (
            f"image matrix must be positive; got Rows={rows}, Columns={cols}, NumberOfFrames={frames}, "
            f"SamplesPerPixel={samples}"
        )
    file_meta = getattr(ds, "file_meta", None)
    syntax = str(file_meta.get("TransferSyntaxUID", "")) if file_meta is not None else ""
    if not syntax:
        syntax = _guess_syntax(ds)
    # Per-frame lists and arrays below follow from the header: a 39 KB file may declare
    # a billion frames, so the declared size is checked against the file first.
    problem = _declared_size_problem(ds, full, syntax, (rows, cols, frames, samples), max_voxels)
    if problem:
        return None, problem
    shared = _first(get("SharedFunctionalGroupsSequence"))
    per_frame = get("PerFrameFunctionalGroupsSequence")

    orientation = _floats(get("ImageOrientationPatient"), 6)
    spacing = _floats(get("PixelSpacing"), 2) or _floats(get("ImagerPixelSpacing"), 2)
    thickness = _float(get("SliceThickness"))
    slice_spacing = _float(get("SpacingBetweenSlices")) or thickness
    slopes: list[float | None] = [_float(get("RescaleSlope"))]
    intercepts: list[float | None] = [_float(get("RescaleIntercept"))]
    positions: list[tuple[float, float, float]] | None = None
    single = _floats(get("ImagePositionPatient"), 3)
    if single is not None:
        positions = [single]  # type: ignore[list-item]

    if shared is not None or per_frame:
        orientation = _group_value(shared, None, "PlaneOrientationSequence", "ImageOrientationPatient", 6) or orientation
        spacing = _group_value(shared, None, "PixelMeasuresSequence", "PixelSpacing", 2) or spacing
        frame_items = list(per_frame or [])
        if len(frame_items) == frames:
            frame_positions = []
            frame_slopes, frame_intercepts = [], []
            for item in frame_items:
                orientation = orientation or _group_value(item, None, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
                spacing = spacing or _group_value(item, None, "PixelMeasuresSequence", "PixelSpacing", 2)
                frame_positions.append(_group_value(item, shared, "PlanePositionSequence", "ImagePositionPatient", 3))
                frame_slopes.append(_group_scalar(item, shared, "PixelValueTransformationSequence", "RescaleSlope"))
                frame_intercepts.append(_group_scalar(item, shared, "PixelValueTransformationSequence", "RescaleIntercept"))
            positions = frame_positions if all(p is not None for p in frame_positions) else None  # type: ignore[assignment]
            if any(s is not None for s in frame_slopes):
                slopes, intercepts = frame_slopes, frame_intercepts
        measured = _group_scalar(shared, None, "PixelMeasuresSequence", "SpacingBetweenSlices") or _group_scalar(
            shared, None, "PixelMeasuresSequence", "SliceThickness"
        )
        slice_spacing = slice_spacing or measured
    if orientation is not None and not _valid_orientation(orientation):
        orientation = None
    if positions is not None and frames > 1 and len(positions) != frames:
        positions = None
    if len(slopes) == 1 and frames > 1:
        slopes, intercepts = slopes * frames, intercepts * frames

    native, problem = _native_layout(ds, full, syntax, rows, cols, frames, samples)
    if problem:
        return None, problem
    technical = {}
    for column, keyword in TECHNICAL_KEYWORDS.items():
        value = get(keyword)
        if value is not None and str(value).strip():
            technical[column] = _clean(value)
    header = DicomHeader(
        sop_uid=str(get("SOPInstanceUID", "") or ""),
        series_uid=str(get("SeriesInstanceUID", "") or ""),
        study_uid=str(get("StudyInstanceUID", "") or ""),
        sop_class=sop_class,
        modality=modality or "OT",
        rows=rows,
        cols=cols,
        frames=frames,
        samples=samples,
        photometric=str(get("PhotometricInterpretation", "") or "").strip().upper(),
        orientation=orientation,
        positions=positions,
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_spacing=slice_spacing if slice_spacing and slice_spacing > 0 else None,
        slopes=slopes,
        intercepts=intercepts,
        modality_lut="ModalityLUTSequence" in ds,  # type: ignore[operator]
        instance_number=_int(get("InstanceNumber")),
        echo=_clean(get("EchoNumbers", "")),
        image_type="\\".join(str(v) for v in (get("ImageType") or [])),
        transfer_syntax=syntax,
        native=native,
        technical=technical,
    )
    return header, ""


def _declared_size_problem(
    ds: object, full: str, syntax: str, matrix: tuple[int, int, int, int], max_voxels: int
) -> str:
    """Why the image size the header declares cannot be honoured, or ``""``.

    Checks ``ingest.max_voxels``, then the bytes the Pixel Data element really holds:
    uncompressed pixels must all be there; encapsulated ones need at least one 8-byte
    item per frame and may not expand past :data:`pipeline.io.nifti.MAX_INFLATE_RATIO`.
    """
    from pydicom.uid import UID

    from pipeline.io.nifti import INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO

    rows, cols, frames, samples = matrix
    voxels = rows * cols * frames
    declared = f"Rows {rows} x Columns {cols} x NumberOfFrames {frames}"
    if voxels > max_voxels:
        return (
            f"image too large: the header declares {declared} = {voxels:,} voxels; ingest.max_voxels is "
            f"{max_voxels:,}. Raise ingest.max_voxels in params.yaml if the image is real."
        )
    tag = next(t for t in _PIXEL_TAGS if t in ds)  # type: ignore[operator]
    present = _stored_bytes(ds._dict[tag], full)  # type: ignore[attr-defined]
    get = ds.get  # type: ignore[attr-defined]
    bits = _FLOAT_BITS.get(tag) or int(get("BitsAllocated", 0) or 0)
    uid = UID(syntax) if syntax else None
    if tag == 0x7FE00010 and uid is not None and uid.is_encapsulated:
        decoded = voxels * samples * max(bits, 8) // 8
        if frames > present // 8:
            return (
                f"truncated: the header declares {frames:,} frames; the encapsulated Pixel Data holds "
                f"{present:,} bytes, room for at most {present // 8:,} (8 bytes per frame item at least)"
            )
        if decoded > max(INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO * present):
            return (
                f"decompression bomb: the header declares {declared} x {samples} samples x {bits} bits = "
                f"{decoded:,} bytes from {present:,} compressed bytes, more than {MAX_INFLATE_RATIO}-fold expansion"
            )
        return ""
    if tag == 0x7FE00010 and bits not in (1, 8, 16, 32):
        return f"BitsAllocated must be 1, 8, 16 or 32; got {bits}"
    photometric = str(get("PhotometricInterpretation", "") or "").strip().upper()
    per_pixel = 2 if (samples == 3 and photometric == "YBR_FULL_422") else samples
    expected = (voxels * per_pixel * bits + 7) // 8
    if present < expected:
        return (
            f"truncated: the header declares {declared} x {per_pixel} samples x {bits} bits = {expected:,} bytes; "
            f"Pixel Data holds {present:,}"
        )
    return ""


def _stored_bytes(raw: object, full: str) -> int:
    """Bytes a (possibly deferred) Pixel Data element really holds in the file."""
    value = getattr(raw, "value", None)
    if value is not None:
        return len(value) if isinstance(value, (bytes, bytearray)) else 0
    length = int(getattr(raw, "length", 0))
    available = max(0, os.path.getsize(full) - int(getattr(raw, "value_tell", 0)))
    return available if length == 0xFFFFFFFF else min(length, available)


def _native_layout(
    ds: object, full: str, syntax: str, rows: int, cols: int, frames: int, samples: int
) -> tuple[tuple[int, str] | None, str]:
    """Where uncompressed grey pixels start and their dtype.

    Returns ``(None, "")`` when pydicom has to decode (compressed, colour, 1-bit,
    float). Sizes were checked by :func:`_declared_size_problem` already.
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.uid import UID

    if 0x7FE00010 not in ds:  # type: ignore[operator]
        return None, ""
    raw = ds._dict[0x7FE00010]  # type: ignore[attr-defined]
    uid = UID(syntax) if syntax else None
    if uid is not None and (uid.is_encapsulated or uid.is_deflated):
        return None, ""
    get = ds.get  # type: ignore[attr-defined]
    bits = int(get("BitsAllocated", 0) or 0)
    if bits == 1 or samples != 1 or not isinstance(raw, RawDataElement) or raw.value is not None:
        return None, ""
    if raw.length == 0xFFFFFFFF:
        return None, "native Pixel Data must have a defined length; got an undefined length"
    signed = int(get("PixelRepresentation", 0) or 0) == 1
    order = "<" if raw.is_little_endian else ">"
    dtype = f"{order}{'i' if signed else 'u'}{bits // 8}"
    return (raw.value_tell, dtype), ""


def _valid_orientation(cosines: tuple[float, ...]) -> bool:
    """Two unit vectors at right angles, within scanner rounding (PS3.3 C.7.6.2.1.1)."""
    row, col = cosines[:3], cosines[3:]
    norm_row = math.sqrt(sum(v * v for v in row))
    norm_col = math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col))
    return abs(norm_row - 1) < 0.01 and abs(norm_col - 1) < 0.01 and abs(dot) < 0.01


def _guess_syntax(ds: object) -> str:
    implicit = getattr(ds, "is_implicit_VR", None)
    little = getattr(ds, "is_little_endian", True)
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2"


def _first(sequence: object) -> object | None:
    try:
        return sequence[0] if sequence else None  # type: ignore[index]
    except Exception:
        return None


def _group_value(item: object, fallback: object, sequence: str, keyword: str, length: int) -> tuple[float, ...] | None:
    """``keyword`` (``length`` numbers) from a per-frame functional group, else the shared one."""
    return _from_groups(item, fallback, sequence, keyword, lambda v: _floats(v, length))


def _group_scalar(item: object, fallback: object, sequence: str, keyword: str) -> float | None:
    """One number from a per-frame functional group, else the shared one."""
    return _from_groups(item, fallback, sequence, keyword, _float)


def _from_groups(item: object, fallback: object, sequence: str, keyword: str, convert):  # noqa: ANN001, ANN202
    for source in (item, fallback):
        group = _first(getattr(source, sequence, None)) if source is not None else None
        if group is not None:
            value = convert(getattr(group, keyword, None))
            if value is not None:
                return value
    return None


def _floats(value: object, length: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        items = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(items) != length or not all(math.isfinite(v) for v in items):
        return None
    return tuple(items)


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]  # type: ignore[index]
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _clean(value: object) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    return " ".join(str(value).replace(",", " ").split())


def short_error(error: BaseException, path: str = "") -> str:
    """The error's text on one line, at most 160 characters, for a ledger reason.

    ``path`` (the file's full path, which libraries quote in their messages) is replaced
    by ``<file>`` before cutting: a cut path could leave a folder named after a patient.
    """
    text = str(error)
    if path:
        text = text.replace(path, "<file>")
    text = " ".join(text.split())
    return text[:160]
