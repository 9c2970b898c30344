from __future__ import annotations

import codecs
import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.manifest import ManifestError, read_manifest


def _raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    for name in ("p1", "p2", "p3"):
        (raw / name).mkdir(parents=True)
        (raw / name / "x.dcm").write_bytes(b"")
    return raw


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path


def test_valid_manifest_keeps_extras_and_drops_identifier_columns(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    manifest = read_manifest(
        _write(tmp_path, "patient_id,label,path,split,site,birth_date\nA,1,p1,train,s1,1950\nA,1,p2/,train,s1,1950\n"),
        raw,
    )
    assert not manifest.errors
    assert manifest.has_split
    assert manifest.extra_columns == ("site",)
    assert manifest.dropped_columns == ("birth_date",)
    assert [r.path for r in manifest.rows] == ["p1", "p2"]
    assert [r.line for r in manifest.rows] == [2, 3]
    assert manifest.rows[0].extras == {"site": "s1"}


def test_every_bad_row_is_listed_with_its_line_number(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    text = (
        "patient_id,label,path,split\n"
        "A,1,p1,train\n"  # 2 ok
        ",0,p2,train\n"  # 3 missing patient id
        "B,2,p3,val\n"  # 4 bad label
        "C,1,missing_folder,test\n"  # 5 path does not exist
        "D,0,../outside,test\n"  # 6 escapes raw
        "E,1,,test\n"  # 7 no locator
        "F,1,p1,train\n"  # 8 duplicate locator of line 2
        "A,0,p3,holdout\n"  # 9 bad split
    )
    manifest = read_manifest(_write(tmp_path, text), raw)
    with pytest.raises(ManifestError) as caught:
        manifest.raise_if_invalid()
    message = str(caught.value)
    assert "found 7 problem(s)" in message
    for expected in (
        "line 3: 'patient_id' (column 1) must not be empty",
        "line 4: 'label' (column 2) must be 0 or 1; got a number of 1 digit(s)",
        "line 5: 'path' (column 3) must name a file or folder",
        "line 6: 'path' (column 3) must be relative to the raw folder and stay inside it; got a path with a '..' part",
        "line 7: at least one locator",
        "line 8: locator (path) must be unique; it repeats line 2",
        "line 9: 'split' (column 4) must be one of ['train', 'val', 'test']; got a word of 7 letters",
    ):
        assert expected in message
    for cell in ("missing_folder", "outside", "holdout"):
        assert cell not in message


def test_a_patient_with_two_labels_is_an_error(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    manifest = read_manifest(_write(tmp_path, "patient_id,label,path\nA,1,p1\nA,0,p2\n"), raw)
    with pytest.raises(ManifestError, match=r"line 3: 'label' must be the same for all rows of a patient; got 0"):
        manifest.raise_if_invalid()


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
        read_manifest(_write(tmp_path, header + "A,1,p1\n"), _raw(tmp_path))


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest file must exist; got '.*nope.csv'"):
        read_manifest(tmp_path / "nope.csv", tmp_path)


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
    manifest = read_manifest(path, _raw(tmp_path))
    assert not manifest.errors
    assert [(r.patient_id, r.extras["site"]) for r in manifest.rows] == [("Müller", "Zürich"), ("B", "s2")]


def test_a_latin1_manifest_names_the_encoding_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(_TEXT.encode("cp1252"))
    raw = _raw(tmp_path)
    with pytest.raises(ManifestError, match=r"line 2: the manifest must be UTF-8 .* or UTF-16 with BOM; byte \d+ is not valid utf-8.*manifest_encoding") as caught:
        read_manifest(path, raw)
    assert "ller" not in str(caught.value)
    manifest = read_manifest(path, raw, encoding="cp1252")
    assert manifest.rows[0].patient_id == "Müller"


def test_utf16_without_a_bom_is_recognised_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(_TEXT.encode("utf-16-le"))
    with pytest.raises(ManifestError, match=r"looks like UTF-16 without a byte-order mark"):
        read_manifest(path, _raw(tmp_path))


def test_a_cell_over_131072_characters_is_read(tmp_path: Path) -> None:
    note = "x" * 200_000
    manifest = read_manifest(_write(tmp_path, f"patient_id,label,path,note\nA,1,p1,{note}\n"), _raw(tmp_path))
    assert not manifest.errors and manifest.rows[0].extras["note"] == note


def test_a_header_that_is_really_a_data_row_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"other columns at position\(s\) 1, 2, 3 \(names not shown\)") as caught:
        read_manifest(_write(tmp_path, "Doe Jane,19510723,p1\nA,1,p1\n"), _raw(tmp_path))
    assert "Doe" not in str(caught.value) and "19510723" not in str(caught.value)


def test_cells_with_identifiers_are_described_not_quoted(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    (raw / "Doe_Jane_MRN11112222").mkdir()
    text = (
        "patient_id,label,path,split\n"
        "MRN11112222,19510723,Doe_Jane_MRN11112222/missing.dcm,1951-07-23\n"
        "MRN11112222,1,Doe_Jane_MRN11112222,train,extra_ACC99120455\n"
    )
    with pytest.raises(ManifestError) as caught:
        read_manifest(_write(tmp_path, text), raw).raise_if_invalid()
    message = str(caught.value)
    assert "line 2: 'label' (column 2) must be 0 or 1; got a number of 8 digit(s)" in message
    assert "line 2: 'split' (column 4) must be one of ['train', 'val', 'test']; got a date-like value" in message
    assert "line 2: 'path' (column 3) must name a file or folder" in message
    assert "line 3: row must have as many cells as the header (4); got 1 more" in message
    for planted in ("11112222", "19510723", "1951-07-23", "Doe", "99120455"):
        assert planted not in message


_CELL = st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(_CELL, min_size=4, max_size=4), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_any_row_parses_or_errors_without_quoting_its_cells(cells: list[str], encoding: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = _raw(Path(folder))
        buffer = io.StringIO()
        csv.writer(buffer).writerows([["patient_id", "label", "path", "split"], cells])
        path = Path(folder) / "manifest.csv"
        path.write_bytes(buffer.getvalue().encode(encoding, "surrogatepass"))
        manifest = read_manifest(path, raw)  # never anything but a Manifest or a ManifestError
        assert manifest.rows or manifest.errors
        messages = " ".join(str(error) for error in manifest.errors).replace(str(raw), "")
    for cell in cells:
        if len(cell.strip()) >= 6:
            assert cell.strip() not in messages
