"""Which files each manifest row selects: by path, by UID, never by two rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.io.ingest import ingest_cohort
from pipeline.io.locators import files_under
from pipeline.io.manifest import ManifestError
from tests.io.cohorts import KEY
from tests.io.shipped import ingest_settings


def test_series_uid_locators_select_one_series_and_the_rest_is_unreferenced(cohort: dict, tmp_path: Path) -> None:
    manifest = tmp_path / "by_uid.csv"
    manifest.write_text(f"patient_id,label,series_uid\nA,1,{cohort['axial']['series_uid']}\n")
    summary = ingest_cohort(cohort["raw"], manifest, cohort["out"], pseudonym_key=KEY, **ingest_settings())
    assert summary.counts["ingested"] == 10
    assert summary.n_volumes == 1
    assert summary.counts["unreferenced"] == summary.n_files - 10


def test_a_path_selects_itself_and_what_lies_below_it_never_a_sibling_sharing_its_prefix() -> None:
    files = sorted(["p1", "p1.txt", "p1/a.dcm", "p1/b/c.dcm", "p10/d.dcm"])
    assert files_under(files, "p1") == ["p1", "p1/a.dcm", "p1/b/c.dcm"]
    assert files_under(files, "p1/") == ["p1/a.dcm", "p1/b/c.dcm"]
    assert files_under(files, "p1/b") == ["p1/b/c.dcm"]
    assert files_under(files, "p2") == []
    assert files_under(files, None) == files == files_under(files, "")


def test_two_rows_selecting_the_same_files_are_both_named(cohort: dict, tmp_path: Path) -> None:
    manifest = tmp_path / "overlap.csv"
    manifest.write_text(f"patient_id,label,path,series_uid\nA,1,f3a9,\nB,0,,{cohort['axial']['series_uid']}\n")
    with pytest.raises(ManifestError, match=r"found 1 problem\(s\):\n  line 3: locator \(series_uid\) must not select "
                                            r"files another row selects; it overlaps line\(s\) \[2\]\. Make the paths "
                                            r"or UIDs disjoint\."):
        ingest_cohort(cohort["raw"], manifest, cohort["out"], pseudonym_key=KEY, **ingest_settings())
