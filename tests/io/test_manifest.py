"""Reading the manifest file: encodings, CSV syntax, the header, and the rows it yields."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from pipeline.io.manifest import ManifestError, read_manifest
from tests.io.cohorts import raw_folder, write_manifest
from tests.io.shipped import MANIFEST_ENCODING


def test_valid_manifest_keeps_extras_and_drops_identifier_columns(tmp_path: Path) -> None:
    raw = raw_folder(tmp_path)
    manifest = read_manifest(
        write_manifest(tmp_path, "patient_id,label,path,split,site,birth_date\nA,1,p1,train,s1,1950\nA,1,p2/,train,s1,1950\n"),
        raw,
        encoding=MANIFEST_ENCODING,
    )
    assert not manifest.errors
    assert manifest.has_split
    assert manifest.extra_columns == ("site",)
    assert manifest.dropped_columns == ("birth_date",)
    assert [r.path for r in manifest.rows] == ["p1", "p2"]
    assert [r.line for r in manifest.rows] == [2, 3]
    assert manifest.rows[0].extras == {"site": "s1"}


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        ("patient_id,path\n", r"column 'label' must be present"),
        ("patient_id,label,site\n", r"one locator column among \['path', 'series_uid', 'study_uid'\] must be present"),
        ("patient_id,label,path,shape\n", r"columns \['shape'\] are written by ingest"),
    ],
)
def test_header_problems_stop_at_once(tmp_path: Path, header: str, pattern: str) -> None:
    with pytest.raises(ManifestError, match=pattern):
        read_manifest(write_manifest(tmp_path, header + "A,1,p1\n"), raw_folder(tmp_path), encoding=MANIFEST_ENCODING)


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest file must exist; got '.*nope.csv'"):
        read_manifest(tmp_path / "nope.csv", tmp_path, encoding=MANIFEST_ENCODING)


_TEXT = "patient_id,label,path,site\nMüller,1,p1,Zürich\nB,0,p2,s2\n"


@pytest.mark.parametrize(
    "data",
    [
        _TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + _TEXT.encode("utf-8"),
        _TEXT.encode("utf-16"),  # BOM + native order: Excel's "Unicode text"
        codecs.BOM_UTF16_BE + _TEXT.encode("utf-16-be"),
        _TEXT.replace("\n", "\r\n").encode("utf-16"),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16-be", "utf16-crlf"],
)
def test_utf8_and_utf16_manifests_are_read_alike(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(data)
    manifest = read_manifest(path, raw_folder(tmp_path), encoding=MANIFEST_ENCODING)
    assert not manifest.errors
    assert [(r.patient_id, r.extras["site"]) for r in manifest.rows] == [("Müller", "Zürich"), ("B", "s2")]


def test_a_latin1_manifest_names_the_encoding_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(_TEXT.encode("cp1252"))
    raw = raw_folder(tmp_path)
    with pytest.raises(ManifestError, match=r"line 2: the manifest must be UTF-8 .* or UTF-16 with BOM; byte \d+ is not valid utf-8.*manifest_encoding") as caught:
        read_manifest(path, raw, encoding=MANIFEST_ENCODING)
    assert "ller" not in str(caught.value)
    manifest = read_manifest(path, raw, encoding="cp1252")
    assert manifest.rows[0].patient_id == "Müller"


def test_utf16_without_a_bom_is_recognised_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(_TEXT.encode("utf-16-le"))
    with pytest.raises(ManifestError, match=r"looks like UTF-16 without a byte-order mark"):
        read_manifest(path, raw_folder(tmp_path), encoding=MANIFEST_ENCODING)


def test_a_cell_over_131072_characters_is_read(tmp_path: Path) -> None:
    note = "x" * 200_000
    path = write_manifest(tmp_path, f"patient_id,label,path,note\nA,1,p1,{note}\n")
    manifest = read_manifest(path, raw_folder(tmp_path), encoding=MANIFEST_ENCODING)
    assert not manifest.errors and manifest.rows[0].extras["note"] == note


def test_a_header_that_is_really_a_data_row_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"other columns at position\(s\) 1, 2, 3 \(names not shown\)") as caught:
        read_manifest(write_manifest(tmp_path, "Doe Jane,19510723,p1\nA,1,p1\n"), raw_folder(tmp_path),
                      encoding=MANIFEST_ENCODING)
    assert "Doe" not in str(caught.value) and "19510723" not in str(caught.value)
