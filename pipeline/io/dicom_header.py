"""What grouping, ordering and pixel reading need from one DICOM image header.

:func:`image_header` turns a pydicom dataset (pixel data deferred) into a
:class:`DicomHeader`: matrix, geometry per frame (classic attributes, or the functional
groups of an enhanced multi-frame object), rescale values, allow-listed technical
metadata and, for uncompressed grey pixels, where they start in the file. A header that
declares more than the file holds is refused first (:mod:`pipeline.io.declared_size`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from pipeline.io.declared_size import PIXEL_DATA, declared_size_problem
from pipeline.io.dicom_values import first_item, floats, integer, number, one_line

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
class _Geometry:
    """Geometry and rescale values being gathered for one file, before the checks."""

    orientation: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    slice_spacing: float | None
    positions: list[Any] | None
    slopes: list[float | None]
    intercepts: list[float | None]


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
        numbers = number(value) if count == 1 else floats(value, count)
        if numbers is None:
            return f"{keyword} must be {count} finite number(s); got a value that is not"
        positive = keyword.endswith(("Spacing", "Thickness"))
        if positive and min((numbers,) if isinstance(numbers, float) else numbers) <= 0:
            return f"{keyword} must be positive; got a value <= 0"
    return ""


def image_header(
    ds: object, full: str, modality: str, sop_class: str, max_voxels: int
) -> tuple[DicomHeader | None, str]:
    """The header of an image file, or ``None`` and why its declared image cannot be read.

    Args:
        ds: the dataset, with Rows, Columns and a Pixel Data element (pixels deferred).
        full: the file's path (the bytes a deferred element holds are measured there).
        modality: Modality, upper case ('' when absent).
        sop_class: SOP Class UID.
        max_voxels: a larger declared image is refused from its header alone.
    """
    get = ds.get  # type: ignore[attr-defined]
    rows, cols = int(get("Rows")), int(get("Columns"))
    frames = int(get("NumberOfFrames", 1) or 1)
    samples = int(get("SamplesPerPixel", 1) or 1)
    if rows < 1 or cols < 1 or frames < 1 or samples < 1:
        return None, (
            f"image matrix must be positive; got Rows={rows}, Columns={cols}, NumberOfFrames={frames}, "
            f"SamplesPerPixel={samples}"
        )
    syntax = _transfer_syntax(ds)
    # Per-frame lists and arrays below follow from the header: a 39 KB file may declare
    # a billion frames, so the declared size is checked against the file first.
    problem = declared_size_problem(ds, full, syntax, (rows, cols, frames, samples), max_voxels)
    if problem:
        return None, problem
    geometry = _geometry(get, frames)
    native, problem = native_layout(ds, syntax, samples)
    if problem:
        return None, problem
    return _header(ds, geometry, sop_class, modality, (rows, cols, frames, samples), syntax, native), ""


def _transfer_syntax(ds: object) -> str:
    file_meta = getattr(ds, "file_meta", None)
    syntax = str(file_meta.get("TransferSyntaxUID", "")) if file_meta is not None else ""
    return syntax or _guess_syntax(ds)


def _geometry(get: Callable[..., Any], frames: int) -> _Geometry:
    """Orientation, spacing, positions and rescale values per frame, checked for consistency."""
    shared = first_item(get("SharedFunctionalGroupsSequence"))
    per_frame = get("PerFrameFunctionalGroupsSequence")
    geometry = _attribute_geometry(get)
    if shared is not None or per_frame:
        _functional_group_geometry(geometry, shared, list(per_frame or []), frames)
    if geometry.orientation is not None and not _valid_orientation(geometry.orientation):
        geometry.orientation = None
    if geometry.positions is not None and frames > 1 and len(geometry.positions) != frames:
        geometry.positions = None
    if len(geometry.slopes) == 1 and frames > 1:
        geometry.slopes, geometry.intercepts = geometry.slopes * frames, geometry.intercepts * frames
    return geometry


def _attribute_geometry(get: Callable[..., Any]) -> _Geometry:
    """Geometry from the classic top-level attributes (one plane, or one value for all frames)."""
    thickness = number(get("SliceThickness"))
    single = floats(get("ImagePositionPatient"), 3)
    return _Geometry(
        orientation=floats(get("ImageOrientationPatient"), 6),
        spacing=floats(get("PixelSpacing"), 2) or floats(get("ImagerPixelSpacing"), 2),
        slice_spacing=number(get("SpacingBetweenSlices")) or thickness,
        positions=[single] if single is not None else None,
        slopes=[number(get("RescaleSlope"))],
        intercepts=[number(get("RescaleIntercept"))],
    )


def _functional_group_geometry(geometry: _Geometry, shared: object, items: list[object], frames: int) -> None:
    """Fill ``geometry`` from an enhanced object's shared and per-frame functional groups."""
    geometry.orientation = (
        _group_value(shared, None, "PlaneOrientationSequence", "ImageOrientationPatient", 6) or geometry.orientation
    )
    geometry.spacing = _group_value(shared, None, "PixelMeasuresSequence", "PixelSpacing", 2) or geometry.spacing
    if len(items) == frames:
        _per_frame_geometry(geometry, shared, items)
    measured = _group_scalar(shared, None, "PixelMeasuresSequence", "SpacingBetweenSlices") or _group_scalar(
        shared, None, "PixelMeasuresSequence", "SliceThickness"
    )
    geometry.slice_spacing = geometry.slice_spacing or measured


