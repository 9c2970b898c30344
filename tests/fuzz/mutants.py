"""A seeded mutation generator over real DICOM and NIfTI files, for the ingest fuzz suite.

Sources are the DICOM files shipped in the pydicom wheel and in pydicom-data, and the
NIfTI files in nibabel's test data: real encodings (explicit and implicit VR, big
endian, deflated, JPEG, JPEG-LS, JPEG 2000, RLE, multi-frame, colour), never committed
here. Mutant ``(seed, index)`` is always the same bytes, so a failure found once is
pinned as a regression case by its two numbers.

Mutations are those a hostile or broken export produces: absurd header values (matrix,
bit depth, frame count, spacing, orientation, rescale, transfer syntax), NIfTI header
fields, random byte flips and truncations.

Run ``python -m tests.fuzz.mutants SEED INDEX OUT_FILE`` to write one mutant for a look.
"""

from __future__ import annotations

import gzip
import io
import random
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import pydicom

SOURCE_MAX_BYTES = 512 * 1024
"""Larger sources are left out: decoding them would slow every batch, not test more."""

_SITE = Path(pydicom.__file__).resolve().parent.parent
_DICOM_DIRS = (_SITE / "pydicom" / "data" / "test_files", _SITE / "data_store" / "data")
_NIFTI_DIR = _SITE / "nibabel" / "tests" / "data"

_ABSURD_INTS = (0, 1, 2, 3, 7, 12, 15, 17, 64, 255, 256, 4096, 32767, 65535)
_ABSURD_FLOATS = (0.0, -1.0, 1e-30, 1e20, -1e20, 1e308, float("nan"), float("inf"), -float("inf"))
_ABSURD_TEXT = ("abc", "", "1\\2\\3\\4\\5\\6\\7", "-0", "1e999", "\\\\", "NaN")
_SYNTAXES = (
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5", "1.2.3.4", "",
)
_DICOM_FIELDS = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "NumberOfFrames", "SamplesPerPixel",
    "PixelRepresentation", "PhotometricInterpretation", "PixelSpacing", "ImageOrientationPatient",
    "ImagePositionPatient", "RescaleSlope", "RescaleIntercept", "SliceThickness", "SpacingBetweenSlices",
    "PlanarConfiguration", "SOPClassUID", "Modality", "SeriesInstanceUID",
)
_NIFTI_FIELDS = (
    "dim", "datatype", "bitpix", "vox_offset", "pixdim", "scl_slope", "scl_inter", "qform_code", "sform_code",
    "quatern_b", "srow_x", "sizeof_hdr", "magic", "dim_info", "intent_code",
)
_NIFTI_DATATYPES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 999, -4)


@dataclass(frozen=True)
class Mutant:
    """One mutated file: its bytes, the name suffix it needs, and what was done (for messages)."""

    data: bytes
    suffix: str
    what: str


@lru_cache(maxsize=1)
def sources() -> tuple[Path, ...]:
    """Real files to mutate, sorted so that a seed means the same file everywhere."""
    found = []
    for folder in _DICOM_DIRS:
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file() and path.stat().st_size <= SOURCE_MAX_BYTES and _is_dicom(path):
                found.append(path)
    for path in sorted(_NIFTI_DIR.glob("*.nii*")):
        if path.name.endswith((".nii", ".nii.gz")) and path.stat().st_size <= SOURCE_MAX_BYTES:
            found.append(path)
    return tuple(found)


