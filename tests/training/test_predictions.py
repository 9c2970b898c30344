"""Scores of the best checkpoint through Lightning's predict loop: predict_step, cache order, fp32."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score

from pipeline.data import CachedDataModule
from pipeline.system import ClassifierSystem
from pipeline.schema.tables import PREDICTION_COLUMNS
from pipeline.training import predict_rows
from pipeline.training.predictions import predict_trainer, subgroup_columns
from pipeline.training.writers import write_predictions
from tests.training.tiny_run import read_csv, write_cache


class Confident(torch.nn.Module):
    """Logits of 24-26: all 1.0 as float32 probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20.0 + self.gain * x.flatten(1).mean(1, keepdim=True)


def _system(backbone: torch.nn.Module) -> ClassifierSystem:
    return ClassifierSystem(backbone, lr=1e-3, weight_decay=0.0, max_epochs=1, backbone_lr_scale=1.0, normalize=None,
                            augment=None, channels_last=False)


def _data(tmp_path, **counts: int) -> CachedDataModule:
    cache = write_cache(tmp_path, counts={"train": 4, "val": 10, "test": 4, **counts})
    data = CachedDataModule(cache, batch_size=4, num_workers=0, seed=0, device_cache=False)
    data.setup("fit")
    return data


def test_confident_scores_keep_their_ranking_in_the_csv(tmp_path):
    """Logits of 24-26 are all 1.0 as float32 probabilities; the CSV must still rank them."""
    data = _data(tmp_path)
    system = _system(Confident())
    rows = predict_rows(predict_trainer(torch.device("cpu"), deterministic=True), system, data, ("val",))
    write_predictions(tmp_path / "p.csv", rows, ["site"])
    written = read_csv(tmp_path / "p.csv")
    assert tuple(written[0].keys()) == (*PREDICTION_COLUMNS, "site")
    scores = [float(r["score"]) for r in written]
    assert len(set(scores)) == len(scores) and max(scores) < 1.0
    images = np.asarray(data.splits["val"].images, dtype=np.float32)
    logits = 20.0 + 10.0 * images.reshape(len(images), -1).mean(1)
    labels = [int(r["label"]) for r in written]
    assert roc_auc_score(labels, scores) == roc_auc_score(labels, logits)


class _Outputs(pl.Callback):
    def __init__(self) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):  # noqa: ANN001
        self.batches.append(outputs)


def test_rows_are_predict_step_s_outputs_in_cache_order(tmp_path):
    data = _data(tmp_path, test=7)
    system = _system(Confident())
    seen = _Outputs()
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[seen])

    rows = predict_rows(trainer, system, data, ("val", "test"))

    assert len(seen.batches) == 3 + 2  # batches of 4: the predict loop ran, batch by batch
    scores, index = (torch.cat(parts) for parts in zip(*seen.batches))
    assert scores.dtype == torch.float64  # predict_step's probabilities, sigmoid in float64
    assert [r["score"] for r in rows] == scores.tolist()
    assert index.tolist() == list(range(10)) + list(range(7))
    assert [r["series_key"] for r in rows] == [r["series_key"] for p in ("val", "test") for r in data.splits[p].rows]
    assert [r["split"] for r in rows] == ["val"] * 10 + ["test"] * 7
    assert subgroup_columns(data) == ["site"]


def test_prediction_runs_in_fp32_on_one_device_and_says_nothing_about_devices(caplog):
    with caplog.at_level(logging.INFO):
        pl.Trainer(accelerator="cpu", devices=1, logger=False)
    assert "GPU available" in caplog.text  # what a Trainer logs when it is built
    caplog.clear()
    with caplog.at_level(logging.INFO):
        trainer = predict_trainer(torch.device("cpu"), deterministic=True)
    assert "GPU available" not in caplog.text  # the fit's Trainer said it already
    assert trainer.precision == "32-true" and trainer.num_devices == 1 and trainer.logger is None
    assert logging.getLogger("pytorch_lightning.utilities.rank_zero").level == logging.NOTSET  # restored
