"""Opening untrusted DICOM files: capped reads, the windowed header reader, deflated datasets measured before inflating."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pydicom
import pytest

from pipeline.io import dicom_read
from pipeline.io.dicom_read import DEFER_BYTES, WINDOW_BYTES, CappedReader, WindowedReader
from pipeline.io.scan import read_header
from tests.io.dicom_builders import PYDICOM_FILES
from tests.io.peak_rss import HOSTILE_PEAK_BYTES, classify_in_subprocess
from tests.io.shipped import MAX_VOXELS


def _deflated_bomb(path: Path, inflated_bytes: int) -> None:
    """A Deflated Explicit VR file whose deflated dataset is ``inflated_bytes`` of zeros."""
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    with path.open("wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(pydicom.filebase.DicomFileLike(handle), meta)
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        chunk = bytes(2**20)
        for _ in range(inflated_bytes // len(chunk)):
            handle.write(deflater.compress(chunk))
        handle.write(deflater.flush())


def test_a_deflated_dataset_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    _deflated_bomb(tmp_path / "dfl.dcm", 128 * 2**20)
    assert (tmp_path / "dfl.dcm").stat().st_size < 200_000
    kind, reason, peak = classify_in_subprocess(tmp_path / "dfl.dcm", max_voxels=MAX_VOXELS)
    assert kind == "quarantined" and "decompression bomb: the deflated dataset" in reason
    assert peak < HOSTILE_PEAK_BYTES
    assert read_header(PYDICOM_FILES / "image_dfl.dcm", "image_dfl.dcm", max_voxels=MAX_VOXELS).kind == "dicom"


def test_a_read_never_asks_for_more_bytes_than_the_file_has_left(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"0123456789")
    with CappedReader(str(path)) as handle:
        assert handle.read(4) == b"0123"
        assert handle.read(2**32) == b"456789"  # a 4 GiB request allocates 6 bytes
        assert handle.read(10) == b""


class _Streaming(CappedReader):
    """The reader the header scan used before :class:`WindowedReader`, every read a buffered
    file read, with the windowed reader's hook before a read of the rest."""

    before_rest = None

    @property
    def size(self) -> int:
        return self._size

    def read(self, size: int | None = -1) -> bytes:
        if (size is None or size == -1) and self.before_rest is not None:
            self.before_rest(self)
        return super().read(size)


def _long_header(path: Path, blocks: int = 30) -> int:
    """CT_small with ``blocks`` private 3,000-byte elements before the patient module.

    Each element is below :data:`DEFER_BYTES`, so the parse reads it: the header runs
    past :data:`WINDOW_BYTES` before PatientName. Returns the offset of PatientName.
    """
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    block = ds.private_block(0x0009, "LONG HEADER TEST", create=True)
    for index in range(blocks):
        block.add_new(0x10 + index, "OB", bytes([index]) * 3000)
    ds.PatientName = "Longheader^Patient"
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes().index(b"Longheader^Patient")


def test_the_windowed_reader_answers_every_read_seek_and_tell_as_a_capped_file_does(tmp_path: Path) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(bytes(random.Random(5).getrandbits(8) for _ in range(3 * WINDOW_BYTES + 123)))
    size = path.stat().st_size
    rng = random.Random(7)
    with WindowedReader(str(path)) as windowed, _Streaming(str(path)) as streaming:
        assert windowed.size == streaming.size == size
        for _ in range(3000):
            roll = rng.random()
            if roll < 0.6:
                n = rng.choice([0, 1, 4, 8, 128, 4096, WINDOW_BYTES - 1, WINDOW_BYTES + 1, 2 * WINDOW_BYTES, 2**32, -1, None])
                calls = [lambda h: h.read(n)]
            elif roll < 0.9:
                where = rng.choice([0, 1, WINDOW_BYTES - 3, WINDOW_BYTES, size - 5, size, size + 40, rng.randrange(size)])
                calls = [lambda h: h.seek(where), lambda h: h.tell()]
            else:
                step = rng.choice([-7, 0, 9, 70_000])
                calls = [lambda h: h.seek(step, 1) if h.tell() + step >= 0 else h.seek(0), lambda h: h.seek(-step, 2)]
            for call in calls:
                assert call(windowed) == call(streaming)
        for bad in (lambda h: h.seek(-1), lambda h: h.seek(-(h.seek(3) + 1), 1), lambda h: h.read(-2)):
            errors = []
            for handle in (windowed, streaming):
                with pytest.raises((OSError, ValueError)) as caught:
                    bad(handle)
                errors.append((type(caught.value), str(caught.value)))
            assert errors[0] == errors[1]


