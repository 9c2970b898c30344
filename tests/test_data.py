"""The DataModule over the cache: batch reads, the device-resident splits, placement."""

from __future__ import annotations

import dataclasses
import inspect
import os

import numpy as np
import pytest
import torch

import pipeline.data as data_module
from pipeline.cache import CacheError, open_split
from pipeline.errors import ConfigError
from pipeline.data import (
    CachedDataModule,
    CachedDataset,
    choose_placement,
    copy_to_device,
)

SAMPLE_BYTES = 16 * 16 * 8 * 2  # one float16 sample of the tiny cache


def test_datamodule_streams_float16_with_indices(tiny_cache):
    data = CachedDataModule(tiny_cache, batch_size=5, seed=0, num_workers=0, device_cache=False)
    data.setup("fit")
    x, y, idx = next(iter(data.val_dataloader()))
    assert x.dtype == torch.float16 and tuple(x.shape) == (5, 1, 16, 16, 8)
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert idx.tolist() == [0, 1, 2, 3, 4]


def test_datamodule_refuses_one_class_validation(tiny_cache):
    rows = (tiny_cache / "val.csv").read_text().splitlines()
    fixed = [rows[0]] + [r.rsplit(",", 2)[0] + ",0," + r.rsplit(",", 1)[1] for r in rows[1:]]
    (tiny_cache / "val.csv").write_text("\n".join(fixed) + "\n")
    with pytest.raises(CacheError, match=r"'val' split must hold both classes.*labels \[0\]"):
        CachedDataModule(tiny_cache, batch_size=4, num_workers=0, seed=0, device_cache=False).setup("fit")


def test_a_batch_holds_the_samples_asked_for_in_that_order(tiny_cache):
    split = open_split(tiny_cache, "train")
    order = [5, 6, 7, 0, 23, 22, 3]  # a run of three, a jump back, a descending pair
    x, y, idx = CachedDataset(split).__getitems__(order)
    assert x.dtype == torch.float16 and tuple(x.shape) == (7, 1, 16, 16, 8)
    assert np.array_equal(x.numpy(), np.asarray(split.images)[order])
    assert y.tolist() == split.labels[order].astype(float).tolist()
    assert idx.tolist() == order
    single_x, single_y, single_i = CachedDataset(split)[23]
    assert torch.equal(single_x, x[4]) and float(single_y) == y[4] and single_i == 23


def test_a_truncated_cache_file_names_the_samples_and_the_fix(tiny_cache):
    split = open_split(tiny_cache, "train")
    path = tiny_cache / "train.npy"
    os.truncate(path, path.stat().st_size - SAMPLE_BYTES - 10)  # 23 gone, 22 short by 10 bytes
    dataset = CachedDataset(split)
    assert dataset.__getitems__([0, 1])[0].shape[0] == 2  # intact samples still read
    expected = (r"cache file '.*train.npy' must hold 24 samples of 4096 bytes; reading samples 20\.\.23 "
                r"returned 12278 of 16384 bytes.*dvc repro -f preprocess")
    with pytest.raises(CacheError, match=expected):
        dataset.__getitems__([20, 21, 22, 23])


def test_a_split_copied_in_chunks_keeps_every_sample(tiny_cache, monkeypatch):
    monkeypatch.setattr(data_module, "_UPLOAD_CHUNK_BYTES", 5 * SAMPLE_BYTES)  # 24 = 4 chunks of 5 + 4
    dataset = CachedDataset(open_split(tiny_cache, "train"))
    resident = copy_to_device(dataset, torch.device("cpu"))
    assert resident.dtype == torch.float16
    assert torch.equal(resident, torch.from_numpy(np.asarray(dataset.split.images)))


def test_splits_held_on_the_device_give_the_batches_streaming_gives(tiny_cache, capsys):
    streamed = CachedDataModule(tiny_cache, batch_size=5, seed=3, num_workers=2, device_cache=False)
    held = CachedDataModule(tiny_cache, batch_size=5, seed=3, num_workers=2, device_cache=True)
    for data in (streamed, held):
        data.setup("fit")
    for loader in ("train_dataloader", "val_dataloader"):
        pairs = list(zip(getattr(streamed, loader)(), getattr(held, loader)(), strict=True))
        assert len(pairs) == (5 if loader == "train_dataloader" else 3)
        for a, b in pairs:
            assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert streamed.placement == "stream" and held.placement == "device"
    loader = held.train_dataloader()
    assert loader.num_workers == 0 and loader.dataset.resident is not None  # nothing left to read in workers
    assert "held on cpu; no loader workers needed" in capsys.readouterr().out


def test_device_cache_must_be_a_boolean_or_auto(tiny_cache):
    # the rule of train.device_cache (pipeline.rules), the same for the library and the config
    with pytest.raises(ConfigError, match=r"'device_cache' must be true, false or auto; got 1"):
        CachedDataModule(tiny_cache, batch_size=4, device_cache=1, num_workers=0, seed=0)