def _per_frame_geometry(geometry: _Geometry, shared: object, items: list[object]) -> None:
    """Positions and rescale values of each frame (its own group, else the shared one)."""
    positions, slopes, intercepts = [], [], []
    for item in items:
        geometry.orientation = geometry.orientation or _group_value(
            item, None, "PlaneOrientationSequence", "ImageOrientationPatient", 6
        )
        geometry.spacing = geometry.spacing or _group_value(item, None, "PixelMeasuresSequence", "PixelSpacing", 2)
        positions.append(_group_value(item, shared, "PlanePositionSequence", "ImagePositionPatient", 3))
        slopes.append(_group_scalar(item, shared, "PixelValueTransformationSequence", "RescaleSlope"))
        intercepts.append(_group_scalar(item, shared, "PixelValueTransformationSequence", "RescaleIntercept"))
    geometry.positions = positions if all(p is not None for p in positions) else None
    if any(s is not None for s in slopes):
        geometry.slopes, geometry.intercepts = slopes, intercepts


def _header(
    ds: object,
    geometry: _Geometry,
    sop_class: str,
    modality: str,
    matrix: tuple[int, int, int, int],
    syntax: str,
    native: tuple[int, str] | None,
) -> DicomHeader:
    get = ds.get  # type: ignore[attr-defined]
    rows, cols, frames, samples = matrix
    return DicomHeader(
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
        orientation=geometry.orientation,
        positions=geometry.positions,
        pixel_spacing=geometry.spacing,  # type: ignore[arg-type]
        slice_spacing=geometry.slice_spacing if geometry.slice_spacing and geometry.slice_spacing > 0 else None,
        slopes=geometry.slopes,
        intercepts=geometry.intercepts,
        modality_lut="ModalityLUTSequence" in ds,  # type: ignore[operator]
        instance_number=integer(get("InstanceNumber")),
        echo=one_line(get("EchoNumbers", "")),
        image_type="\\".join(str(v) for v in (get("ImageType") or [])),
        transfer_syntax=syntax,
        native=native,
        technical=_technical(get),
    )


def _technical(get: Callable[..., Any]) -> dict[str, str]:
    """The allow-listed technical values present in the header, as one-line text."""
    from pipeline.io.deid import TECHNICAL_KEYWORDS

    technical = {}
    for column, keyword in TECHNICAL_KEYWORDS.items():
        value = get(keyword)
        if value is not None and str(value).strip():
            technical[column] = one_line(value)
    return technical


def native_layout(ds: object, syntax: str, samples: int) -> tuple[tuple[int, str] | None, str]:
    """Where uncompressed grey pixels start and their dtype.

    Returns ``(None, "")`` when pydicom has to decode (compressed, colour, 1-bit,
    float). Sizes were checked by :func:`declared_size_problem` already.
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.uid import UID

    if PIXEL_DATA not in ds:  # type: ignore[operator]
        return None, ""
    raw = ds._dict[PIXEL_DATA]  # type: ignore[attr-defined]
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


def _group_value(item: object, fallback: object, sequence: str, keyword: str, length: int) -> tuple[float, ...] | None:
    """``keyword`` (``length`` numbers) from a per-frame functional group, else the shared one."""
    return _from_groups(item, fallback, sequence, keyword, lambda v: floats(v, length))


def _group_scalar(item: object, fallback: object, sequence: str, keyword: str) -> float | None:
    """One number from a per-frame functional group, else the shared one."""
    return _from_groups(item, fallback, sequence, keyword, number)


def _from_groups(item: object, fallback: object, sequence: str, keyword: str, convert):  # noqa: ANN001, ANN202
    for source in (item, fallback):
        group = first_item(getattr(source, sequence, None)) if source is not None else None
        if group is not None:
            value = convert(getattr(group, keyword, None))
            if value is not None:
                return value
    return None
