"""The train stage's two files: predictions.csv's columns and digits, train_summary.json's layout."""

from __future__ import annotations

import json

import pytest

from pipeline.models.network import NetworkLayout
from pipeline.models.provenance import random_provenance
from pipeline.schema import ArtifactError
from pipeline.schema.tables import PREDICTION_COLUMNS
from pipeline.training.writers import TrainSummary, write_predictions, write_train_summary
from tests.training.tiny_run import read_csv

#: A provenance record as the models package writes it, its source changed to imagenet.
PROVENANCE = {**random_provenance(NetworkLayout("resnet18", 2, 1, 1, (7, 7), (2, 2), "A", False),
                                  requested="auto").to_dict(), "source": "imagenet"}
SUMMARY = TrainSummary(best_epoch=2, best_val_auc=0.75, resumed_from_epoch=1, seconds=12.345, provenance=PROVENANCE)
DIGEST = "ab" * 32  # a model file's sealed digest (SHA-256 hex)
TRAIN = {"max_epochs": 5, "batch_size": 8, "lr": 0.001, "weight_decay": 0.0001, "precision": "32", "augment": False}


def test_predictions_have_the_columns_then_the_subgroups_and_every_digit(tmp_path):
    rows = [
        {"patient_id": "p1", "series_key": "s1", "label": 1, "site": "a", "split": "val", "score": 0.1 + 0.2},
        {"patient_id": "p2", "series_key": "s2", "label": 0, "site": "b", "split": "test", "score": 1 - 1e-12},
    ]
    write_predictions(tmp_path / "p.csv", rows, ["site"])
    written = read_csv(tmp_path / "p.csv")
    assert tuple(written[0]) == (*PREDICTION_COLUMNS, "site") == ("patient_id", "series_key", "split", "label",
                                                                  "score", "site")
    assert [r["score"] for r in written] == ["0.30000000000000004", "0.99999999999900002"]
    assert float(written[1]["score"]) == 1 - 1e-12  # 17 significant digits round-trip a float64
    assert (tmp_path / "p.csv").read_text().splitlines()[1] == "p1,s1,val,1,0.30000000000000004,a"


def test_the_summary_file_has_its_fixed_layout(tmp_path):
    meta = {"roi": [24, 24], "pixdim": [2.0, 2.0], "counts": {"train": 3}, "spatial_dims": 2, "dtype": "float16"}
    network = {"arch": "resnet18", "spatial_dims": 2, "in_channels": 1, "num_classes": 1}
    config = {"model": {"arch": "resnet18"}, "train": TRAIN}

    write_train_summary(tmp_path / "s.json", SUMMARY, network=network, model_digest=DIGEST, config=config,
                        cache_meta=meta)

    text = (tmp_path / "s.json").read_text()
    written = json.loads(text)
    assert list(written) == ["weights", "model", "model_digest", "best_epoch", "best_val_auc", "resumed_from_epoch",
                             "seconds", "config", "cache"]
    assert written["model_digest"] == DIGEST
    assert written["weights"] == SUMMARY.provenance and written["model"] == network and written["config"] == config
    assert (written["best_epoch"], written["best_val_auc"], written["resumed_from_epoch"]) == (2, 0.75, 1)
    assert written["seconds"] == 12.3
    assert written["cache"] == {"roi": [24, 24], "pixdim": [2.0, 2.0], "counts": {"train": 3}}
    assert text.startswith('{\n  "weights": {') and text.endswith("}\n")


def test_a_summary_the_report_could_not_read_is_refused_when_written(tmp_path):
    """The writer goes through the record evaluate reads: a missing key stops train, not evaluate."""
    meta = {"roi": [24, 24], "pixdim": [2.0, 2.0], "counts": {"train": 3}}
    network = {"arch": "resnet18", "spatial_dims": 2, "in_channels": 1, "num_classes": 1}
    config = {"model": {"arch": "resnet18"}, "train": {k: v for k, v in TRAIN.items() if k != "batch_size"}}
    with pytest.raises(ArtifactError, match=r"must have the key 'config.train.batch_size'"):
        write_train_summary(tmp_path / "s.json", SUMMARY, network=network, model_digest=DIGEST, config=config,
                            cache_meta=meta)
    assert not (tmp_path / "s.json").exists()


def test_the_summary_line_names_the_best_epoch_the_weights_and_the_resume():
    assert SUMMARY.line() == "train: best epoch 3 with val AUC 0.750; weights imagenet, resumed from epoch 1; 12 s"
    fresh = TrainSummary(best_epoch=0, best_val_auc=0.5, resumed_from_epoch=None, seconds=3.0, provenance={"source": "none"})
    assert fresh.line() == "train: best epoch 1 with val AUC 0.500; weights none; 3 s"
