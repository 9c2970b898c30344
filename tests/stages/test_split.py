"""The split stage: index in, one part per patient out (never a patient in two parts); bad input is one line."""

from __future__ import annotations

from pipeline.schema.tables import SPLIT_COLUMNS
from pipeline.stages import split
from pipeline.tables import read_rows, write_rows
from tests.params import write_params


def _index(tmp_path, n_patients=20):
    """Two series per patient, labels alternating by patient; no image files (the audit lists them unread)."""
    rows = [{"series_key": f"s{i}-{j}", "patient_id": f"p{i:02d}", "label": i % 2, "image_path": f"volumes/s{i}-{j}.nii"}
            for i in range(n_patients) for j in range(2)]
    write_rows(tmp_path / "index.csv", rows, ("series_key", "patient_id", "label", "image_path"))
    return tmp_path / "index.csv"


def test_split_assigns_each_patient_one_part_with_the_fractions_asked(tmp_path, capsys):
    _index(tmp_path)
    params = write_params(tmp_path / "params.yaml", split={"val_fraction": 0.2, "test_fraction": 0.3})
    out = tmp_path / "split.csv"
    assert split.main([str(tmp_path / "index.csv"), str(out), "--params", str(params)]) == 0
    rows = read_rows(out)
    assert tuple(rows[0]) == SPLIT_COLUMNS
    assert sorted(r["patient_id"] for r in rows) == [f"p{i:02d}" for i in range(20)]  # one row each
    parts = [r["split"] for r in rows]
    assert (parts.count("train"), parts.count("val"), parts.count("test")) == (10, 4, 6)
    for part in ("train", "val", "test"):  # stratified: both labels in each part
        assert {r["label"] for r in rows if r["split"] == part} == {"0", "1"}
    assert capsys.readouterr().out.startswith("split: train 10 patients (5 positive), val 4 patients")


def test_fractions_that_leave_no_training_patients_are_one_line_naming_them(tmp_path, capsys):
    index = _index(tmp_path)
    params = write_params(tmp_path / "params.yaml", split={"val_fraction": 0.5, "test_fraction": 0.5})
    assert split.main([str(index), str(tmp_path / "split.csv"), "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("split failed: ") and "val_fraction" in err and "test_fraction" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "split.csv").exists()


def test_the_duplicates_table_may_not_be_the_split_itself(tmp_path, capsys):
    index = _index(tmp_path)
    params = write_params(tmp_path / "params.yaml")
    out = str(tmp_path / "split.csv")
    assert split.main([str(index), out, "--duplicates", out, "--params", str(params)]) == 2
    assert "'duplicates' must differ from 'out'" in capsys.readouterr().err