def test_the_windowed_reader_never_asks_for_more_bytes_than_the_file_has_left(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"0123456789")
    with WindowedReader(str(path)) as handle:
        assert handle.read(4) == b"0123"
        assert handle.read(2**32) == b"456789"  # a 4 GiB request allocates 6 bytes
        assert handle.read(10) == b""
        handle.seek(2**40)
        assert handle.read(2**32) == b"" and handle.tell() == 2**40


def test_a_header_longer_than_the_window_is_read_past_it(tmp_path: Path) -> None:
    path = tmp_path / "long.dcm"
    assert _long_header(path) > WINDOW_BYTES
    record = read_header(path, "long.dcm", max_voxels=MAX_VOXELS)
    assert record.kind == "dicom" and "Longheader^Patient" in record.phi
    ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    assert record.dicom is not None and record.dicom.native is not None
    assert record.dicom.native[0] == ds._dict[0x7FE00010].value_tell > WINDOW_BYTES
    assert (record.dicom.rows, record.dicom.cols) == (ds.Rows, ds.Columns)


def _cut_copies(tmp_path: Path) -> list[Path]:
    """Real files, a long header, and copies cut at points inside their headers and pixels."""
    sources = [PYDICOM_FILES / name for name in (
        "CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "image_dfl.dcm",
        "JPEG2000.dcm", "SC_rgb_rle.dcm", "ExplVR_BigEndNoMeta.dcm", "rtplan.dcm", "no_meta.dcm",
    )]
    long = tmp_path / "long.dcm"
    _long_header(long)
    files = []
    for source in [*sources, long]:
        data = source.read_bytes()
        for cut in sorted({len(data), 100, 200, 700, len(data) // 3, len(data) - 9, WINDOW_BYTES - 3, WINDOW_BYTES + 5}):
            if cut <= len(data):
                copy = tmp_path / f"{source.stem}_{cut}.dcm"
                copy.write_bytes(data[:cut])
                files.append(copy)
    return files


def test_the_header_scan_reads_whole_and_cut_files_as_the_streaming_reader_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _cut_copies(tmp_path)
    windowed = [read_header(path, path.name, max_voxels=MAX_VOXELS) for path in files]
    monkeypatch.setattr(dicom_read, "WindowedReader", _Streaming)
    streaming = [read_header(path, path.name, max_voxels=MAX_VOXELS) for path in files]
    assert windowed == streaming
    kinds = {record.kind for record in windowed}
    assert {"dicom", "quarantined", "not_image"} <= kinds
    assert any(record.reason.startswith("truncated:") for record in windowed)


def test_a_corrupt_deflated_stream_is_quarantined_with_the_inflate_error(tmp_path: Path) -> None:
    data = bytearray((PYDICOM_FILES / "image_dfl.dcm").read_bytes())
    start = data.index(b"1.2.840.10008.1.2.1.99") + 24  # the deflated dataset follows the meta group
    data[start + 40 : start + 400] = bytes(range(256)) + bytes(104)
    (tmp_path / "cut.dcm").write_bytes(bytes(data))
    record = read_header(tmp_path / "cut.dcm", "cut.dcm", max_voxels=MAX_VOXELS)
    assert record.kind == "quarantined"
    assert record.reason.startswith("unreadable: error: Error -3 while decompressing data")


def test_a_deflated_file_reads_as_pydicom_reads_it_whole(tmp_path: Path) -> None:
    record = read_header(PYDICOM_FILES / "image_dfl.dcm", "image_dfl.dcm", max_voxels=MAX_VOXELS)
    ds = pydicom.dcmread(PYDICOM_FILES / "image_dfl.dcm")
    assert record.kind == "dicom" and record.dicom is not None
    assert record.dicom.native is None  # decoded by pydicom: offsets into the inflated copy mean nothing
    assert (record.dicom.rows, record.dicom.cols, record.dicom.sop_uid) == (ds.Rows, ds.Columns, ds.SOPInstanceUID)
