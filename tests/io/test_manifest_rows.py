"""The rows of a manifest: every bad row listed with its line, no cell ever quoted."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.io.manifest import ManifestError, read_manifest
from pipeline.io.manifest_rows import value_kind
from tests.io.cohorts import raw_folder, write_manifest
from tests.io.shipped import MANIFEST_ENCODING


def test_every_bad_row_is_listed_with_its_line_number(tmp_path: Path) -> None:
    raw = raw_folder(tmp_path)
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
    manifest = read_manifest(write_manifest(tmp_path, text), raw, encoding=MANIFEST_ENCODING)
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
    raw = raw_folder(tmp_path)
    path = write_manifest(tmp_path, "patient_id,label,path\nA,1,p1\nA,0,p2\n")
    manifest = read_manifest(path, raw, encoding=MANIFEST_ENCODING)
    with pytest.raises(ManifestError, match=r"line 3: 'label' must be the same for all rows of a patient; got 0"):
        manifest.raise_if_invalid()


def test_cells_with_identifiers_are_described_not_quoted(tmp_path: Path) -> None:
    raw = raw_folder(tmp_path)
    (raw / "Doe_Jane_MRN11112222").mkdir()
    text = (
        "patient_id,label,path,split\n"
        "MRN11112222,19510723,Doe_Jane_MRN11112222/missing.dcm,1951-07-23\n"
        "MRN11112222,1,Doe_Jane_MRN11112222,train,extra_ACC99120455\n"
    )
    with pytest.raises(ManifestError) as caught:
        read_manifest(write_manifest(tmp_path, text), raw, encoding=MANIFEST_ENCODING).raise_if_invalid()
    message = str(caught.value)
    assert "line 2: 'label' (column 2) must be 0 or 1; got a number of 8 digit(s)" in message
    assert "line 2: 'split' (column 4) must be one of ['train', 'val', 'test']; got a date-like value" in message
    assert "line 2: 'path' (column 3) must name a file or folder" in message
    assert "line 3: row must have as many cells as the header (4); got 1 more" in message
    for planted in ("11112222", "19510723", "1951-07-23", "Doe", "99120455"):
        assert planted not in message


_CELL = st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@example(cells=["\ud800", "0", "a", "train"], encoding="utf-8")  # found by Hypothesis: not UTF-8 once written
@given(cells=st.lists(_CELL, min_size=4, max_size=4), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_any_row_parses_or_errors_without_quoting_its_cells(cells: list[str], encoding: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = raw_folder(Path(folder))
        buffer = io.StringIO()
        csv.writer(buffer).writerows([["patient_id", "label", "path", "split"], cells])
        path = Path(folder) / "manifest.csv"
        path.write_bytes(buffer.getvalue().encode(encoding, "surrogatepass"))
        # Never anything but a Manifest or a ManifestError (a lone surrogate makes bytes that
        # are not UTF-8: the whole file is refused, naming the byte, never the cell):
        try:
            manifest = read_manifest(path, raw, encoding=MANIFEST_ENCODING)
        except ManifestError as refused:
            messages = str(refused).replace(str(raw), "").replace(str(path), "")
        else:
            assert manifest.rows or manifest.errors
            messages = " ".join(str(error) for error in manifest.errors).replace(str(raw), "")
    for cell in cells:
        if len(cell.strip()) >= 6:
            assert cell.strip() not in messages


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("  ", "an empty cell"),
        ("19510723", "a number of 8 digit(s)"),
        ("1951-07-23", "a date-like value"),
        ("23.07.1951", "a date-like value"),
        ("0.5", "a decimal number"),
        ("holdout", "a word of 7 letters"),
        ("Doe^Jane", "a 8-character value"),
    ],
)
def test_a_cell_is_described_by_its_kind_never_by_its_text(cell: str, words: str) -> None:
    assert value_kind(cell) == words
