"""Whether the image size a DICOM header declares can be honoured, before anything is allocated.

A 39 KB file may declare a billion frames; every per-frame list and pixel buffer built
later follows from the header, so the declared size is checked first: against
``ingest.max_voxels``, then against the bytes the Pixel Data element really holds.
"""

from __future__ import annotations

import os

PIXEL_DATA = 0x7FE00010
PIXEL_TAGS = (PIXEL_DATA, 0x7FE00008, 0x7FE00009)
"""Pixel Data, Float Pixel Data and Double Float Pixel Data."""

_FLOAT_BITS = {0x7FE00008: 32, 0x7FE00009: 64}
"""Float and Double Float Pixel Data: the value size is the element's, not BitsAllocated."""


def declared_size_problem(
    ds: object, full: str, syntax: str, matrix: tuple[int, int, int, int], max_voxels: int
) -> str:
    """Why the image size the header declares cannot be honoured, or ``""``.

    Checks ``ingest.max_voxels``, then the bytes the Pixel Data element really holds:
    uncompressed pixels must all be there; encapsulated ones need at least one 8-byte
    item per frame and may not expand past :data:`pipeline.io.nifti.MAX_INFLATE_RATIO`.

    Args:
        ds: the pydicom dataset, pixel data deferred.
        full: the file's path, for the bytes a deferred element holds.
        syntax: the Transfer Syntax UID.
        matrix: ``(rows, columns, frames, samples)`` as declared.
        max_voxels: the ``ingest.max_voxels`` limit.
    """
    from pydicom.uid import UID

    rows, cols, frames, samples = matrix
    voxels = rows * cols * frames
    declared = f"Rows {rows} x Columns {cols} x NumberOfFrames {frames}"
    if voxels > max_voxels:
        return (
            f"image too large: the header declares {declared} = {voxels:,} voxels; ingest.max_voxels is "
            f"{max_voxels:,}. Raise ingest.max_voxels in params.yaml if the image is real."
        )
    tag = next(t for t in PIXEL_TAGS if t in ds)  # type: ignore[operator]
    present = _stored_bytes(ds._dict[tag], full)  # type: ignore[attr-defined]
    bits = _FLOAT_BITS.get(tag) or int(ds.get("BitsAllocated", 0) or 0)  # type: ignore[attr-defined]
    uid = UID(syntax) if syntax else None
    if tag == PIXEL_DATA and uid is not None and uid.is_encapsulated:
        return _encapsulated_problem(declared, voxels * samples * max(bits, 8) // 8, frames, samples, bits, present)
    if tag == PIXEL_DATA and bits not in (1, 8, 16, 32):
        return f"BitsAllocated must be 1, 8, 16 or 32; got {bits}"
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()  # type: ignore[attr-defined]
    per_pixel = 2 if (samples == 3 and photometric == "YBR_FULL_422") else samples
    expected = (voxels * per_pixel * bits + 7) // 8
    if present < expected:
        return (
            f"truncated: the header declares {declared} x {per_pixel} samples x {bits} bits = {expected:,} bytes; "
            f"Pixel Data holds {present:,}"
        )
    return ""


def _encapsulated_problem(declared: str, decoded: int, frames: int, samples: int, bits: int, present: int) -> str:
    """Compressed frames: one 8-byte item per frame at least, and a bounded expansion."""
    from pipeline.io.nifti import INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO

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


def _stored_bytes(raw: object, full: str) -> int:
    """Bytes a (possibly deferred) Pixel Data element really holds in the file."""
    value = getattr(raw, "value", None)
    if value is not None:
        return len(value) if isinstance(value, (bytes, bytearray)) else 0
    length = int(getattr(raw, "length", 0))
    available = max(0, os.path.getsize(full) - int(getattr(raw, "value_tell", 0)))
    return available if length == 0xFFFFFFFF else min(length, available)
