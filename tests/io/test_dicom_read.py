"""Opening untrusted DICOM files: capped reads and deflated datasets measured before inflating."""

from __future__ import annotations

import zlib
from pathlib import Path

import pydicom

from pipeline.io.dicom_read import CappedReader
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
