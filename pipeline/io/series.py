"""Group DICOM image headers into candidate series, before any pixel is read.

One candidate per SeriesInstanceUID, split further when orientation, pixel spacing,
matrix or echo differ inside the series (a localizer or a second echo never merges into
the axial stack). Enhanced multi-frame files are one candidate each. Duplicate
SOPInstanceUIDs are kept once. :mod:`pipeline.io.volume_plan` then orders a candidate's
planes and :mod:`pipeline.io.pixels` decodes them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from pipeline.io.deid import file_ref
from pipeline.io.dicom_header import DicomHeader


@dataclass(frozen=True)
class Plane:
    """One 2D plane of a candidate volume: a single-frame file or one frame of a file."""

    path: str
    frame: int
    position: tuple[float, float, float] | None
    slope: float | None
    intercept: float | None
    instance: int | None


@dataclass
class Candidate:
    """Planes that could form one volume, before any pixel is read.

    Attributes:
        identity: the string hashed into the series key (UIDs inside; never written).
        headers: header of each file, by relative path.
        planes: every plane, unordered.
        multiframe: built from one multi-frame file.
    """

    identity: str
    headers: dict[str, DicomHeader]
    planes: list[Plane]
    multiframe: bool = False

    @property
    def first(self) -> DicomHeader:
        return self.headers[min(self.headers)]

    @property
    def files(self) -> list[str]:
        return sorted(self.headers)

    @property
    def n_planes(self) -> int:
        return len(self.planes)


def group_series(headers: dict[str, DicomHeader]) -> tuple[list[Candidate], dict[str, str]]:
    """Group image headers into candidate volumes.

    Args:
        headers: relative path -> header, for the files one manifest row selects.

    Returns:
        ``(candidates, skipped)``: candidates sorted by identity, and files skipped as
        duplicate SOPInstanceUIDs (path -> reason naming the copy that was kept).
    """
    skipped: dict[str, str] = {}
    kept_by_sop: dict[str, str] = {}
    groups: dict[str, Candidate] = {}
    for path in sorted(headers):
        header = headers[path]
        if header.sop_uid:
            if header.sop_uid in kept_by_sop:
                skipped[path] = f"duplicate SOPInstanceUID: same object as {file_ref(kept_by_sop[header.sop_uid])}, kept once"
                continue
            kept_by_sop[header.sop_uid] = path
        identity, multiframe = _identity(path, header)
        candidate = groups.setdefault(identity, Candidate(identity=identity, headers={}, planes=[], multiframe=multiframe))
        candidate.headers[path] = header
        candidate.planes.extend(_planes(path, header))
    return [groups[k] for k in sorted(groups)], skipped


def _identity(path: str, header: DicomHeader) -> tuple[str, bool]:
    """The candidate a file belongs to, and whether it is a multi-frame file (its own candidate)."""
    series = header.series_uid or f"no-series-uid:{os.path.dirname(path)}"
    if header.frames > 1 or header.sop_class.endswith((".2.1", ".4.1")):
        return f"{series}|file:{header.sop_uid or path}", True
    identity = "|".join(
        [
            series,
            _rounded(header.orientation, 3),
            _rounded(header.pixel_spacing, 3),
            f"{header.rows}x{header.cols}x{header.samples}",
            f"echo:{header.echo}",
        ]
    )
    return identity, False


def _planes(path: str, header: DicomHeader) -> list[Plane]:
    """One plane per frame of the file, with its position and rescale values."""
    return [
        Plane(
            path=path,
            frame=frame,
            position=header.positions[frame] if header.positions else None,
            slope=header.slopes[frame] if frame < len(header.slopes) else None,
            intercept=header.intercepts[frame] if frame < len(header.intercepts) else None,
            instance=header.instance_number,
        )
        for frame in range(header.frames)
    ]


@functools.lru_cache(maxsize=4096)
def _rounded(values: tuple[float, ...] | None, digits: int) -> str:
    # Cached: the files of a series share their orientation and spacing, and formatting
    # six floats per file was about 6% of an unchanged re-ingest's profile.
    return "none" if values is None else ",".join([format(v, f".{digits}f") for v in values])
