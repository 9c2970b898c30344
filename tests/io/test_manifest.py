from __future__ import annotations

from pathlib import Path

import pytest

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
        "line 4: 'label' (column 2) must be 0 or 1; got a 1-digit number",
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
