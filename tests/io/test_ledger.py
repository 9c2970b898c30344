from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.errors import PipelineInputError
from pipeline.io.ledger import Ledger


def test_ledger_counts_add_up_and_later_decisions_win(tmp_path: Path) -> None:
    ledger = Ledger(["a.dcm", "b.dcm", "c.txt"])
    ledger.record("a.dcm", "skipped", "first guess")
    ledger.record("a.dcm", "ingested", "", "key1")
    ledger.record("b.dcm", "skipped", "duplicate")
    ledger.record("c.txt", "quarantined", "not DICOM")
    counts = ledger.counts()
    assert counts == {"ingested": 1, "skipped": 1, "quarantined": 1, "not_image": 0, "unreferenced": 0}
    ledger.write(tmp_path / "ledger.csv", lambda text: text.replace("duplicate", "dup"), str.upper)
    rows = list(csv.DictReader((tmp_path / "ledger.csv").open()))
    assert [r["path"] for r in rows] == ["A.DCM", "B.DCM", "C.TXT"]
    assert rows[0]["series_key"] == "key1"
    assert rows[1]["reason"] == "dup"


def test_ledger_refuses_to_write_when_a_file_has_no_row(tmp_path: Path) -> None:
    ledger = Ledger(["a.dcm", "b.dcm"])
    ledger.record("a.dcm", "ingested")
    with pytest.raises(RuntimeError, match=r"one row per file found; 1 file\(s\) without a row"):
        ledger.write(tmp_path / "ledger.csv", str, str)


def test_ledger_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError, match=r"^ledger status must be one of \['ingested', 'skipped', 'quarantined', "
                                         r"'not_image', 'unreferenced'\]; got 'lost'\.$") as caught:
        Ledger(["a"]).record("a", "lost")
    # A caller of ours passed nonsense: a bug with its traceback, never shown as the user's input error.
    assert not isinstance(caught.value, PipelineInputError)
