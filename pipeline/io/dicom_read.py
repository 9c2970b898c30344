"""Open a DICOM file without trusting it: capped reads, deferred pixels, no inflate bombs.

Only the header is loaded: elements larger than :data:`DEFER_BYTES` (pixel data, big
private blobs) are skipped with pydicom's ``defer_size`` (the reader seeks past them and
remembers where they start), so a 300-slice series is grouped without decoding a single
pixel, and uncompressed pixels can later be read straight from that offset. No read
asks for more bytes than the file has left, so a corrupt element length cannot allocate
more than the file holds, and a deflated dataset is measured before pydicom inflates it.

pydicom reads a header in hundreds of small pieces (a tag, a length, a value). The
header scan serves them from one window of :data:`WINDOW_BYTES` read at once
(:class:`WindowedReader`): the file is opened once, and a header that fits in the first
window costs one system call; a longer one, or elements after the skipped pixel data,
move the window. Other reads (a pixel decode) go through :class:`CappedReader`.
"""

from __future__ import annotations

import errno
import io
import os
import stat

from pipeline.io.failures import environment_error

DEFER_BYTES = 4096
"""Elements larger than this (pixel data, big private blobs) are not loaded with the header."""

WINDOW_BYTES = 64 * 1024
"""Bytes the header scan reads at once: a typical CT or MR header (2-20 KB before the
pixel data) fits in one window. Larger reads bypass the window (see :class:`WindowedReader`)."""

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


class WindowedReader:
    """A read-only file for pydicom's header parse: small reads served from one window of bytes.

    The same promise as :class:`CappedReader` (``read(n)`` returns, and allocates, at
    most what the file has left after the size it had when opened), with pydicom's
    hundreds of small reads answered from a window of :data:`WINDOW_BYTES` read at once
    by ``os.pread`` instead of one buffered read each. A read outside the window moves
    the window there; a read larger than the window goes to the file directly. ``seek``
    and ``tell`` only move a number. Errors are those of a file opened with ``open``.

    Args:
        path: the file; it is opened once, here, and closed by :meth:`close`.
        mode: ignored; accepted because pydicom re-opens a file as ``type(path, "rb")``.
    """

    __slots__ = ("name", "closed", "_fd", "_size", "_pos", "_window", "_start", "_end")

    def __init__(self, path: str, mode: str = "rb") -> None:
        self.name = path
        self.closed = True
        self._fd = os.open(path, os.O_RDONLY)
        try:
            status = os.fstat(self._fd)
            if stat.S_ISDIR(status.st_mode):  # ``open`` refuses a folder; os.open does not
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            self._size = status.st_size
            self._window = os.pread(self._fd, min(WINDOW_BYTES, self._size), 0)
        except BaseException:
            os.close(self._fd)
            raise
        self.closed = False
        self._pos = self._start = 0
        self._end = len(self._window)

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        if size is not None and size >= 0:
            end = pos + size
            if self._start <= pos and end <= self._end:  # the common case: inside the window
                self._pos = end
                return self._window[pos - self._start : end - self._start]
        return self._read_outside(pos, size)

    def _read_outside(self, pos: int, size: int | None) -> bytes:
        """A read the window does not hold: capped to the file, through a new window or directly."""
        if size is None or size == -1:
            end = self._size
        elif size < 0:
            raise ValueError("read length must be non-negative or -1")
        else:
            end = min(pos + size, self._size)
        if end <= pos:
            return b""
        if self.closed:
            raise ValueError("read of closed file")
        if end - pos > WINDOW_BYTES:
            data = os.pread(self._fd, end - pos, pos)
        else:
            self._window = os.pread(self._fd, min(WINDOW_BYTES, self._size - pos), pos)
            self._start, self._end = pos, pos + len(self._window)
            data = self._window[: end - pos]
        self._pos = pos + len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    @property
    def size(self) -> int:
        """The file's size when it was opened: no read goes past it."""
        return self._size

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)

    def __enter__(self) -> WindowedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_dataset(full: str) -> tuple[object | None, str]:
    """The header of the DICOM file ``full``, or ``None`` and why it is not read.

    Files written without the 128-byte preamble are still DICOM and are read with
    ``force=True``; junk that merely parses that way is refused by its missing SOP
    Class. Other read errors propagate (the caller quarantines the file with them).
    The file is opened once (:class:`WindowedReader`) for the deflate check and the parse.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    with WindowedReader(full) as handle:
        deflated, problem = _deflated_problem(handle)
        if problem:
            return None, problem
        # pydicom inflates a deflated dataset into memory, where deferred offsets no longer
        # point into the file: read it whole (its size was just bounded).
        defer = None if deflated else DEFER_BYTES
        try:
            handle.seek(0)
            ds = pydicom.dcmread(handle, defer_size=defer)
        except InvalidDicomError:
            try:
                handle.seek(0)
                ds = pydicom.dcmread(handle, defer_size=defer, force=True)
                if not _looks_like_dicom(ds):
                    return None, NOT_DICOM
            except Exception as error:
                if environment_error(error) is not None:
                    raise
                return None, NOT_DICOM
    # Deferred elements are read later from the file re-opened by name, through a capped
    # reader (pydicom would read from the closed handle otherwise).
    if getattr(ds, "buffer", None) is handle:
        ds.buffer = None
    ds.fileobj_type = CappedReader
    return ds, ""


def deflated_problem(full: str) -> tuple[bool, str]:
    """Whether the file uses the Deflated transfer syntax, and why it must not be read.

    pydicom inflates such a dataset whole before parsing it, so its inflated size is
    measured first, streaming with bounded memory, and held to the ratio a gzip NIfTI
    is held to (:data:`pipeline.io.nifti.MAX_INFLATE_RATIO`).
    """
    with WindowedReader(full) as handle:
        return _deflated_problem(handle)


def _deflated_problem(handle: WindowedReader) -> tuple[bool, str]:
    """:func:`deflated_problem` of an opened file, read from its start."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        read_preamble(handle, force=True)  # type: ignore[arg-type]
        meta = _read_file_meta_info(handle)  # type: ignore[arg-type]
    except Exception:  # not DICOM, or a broken meta group: the full read decides
        return False, ""
    if str(meta.get("TransferSyntaxUID", "")) != DeflatedExplicitVRLittleEndian:
        return False, ""
    return True, _inflate_problem(handle, handle.size)


def _inflate_problem(handle: WindowedReader, stored: int) -> str:
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
