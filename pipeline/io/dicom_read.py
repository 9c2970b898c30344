"""Open a DICOM file without trusting it: capped reads, deferred pixels, no inflate bombs.

Only the header is loaded: elements larger than :data:`DEFER_BYTES` (pixel data, big
private blobs) are skipped with pydicom's ``defer_size`` (the reader seeks past them and
remembers where they start), so a 300-slice series is grouped without decoding a single
pixel, and uncompressed pixels can later be read straight from that offset. Every read
goes through :class:`CappedReader`, so a corrupt element length cannot allocate more
than the file holds, and a deflated dataset is measured before pydicom inflates it.
"""

from __future__ import annotations

import io
import os

from pipeline.io.failures import environment_error

DEFER_BYTES = 4096
"""Elements larger than this (pixel data, big private blobs) are not loaded with the header."""

NOT_DICOM = "not DICOM or NIfTI (no DICOM preamble or SOP Class)"


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


def read_dataset(full: str) -> tuple[object | None, str]:
    """The header of the DICOM file ``full``, or ``None`` and why it is not read.

    Files written without the 128-byte preamble are still DICOM and are read with
    ``force=True``; junk that merely parses that way is refused by its missing SOP
    Class. Other read errors propagate (the caller quarantines the file with them).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    deflated, problem = deflated_problem(full)
    if problem:
        return None, problem
    # pydicom inflates a deflated dataset into memory, where deferred offsets no longer
    # point into the file: read it whole (its size was just bounded).
    defer = None if deflated else DEFER_BYTES
    try:
        with CappedReader(full) as handle:
            ds = pydicom.dcmread(handle, defer_size=defer)
    except InvalidDicomError:
        try:
            with CappedReader(full) as handle:
                ds = pydicom.dcmread(handle, defer_size=defer, force=True)
            if not _looks_like_dicom(ds):
                return None, NOT_DICOM
        except Exception as error:
            if environment_error(error) is not None:
                raise
            return None, NOT_DICOM
    ds.fileobj_type = CappedReader  # deferred elements are read later through a re-opened file
    return ds, ""


def deflated_problem(full: str) -> tuple[bool, str]:
    """Whether the file uses the Deflated transfer syntax, and why it must not be read.

    pydicom inflates such a dataset whole before parsing it, so its inflated size is
    measured first, streaming with bounded memory, and held to the ratio a gzip NIfTI
    is held to (:data:`pipeline.io.nifti.MAX_INFLATE_RATIO`).
    """
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    with open(full, "rb") as handle:
        try:
            read_preamble(handle, force=True)
            meta = _read_file_meta_info(handle)
        except Exception:  # not DICOM, or a broken meta group: the full read decides
            return False, ""
        if str(meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian:
            return False, ""
        return True, _inflate_problem(handle, os.path.getsize(full))


def _inflate_problem(handle: io.BufferedIOBase, stored: int) -> str:
    """Why the raw-deflate stream from ``handle`` on expands too far; '' when it does not.

    Inflated in 1 MiB steps and counted, never kept: memory stays bounded whatever the
    stream declares.
    """
    import zlib

    from pipeline.io.nifti import INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO

    limit = max(INFLATE_FLOOR_BYTES, MAX_INFLATE_RATIO * stored)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while not inflater.eof and (chunk := handle.read(2**20)):
        while chunk and not inflater.eof:
            total += len(inflater.decompress(chunk, 2**20))
            chunk = inflater.unconsumed_tail
            if total > limit:
                return (
                    f"decompression bomb: the deflated dataset of a {stored:,}-byte file expands past "
                    f"{limit:,} bytes, more than {MAX_INFLATE_RATIO}-fold; refused before inflating the rest"
                )
    return ""


def _looks_like_dicom(ds: object) -> bool:
    try:
        sop_class = str(getattr(ds, "SOPClassUID", "") or "")
        return sop_class.startswith("1.2.840.10008.") and len(ds) > 3  # type: ignore[arg-type]
    except Exception:
        return False