@pytest.mark.parametrize(
    ("setting", "device", "nbytes", "free", "expected"),
    [
        ("auto", "cuda", 25, 100, "device"),  # exactly DEVICE_CACHE_SHARE of the free memory
        ("auto", "cuda", 26, 100, "stream"),
        ("auto", "cpu", 1, None, "stream"),  # RAM would grow with the cohort
        (True, "cpu", 10**12, None, "device"),
        (False, "cuda", 1, 100, "stream"),
    ],
)
def test_placement_rule(setting, device, nbytes, free, expected):
    assert data_module.DEVICE_CACHE_SHARE == 0.25
    assert choose_placement(setting, device, nbytes, free) == expected


def _epoch_order(loader, epoch: int) -> list[int]:
    loader.sampler.set_epoch(epoch)  # as Lightning's fit loop does before each epoch
    return [i for _, _, idx in loader for i in idx.tolist()]


def test_the_shuffle_is_the_same_with_or_without_workers_or_a_device_copy(tiny_cache):
    """Epoch after epoch: Lightning iterates one loader once per epoch."""
    orders = {}
    for name, settings in {"main process": {"num_workers": 0, "device_cache": False},
                           "two workers": {"num_workers": 2, "device_cache": False},
                           "device copy": {"num_workers": 2, "device_cache": True}}.items():
        data = CachedDataModule(tiny_cache, batch_size=5, seed=7, **settings)
        data.setup("fit")
        loader = data.train_dataloader()
        orders[name] = [_epoch_order(loader, epoch) for epoch in range(3)]
    epochs = orders["main process"]
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    assert sorted(epochs[0]) == list(range(24))
    assert orders["two workers"] == epochs and orders["device copy"] == epochs


def test_an_epochs_order_does_not_depend_on_the_epochs_drawn_before_it(tiny_cache):
    """What a resumed run relies on: a fresh loader starting at epoch 2 draws epoch 2's order."""
    def loader(seed: int):
        data = CachedDataModule(tiny_cache, batch_size=5, seed=seed, num_workers=0, device_cache=False)
        data.setup("fit")
        return data.train_dataloader()

    uninterrupted = [_epoch_order(loader(7), epoch) for epoch in range(3)]
    assert _epoch_order(loader(7), 2) == uninterrupted[2]
    assert _epoch_order(loader(8), 0) != uninterrupted[0]  # the seed matters too


def test_teardown_drops_the_device_copy_the_loaders_still_hold(tiny_cache):
    data = CachedDataModule(tiny_cache, batch_size=5, seed=0, device_cache=True, num_workers=0)
    data.setup("fit")
    train, val = data.train_dataloader(), data.val_dataloader()
    assert train.dataset.resident is not None and val.dataset.resident is not None
    data.teardown("fit")
    assert train.dataset.resident is None and val.dataset.resident is None
    x, _, idx = next(iter(val))  # a loader used after teardown reads the file instead
    assert torch.equal(x, torch.from_numpy(np.asarray(data.splits["val"].images[:5]))) and idx.tolist() == [0, 1, 2, 3, 4]


def test_a_cache_of_another_dtype_is_refused(tiny_cache):
    split = open_split(tiny_cache, "val")
    wrong = dataclasses.replace(split, images=np.asarray(split.images, dtype=np.float32))
    with pytest.raises(CacheError, match=r"cache split arrays must be float16; got float32.*dvc repro -f preprocess"):
        CachedDataset(wrong)


def test_the_train_settings_have_no_second_default_here():
    """num_workers, seed and device_cache come from params.yaml (train.*, base.seed) only."""
    parameters = inspect.signature(CachedDataModule).parameters
    for name in ("batch_size", "num_workers", "seed", "device_cache"):
        assert parameters[name].default is inspect.Parameter.empty, name


@pytest.mark.parametrize("batch_size, train_batches, val_batches", [(23, [23], [12]), (5, [5, 5, 5, 5, 4], [5, 5, 2])])
def test_a_last_training_batch_of_one_sample_is_dropped_and_no_other(tiny_cache, batch_size, train_batches, val_batches):
    # 24 train samples: at batch 23 the last batch would be one sample, which BatchNorm
    # refuses in training; val and test are scored whole.
    data = CachedDataModule(tiny_cache, batch_size=batch_size, seed=0, num_workers=0, device_cache=False)
    data.setup("fit")
    assert [len(y) for _, y, _ in data.train_dataloader()] == train_batches
    assert [len(y) for _, y, _ in data.val_dataloader()] == val_batches
    assert sum(len(y) for _, y, _ in data.predict_loader("train")) == 24


def test_training_on_a_part_of_one_batch_plus_one_sample_runs(tmp_path):
    from tests.training.tiny_run import MODEL, TRAIN, write_cache
    from pipeline.config import ModelConfig, TrainConfig
    from pipeline.training import train_and_predict
    from tests.params import config

    write_cache(tmp_path, counts={"train": 9, "val": 6, "test": 4})
    summary = train_and_predict(tmp_path / "cache", tmp_path / "models", tmp_path / "p.csv", tmp_path / "s.json",
                                tmp_path / "live", model=config(ModelConfig, **MODEL),
                                train=config(TrainConfig, **{**TRAIN, "max_epochs": 1, "batch_size": 4}))
    assert summary.best_epoch == 0 and (tmp_path / "models" / "best.ckpt").is_file()
