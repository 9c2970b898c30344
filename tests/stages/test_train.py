"""The train stage: a cache in; checkpoints, predictions, summary and DVCLive logs out; bad input is one line."""

from __future__ import annotations

import json

from pipeline.stages import train
from tests.params import write_params
from tests.training.tiny_run import COUNTS, MODEL, TRAIN, read_csv, run_paths, write_cache

SETTINGS = {k: v for k, v in TRAIN.items() if k != "seed"}


def _args(root, params) -> list[str]:
    paths = run_paths(root)
    return [str(root / "cache"), *(str(paths[k]) for k in ("model_dir", "predictions_csv", "summary_json", "live_dir")),
            "--params", str(params)]


def test_train_writes_what_dvc_yaml_declares_and_prints_its_summary(tmp_path, capsys):
    write_cache(tmp_path)
    params = write_params(tmp_path / "params.yaml", base={"seed": 0}, model=MODEL, train={**SETTINGS, "max_epochs": 1})
    assert train.main(_args(tmp_path, params)) == 0
    paths = run_paths(tmp_path)
    assert (paths["model_dir"] / "best.ckpt").is_file()
    rows = read_csv(paths["predictions_csv"])
    assert {p: sum(r["split"] == p for r in rows) for p in ("val", "test")} == {"val": COUNTS["val"], "test": COUNTS["test"]}
    summary = json.loads(paths["summary_json"].read_text())
    assert summary["best_epoch"] == 0 and summary["weights"]["source"] == "none"
    assert (paths["live_dir"] / "metrics.json").is_file()
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train: ") and "best epoch 1" in line


def test_a_setting_outside_its_vocabulary_ends_the_stage_with_one_line(tmp_path, capsys):
    write_cache(tmp_path)
    params = write_params(tmp_path / "params.yaml", base={"seed": 0}, model=MODEL, train={**SETTINGS, "precision": "fp8"})
    assert train.main(_args(tmp_path, params)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train failed: ") and "precision" in err and "'fp8'" in err and len(err.splitlines()) == 1
    assert not run_paths(tmp_path)["predictions_csv"].exists()


def test_outputs_inside_the_cache_are_refused_before_anything_is_written(tmp_path, capsys):
    cache = write_cache(tmp_path)
    before = sorted(p.name for p in cache.iterdir())
    params = write_params(tmp_path / "params.yaml", base={"seed": 0}, model=MODEL, train=SETTINGS)
    args = _args(tmp_path, params)
    args[1] = str(cache / "models")
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert "train failed: " in err and "model_dir" in err and "cache_dir" in err
    assert sorted(p.name for p in cache.iterdir()) == before
