"""``train_and_predict`` end to end on a tiny cache: outputs, provenance, model selection.

The cache is :mod:`tests.training.tiny_run`'s 2D one: a full run with real checkpointing
takes seconds on a CPU, on the code path 3D volumes take.
"""

from __future__ import annotations

import json
import logging
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipeline.cache import open_split
from pipeline.config import ConfigError
from pipeline.modelfile import digest
from pipeline.schema.tables import PREDICTION_COLUMNS
from pipeline.training import train_and_predict
from tests.training.tiny_run import COUNTS, logged_val_auc, read_csv, run_paths, tiny_configs, write_cache


@pytest.fixture(scope="module")
def trained(module_tmp):
    """One real run shared by the tests that read its outputs (a run takes seconds)."""
    root = module_tmp("run")
    cache = write_cache(root)
    paths = run_paths(root)
    model, train = tiny_configs()
    summary = train_and_predict(cache, **paths, model=model, train=train)
    return cache, paths, summary


def test_predictions_hold_one_row_per_cached_val_and_test_sample(trained):
    cache, paths, _ = trained
    rows = read_csv(paths["predictions_csv"])
    assert tuple(rows[0].keys()) == (*PREDICTION_COLUMNS, "site")
    for part in ("val", "test"):
        cached = open_split(cache, part).rows
        written = [r for r in rows if r["split"] == part]
        assert [r["series_key"] for r in written] == [r["series_key"] for r in cached]
        assert [r["label"] for r in written] == [r["label"] for r in cached]
        assert [r["patient_id"] for r in written] == [r["patient_id"] for r in cached]
    assert len(rows) == COUNTS["val"] + COUNTS["test"]
    scores = np.array([float(r["score"]) for r in rows])
    assert ((scores >= 0) & (scores <= 1)).all() and scores.std() > 0


def test_best_checkpoint_is_the_epoch_of_highest_validation_auc(trained):
    _, paths, summary = trained
    per_epoch = logged_val_auc(paths["live_dir"])
    assert len(per_epoch) == 3  # logged once per epoch
    assert summary.best_epoch == int(np.argmax(per_epoch))
    assert summary.best_val_auc == pytest.approx(max(per_epoch), abs=1e-6)
    best = torch.load(paths["model_dir"] / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] == summary.best_epoch
    # predictions come from the best checkpoint: their val AUC is the one that selected it
    val = [r for r in read_csv(paths["predictions_csv"]) if r["split"] == "val"]
    auc = roc_auc_score([int(r["label"]) for r in val], [float(r["score"]) for r in val])
    assert auc == pytest.approx(summary.best_val_auc, abs=1e-6)


def test_summary_records_provenance_config_and_completion(trained):
    cache, paths, summary = trained
    written = json.loads(paths["summary_json"].read_text())
    assert written["weights"]["source"] == "none" and written["weights"]["arch"] == "resnet18"
    assert written["model"] == {"arch": "resnet18", "spatial_dims": 2, "in_channels": 1, "num_classes": 1}
    assert written["best_epoch"] == summary.best_epoch and written["resumed_from_epoch"] is None
    best = torch.load(paths["model_dir"] / "best.ckpt", map_location="cpu", weights_only=True)
    sealed = best["medimg"]
    assert written["model_digest"] == sealed["digest"]  # best.ckpt's, whose scores predictions.csv holds
    weights = {k[len("backbone."):]: v for k, v in best["state_dict"].items() if k.startswith("backbone.")}
    assert digest({k: v for k, v in sealed.items() if k != "digest"}, weights) == sealed["digest"]
    assert written["config"]["train"]["max_epochs"] == 3 and written["config"]["train"]["precision"] == "32"
    assert written["cache"]["counts"] == COUNTS
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is True
    assert "best epoch" in summary.line() and "weights none" in summary.line()


@pytest.mark.parametrize("key", ["channels_last", "compile"])
def test_speed_knobs_must_be_booleans(key):
    with pytest.raises(ConfigError, match=rf"'train.{key}' must be true or false; got 'yes'"):
        tiny_configs(**{key: "yes"})


def test_holding_the_splits_in_device_memory_does_not_change_the_run(tmp_path, capsys):
    cache = write_cache(tmp_path)
    results = {}
    for held in (False, True):
        paths = run_paths(tmp_path / f"held-{held}")
        model, train = tiny_configs(max_epochs=2, device_cache=held)
        summary = train_and_predict(cache, **paths, model=model, train=train)
        scores = [(r["series_key"], r["score"]) for r in read_csv(paths["predictions_csv"])]
        results[held] = (summary.best_epoch, summary.best_val_auc, scores)
    assert results[True] == results[False]  # same batches, same order: bit-identical on CPU
    printed = capsys.readouterr().out
    assert "cache of 0.00 GiB streamed from the cache file" in printed and "held on cpu" in printed


@pytest.mark.parametrize("value", ["yes", 1])
def test_device_cache_is_a_boolean_or_auto(value):
    with pytest.raises(ConfigError, match=rf"'train.device_cache' must be true, false or auto; got {value!r}"):
        tiny_configs(device_cache=value)


def test_a_run_does_not_warn_about_its_own_design(tmp_path, capsys, caplog):
    """Its model folder is not empty (fingerprint.json); the module owns the post-transfer hook;
    Lightning's advertisement and its own deprecations are not about the user's run."""
    cache = write_cache(tmp_path)
    model, train = tiny_configs(max_epochs=1)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        train_and_predict(cache, **run_paths(tmp_path), model=model, train=train)
    assert (tmp_path / "models" / "fingerprint.json").is_file()  # the file Lightning would have warned about
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "exists and is not empty" in m or "on_after_batch_transfer" in m]
    assert not [m for m in messages if "LeafSpec" in m]
    assert "litlogger" not in caplog.text.lower() and "litlogger" not in capsys.readouterr().err.lower()


def test_each_epoch_prints_one_line_a_log_reader_can_follow(tmp_path, capsys):
    cache = write_cache(tmp_path)
    model, train = tiny_configs(max_epochs=3)
    summary = train_and_predict(cache, **run_paths(tmp_path), model=model, train=train)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train: epoch ")]
    assert [line.split(":")[1] for line in lines] == [" epoch 1/3", " epoch 2/3", " epoch 3/3"]
    aucs = logged_val_auc(run_paths(tmp_path)["live_dir"])
    for line, auc in zip(lines, aucs):
        assert re.search(rf"train loss \d\.\d{{4}}, val AUC {auc:.3f} \(best \d\.\d{{3}} at epoch \d\), \d+ s", line)
    assert "left" in lines[0] and "left" not in lines[-1]
    assert f"(best {summary.best_val_auc:.3f} at epoch {summary.best_epoch + 1})" in lines[-1]
    # the summary counts epochs as the per-epoch lines do (from 1; train_summary.json keeps Lightning's 0-based)
    assert summary.line().startswith(f"train: best epoch {summary.best_epoch + 1} with")