def make(seed: int, index: int) -> Mutant:
    """Mutant ``index`` of run ``seed``; the same pair always gives the same bytes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every absurd value it is asked to write
        return _make(random.Random(f"{seed}:{index}"))


def _make(rng: random.Random) -> Mutant:
    source = rng.choice(sources())
    data = source.read_bytes()
    nifti = source.name.endswith((".nii", ".nii.gz"))
    suffix = ".nii.gz" if source.name.endswith(".gz") else ".nii" if nifti else ".dcm"
    roll = rng.random()
    if roll < 0.45:
        data, what = (_mutate_nifti_header if nifti else _mutate_dicom_header)(data, rng, suffix)
    elif roll < 0.8:
        data, what = _flip_bytes(data, rng)
    else:
        data, what = _truncate(data, rng)
    return Mutant(data, suffix, f"{source.name}: {what}")


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return head[128:132] == b"DICM" or path.suffix.lower() == ".dcm"


def _mutate_dicom_header(data: bytes, rng: random.Random, _suffix: str) -> tuple[bytes, str]:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if rng.random() < 0.15:
            return _swap_syntax(data, rng.choice(_SYNTAXES))
        changes = []
        for _ in range(rng.randint(1, 3)):
            keyword = rng.choice(_DICOM_FIELDS)
            value = _absurd_value(keyword, rng)
            setattr(ds, keyword, value)
            changes.append(f"{keyword}={value!r}")
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue(), "set " + ", ".join(changes)
    except Exception:  # a value pydicom will not write: flip bytes instead
        return _flip_bytes(data, rng)


def _absurd_value(keyword: str, rng: random.Random) -> object:
    if keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
                   "PixelRepresentation", "PlanarConfiguration"):
        return rng.choice(_ABSURD_INTS)
    if keyword == "NumberOfFrames":
        return str(rng.choice((0, 1, 2, 999, 150_000_000, 999_999_999, -3, 2**40)))
    if keyword in ("PixelSpacing",):
        return [rng.choice(_ABSURD_FLOATS + (0.5,)), rng.choice(_ABSURD_FLOATS + (0.5,))] if rng.random() < 0.8 else "abc"
    if keyword in ("ImageOrientationPatient", "ImagePositionPatient"):
        count = 6 if keyword == "ImageOrientationPatient" else 3
        return [rng.choice(_ABSURD_FLOATS + (1.0, 0.0)) for _ in range(rng.choice((count, count, 2, 9)))]
    if keyword in ("RescaleSlope", "RescaleIntercept", "SliceThickness", "SpacingBetweenSlices"):
        return rng.choice([repr(v) for v in _ABSURD_FLOATS] + list(_ABSURD_TEXT))
    if keyword == "PhotometricInterpretation":
        return rng.choice(("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL_422", "YBR_FULL", "X"))
    if keyword == "SOPClassUID":
        return rng.choice(("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.88.11", ""))
    if keyword == "Modality":
        return rng.choice(("CT", "MR", "SR", "", "RTDOSE", "XX"))
    return rng.choice(("", "1.2.3", "9" * 64))


def _swap_syntax(data: bytes, uid: str) -> tuple[bytes, str]:
    """Rewrite the file meta with another Transfer Syntax UID; the dataset bytes stay."""
    from pydicom.filebase import DicomFileLike
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.filewriter import write_file_meta_info

    handle = io.BytesIO(data)
    read_preamble(handle, True)
    meta = _read_file_meta_info(handle)
    body = data[handle.tell():]
    meta.TransferSyntaxUID = uid
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(DicomFileLike(out), meta, enforce_standard=False)
    return out.getvalue() + body, f"TransferSyntaxUID={uid!r}"


def _mutate_nifti_header(data: bytes, rng: random.Random, suffix: str) -> tuple[bytes, str]:
    raw = gzip.decompress(data) if suffix == ".nii.gz" else data
    size = 540 if int.from_bytes(raw[:4], "little") == 540 or int.from_bytes(raw[:4], "big") == 540 else 348
    klass = nib.Nifti2Header if size == 540 else nib.Nifti1Header
    try:
        header = klass(raw[:size], check=False)
    except Exception:
        return _flip_bytes(data, rng)
    changes = []
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(_NIFTI_FIELDS)
        value = _nifti_value(field, header, rng)
        try:
            if field in ("dim", "pixdim", "srow_x"):
                position = rng.randrange(len(header[field]))
                header[field][position] = value
                field = f"{field}[{position}]"
            else:
                header[field] = value
        except (ValueError, OverflowError, TypeError):
            continue
        changes.append(f"{field}={value!r}")
    mutated = header.binaryblock + raw[size:]
    return (gzip.compress(mutated, mtime=0) if suffix == ".nii.gz" else mutated), "set " + ", ".join(changes)


def _nifti_value(field: str, header: object, rng: random.Random) -> object:
    if field == "dim":
        return rng.choice((0, 1, -1, 2, 7, 8, 255, 32767, -32768))
    if field == "datatype":
        return rng.choice(_NIFTI_DATATYPES)
    if field == "bitpix":
        return rng.choice((0, 1, 8, 16, 13, 64, 255))
    if field == "vox_offset":
        return rng.choice((0.0, 1.0, 348.0, 352.0, 353.0, 1e9, -5.0, float("nan"), 2.0**31))
    if field in ("qform_code", "sform_code", "intent_code", "dim_info"):
        return rng.choice((0, 1, 2, 4, 99, -1, 127))
    if field == "sizeof_hdr":
        return rng.choice((0, 347, 540, 348 * 256))
    if field == "magic":
        return rng.choice((b"n+1", b"ni1", b"n+2", b"xyz", b""))
    return rng.choice(_ABSURD_FLOATS + (0.5, 2.0))


def _flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if not data:
        return data, "empty"
    buffer = bytearray(data)
    count = rng.randint(1, 24)
    # Most flips land in the first 2 KB, where headers are: a flip in pixel data only
    # changes a pixel, which tests nothing.
    head = min(len(buffer), 2048)
    for _ in range(count):
        position = rng.randrange(head) if rng.random() < 0.8 else rng.randrange(len(buffer))
        buffer[position] = rng.randrange(256)
    return bytes(buffer), f"{count} byte(s) changed"


def _truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    keep = rng.randrange(len(data)) if rng.random() < 0.5 else rng.randrange(min(len(data), 1024) + 1)
    return data[:keep], f"truncated to {keep} of {len(data)} bytes"


def main(argv: list[str]) -> int:
    seed, index, out = int(argv[0]), int(argv[1]), Path(argv[2])
    mutant = make(seed, index)
    out.write_bytes(mutant.data)
    print(mutant.what)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
