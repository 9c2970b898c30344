"""The train_fold stage: a slot past split.folds says so; a slot in use trains on the other folds."""

from __future__ import annotations

import csv
import json

from pipeline.stages import train_fold
from tests.params import write_params
from tests.training.tiny_run import MODEL, TRAIN, read_csv, write_cache

SETTINGS = {k: v for k, v in TRAIN.items() if k != "seed"}


def _split_csv(cache, path, k: int):
    patients = sorted({r["patient_id"] for part in ("train", "val", "test")
                       for r in csv.DictReader((cache / f"{part}.csv").open())})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "split", "label", "fold"])
        for i, pid in enumerate(patients):
            test = pid.startswith("test")
            writer.writerow([pid, "test" if test else "train", 0, "" if test else i % k])
    return path


def _args(tmp_path, slot: int, params) -> list[str]:
    return [str(slot), str(tmp_path / "cache"), str(tmp_path / "split.csv"), str(tmp_path / "cv" / "models" / str(slot)),
            str(tmp_path / "cv" / "folds" / str(slot)), "--params", str(params)]


def test_a_slot_past_split_folds_records_that_and_drops_a_stale_model(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", split={"folds": 2})
    stale = tmp_path / "cv" / "models" / "3"
    stale.mkdir(parents=True)
    (stale / "best.ckpt").write_bytes(b"from a run with split.folds: 5")
    assert train_fold.main(_args(tmp_path, 3, params)) == 0
    record = json.loads((tmp_path / "cv" / "folds" / "3" / "fold.json").read_text())
    assert record == {"slot": 3, "k": 2, "in_use": False, "reason": "split.folds is 2"}
    assert list(stale.iterdir()) == []
    assert capsys.readouterr().out.strip().endswith("train_fold: slot 3 not in use (split.folds is 2)")


def test_a_slot_in_use_selects_on_its_fold_and_scores_it_and_test(tmp_path, capsys):
    cache = write_cache(tmp_path)
    _split_csv(cache, tmp_path / "split.csv", k=2)
    params = write_params(tmp_path / "params.yaml", base={"seed": 0}, split={"folds": 2}, model=MODEL,
                          train={**SETTINGS, "max_epochs": 1})
    assert train_fold.main(_args(tmp_path, 1, params)) == 0
    result = tmp_path / "cv" / "folds" / "1"
    record = json.loads((result / "fold.json").read_text())
    assert record["in_use"] and record["k"] == 2 and record["samples"]["test"] == 12
    assert record["samples"]["train"] + record["samples"]["val"] == 24 + 13
    rows = read_csv(result / "predictions.csv")
    folds = {r["patient_id"]: r["fold"] for r in csv.DictReader((tmp_path / "split.csv").open())}
    assert {folds[r["patient_id"]] for r in rows if r["split"] == "val"} == {"1"}
    assert sum(r["split"] == "test" for r in rows) == 12
    assert (tmp_path / "cv" / "models" / "1" / "best.ckpt").is_file()
    assert not (tmp_path / "cv" / "models" / "1.fold-cache").exists()
    assert "train_fold: fold 1 of 2: best epoch 1" in capsys.readouterr().out
