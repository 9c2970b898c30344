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
from typing import Callable

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

    __slots__ = ("name", "closed", "before_rest", "_fd", "_size", "_pos", "_window", "_start", "_end")

    def __init__(self, path: str, mode: str = "rb") -> None:
        self.name = path
        self.closed = True
        self.before_rest: Callable[[WindowedReader], None] | None = None
        """Called before a read of the whole rest of the file (``read()``), if set."""
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
            if self.before_rest is not None:
                self.before_rest(self)
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

    The file is opened once (:class:`WindowedReader`) and parsed once. A deflated
    dataset is measured when pydicom asks for it, before it inflates it
    (:func:`_refuse_inflating`); one that passes is parsed again, whole, because
    deferred offsets would point into the inflated copy, not into the file.
    """
    with WindowedReader(full) as handle:
        handle.before_rest = _refuse_inflating
        try:
            ds, problem = _parse(handle, DEFER_BYTES)
        except _Deflated as deflated:
            if deflated.error is not None:
                raise deflated.error from None
            if deflated.problem:
                return None, deflated.problem
            handle.before_rest = None
            ds, problem = _parse(handle, None)
    if ds is None:
        return None, problem
    # Deferred elements are read later from the file re-opened by name, through a capped
    # reader (pydicom would read from the closed handle otherwise).
    if getattr(ds, "buffer", None) is handle:
        ds.buffer = None
    ds.fileobj_type = CappedReader
    return ds, ""


def _parse(handle: WindowedReader, defer: int | None) -> tuple[object | None, str]:
    """pydicom's parse of ``handle`` from its start: with the DICOM preamble, else forced."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        handle.seek(0)
        return pydicom.dcmread(handle, defer_size=defer), ""
    except InvalidDicomError:
        try:
            handle.seek(0)
            ds = pydicom.dcmread(handle, defer_size=defer, force=True)
            return (ds, "") if _looks_like_dicom(ds) else (None, NOT_DICOM)
        except Exception as error:
            if environment_error(error) is not None:
                raise
            return None, NOT_DICOM


class _Deflated(BaseException):
    """pydicom reached a deflated dataset: what measuring it found, raised out of its parse.

    A ``BaseException`` so that no ``except Exception`` on the way (pydicom's, or the
    forced read's above) takes it for a parse error.
    """

    def __init__(self, problem: str, error: Exception | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.error = error


def _refuse_inflating(handle: WindowedReader) -> None:
    """Measure the deflated dataset pydicom is about to read whole, then stop its parse.

    pydicom reads a Deflated Explicit VR dataset as "the rest of the file" and inflates
    it in one call, the only read of the rest in a header parse (checked on the pydicom,
    pydicom-data and fuzz files). Its inflated size is measured here first, streaming
    with bounded memory, and held to the ratio a gzip NIfTI is held to
    (:data:`pipeline.io.nifti.MAX_INFLATE_RATIO`).

    Raises:
        _Deflated: always; with the bomb's reason, or an inflate error, or neither.
    """
    try:
        problem = _inflate_problem(handle, handle.size)
    except Exception as error:  # a corrupt stream: the error is the file's, as before
        raise _Deflated("", error) from None
    raise _Deflated(problem, None)


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
