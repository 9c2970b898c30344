"""The split stage audits the volumes: group keeps copies together, refuse stops, ignore warns."""

from __future__ import annotations

import pytest

from pipeline.splits import assign_splits
from pipeline.stages import split
from pipeline.tables import read_rows, write_rows
from tests.duplicate_cohort import write_cohort
from tests.params import params_text

def _params_text(seed: int, policy: str) -> str:
    return params_text(base={"seed": seed}, split={"val_fraction": 0.25, "test_fraction": 0.35, "duplicates": policy})


def _run(tmp_path, policy, seed=0):
    index, expected = write_cohort(tmp_path / "ingested")
    params = tmp_path / "params.yaml"
    params.write_text(_params_text(seed, policy))
    out, dups = tmp_path / "split.csv", tmp_path / "duplicates.csv"
    code = split.main([str(index), str(out), "--duplicates", str(dups), "--params", str(params)])
    return code, out, dups, expected


@pytest.mark.parametrize("seed", range(4))
def test_group_puts_every_group_in_one_part_lists_and_counts_them(tmp_path, capsys, seed):
    code, out, dups, expected = _run(tmp_path, "group", seed)
    assert code == 0
    parts = {r["patient_id"]: r["split"] for r in read_rows(out)}
    assert len(parts) == 24
    assert all(len({parts[p] for p in group}) == 1 for group in expected.values())
    listed = read_rows(dups)
    by_group = {}
    for row in listed:
        by_group.setdefault(row["group"], set()).update({row["patient_a"], row["patient_b"]})
    assert sorted(map(sorted, by_group.values())) == sorted(map(sorted, expected.values()))
    assert capsys.readouterr().out.strip().endswith(
        "; duplicates: 4 groups of 9 patients (3 exact, 2 near pairs), each kept in one part; 24 images audited")


def test_refuse_stops_listing_every_group(tmp_path, capsys):
    code, out, dups, _ = _run(tmp_path, "refuse")
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "split failed: patients must not share an image with split.duplicates: refuse; got 4 group(s): " in err
    for group in ("['p00', 'p01']", "['p02', 'p03']", "['p04', 'p05']", "['p06', 'p07', 'p08']"):
        assert group in err
    assert len(read_rows(dups)) == 5


def test_ignore_warns_with_the_count_and_splits_as_before(tmp_path, capsys):
    code, out, dups, _ = _run(tmp_path, "ignore")
    assert code == 0 and len(read_rows(dups)) == 5
    plain = assign_splits(read_rows(tmp_path / "ingested" / "index.csv"), seed=0, val_fraction=0.25, test_fraction=0.35)
    assert {r["patient_id"]: r["split"] for r in read_rows(out)} == {s.patient_id: s.split for s in plain}
    captured = capsys.readouterr()
    assert "split: WARNING: 4 group(s) of patients share an image" in captured.err
    assert "duplicates: 4 groups of 9 patients (3 exact, 2 near pairs), ignored" in captured.out


def test_a_cohort_without_copies_says_so(tmp_path, capsys):
    index, _ = write_cohort(tmp_path / "ingested")
    rows = [r for r in read_rows(index) if r["patient_id"] not in ("p01", "p03", "p05", "p06", "p08")]
    write_rows(index, rows, list(rows[0]))
    (tmp_path / "params.yaml").write_text(_params_text(0, "refuse"))
    assert split.main([str(index), str(tmp_path / "s.csv"), "--duplicates", str(tmp_path / "d.csv"),
                       "--params", str(tmp_path / "params.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith("; duplicates: none across patients; 19 images audited")
    assert read_rows(tmp_path / "d.csv") == []
