"""The crossval stage: off, its files say so; on, the pooled results and a figure."""

from __future__ import annotations

import csv
import json

from pipeline.stages import crossval
from tests.params import write_params
from tests.report.test_crossval import _write_folds


def test_with_folds_off_it_writes_files_saying_so(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", split={"folds": 0})
    out = tmp_path / "reports" / "cv"
    assert crossval.main([str(tmp_path / "folds"), str(out), "--params", str(params)]) == 0
    assert json.loads((out / "cv.json").read_text()) == {"k": 0}
    assert json.loads((out / "roc.json").read_text()) == []
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "predictions.csv").read_text().startswith("patient_id,series_key,split,label,score,fold")
    assert "crossval: off (split.folds: 0)" in capsys.readouterr().out


def test_with_folds_on_it_pools_them(tmp_path, capsys):
    _write_folds(tmp_path / "folds", k=3)
    params = write_params(tmp_path / "params.yaml", split={"folds": 3})
    out = tmp_path / "reports" / "cv"
    assert crossval.main([str(tmp_path / "folds"), str(out), "--params", str(params)]) == 0
    record = json.loads((out / "cv.json").read_text())
    assert record["k"] == 3 and len(record["cv"]["folds"]) == 3
    assert {r["fold"] for r in json.loads((out / "roc.json").read_text())} == {"fold 0", "fold 1", "fold 2", "pooled"}
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["split"] for r in rows} == {"val", "test"}
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("crossval: 3 folds, pooled out-of-fold AUC ") and f"{record['cv']['auc']:.3f}" in line


def test_folds_of_an_older_setting_end_the_stage_in_one_line(tmp_path, capsys):
    _write_folds(tmp_path / "folds", k=2)
    params = write_params(tmp_path / "params.yaml", split={"folds": 3})
    assert crossval.main([str(tmp_path / "folds"), str(tmp_path / "cv"), "--params", str(params)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crossval failed: ") and "split.folds: 3" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cv").exists()
