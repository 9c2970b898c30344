"""``train_and_predict`` end to end on a tiny cache: outputs, provenance, model selection.

The cache here is 2D (1, 32, 32): a 2D ResNet-18 has a third of the 3D one's weights, so
checkpoints are small and a full run with real checkpointing takes seconds on a CPU.
The code path is the one 3D volumes take (``spatial_dims`` comes from the cache meta).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from monai.networks.nets import ResNet
from sklearn.metrics import roc_auc_score

from pipeline.cache import CacheWriter, open_split, write_meta
from pipeline.config import ConfigError, ModelConfig, TrainConfig
from tests.params import config
from pipeline.data import CachedDataModule
from pipeline.system import ClassifierSystem
from pipeline.tables import write_rows
from pipeline.training import PREDICTION_COLUMNS, predict_rows, train_and_predict

ROI = (32, 32)
COUNTS = {"train": 24, "val": 13, "test": 12}  # 13: DDP pads the validation shards


def write_cache(root: Path, *, counts: dict[str, int] = COUNTS, roi: tuple[int, ...] = ROI, seed: int = 0) -> Path:
    """Write a cache of noisy images; positives are brighter and carry a bright square.

    Labels alternate (0, 1, 0, ...), so every split holds both classes. The signal is
    weak enough that an untrained network does not rank perfectly, so AUCs differ
    between epochs and between subsets.
    """
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    for part, n in counts.items():
        writer = CacheWriter(cache, part, n, roi, channels=1)
        for i in range(n):
            label = i % 2
            image = rng.normal(0.45 if label else 0.4, 0.1, roi).astype(np.float32)
            if label:
                corner = [int(rng.integers(1, s - 6)) for s in roi]
                image[tuple(slice(c, c + 5) for c in corner)] += 0.3
            writer.add(np.clip(image, 0, 1)[None], {
                "patient_id": f"{part}-p{i // 2}", "series_key": f"{part}-s{i}", "label": label,
                "site": "a" if i % 3 else "b",
            })
        writer.close(("patient_id", "series_key", "label", "site"))
    write_meta(cache, {"spatial_dims": len(roi), "roi": list(roi), "pixdim": [1.0] * len(roi), "in_channels": 1,
                       "counts": counts})
    return cache


def run_paths(root: Path) -> dict[str, Path]:
    return {
        "model_dir": root / "models",
        "predictions_csv": root / "reports" / "predictions.csv",
        "summary_json": root / "reports" / "train_summary.json",
        "live_dir": root / "dvclive",
    }


def tiny_configs(**train: object) -> tuple[ModelConfig, TrainConfig]:
    # augment on and no shift: these tests cover the resumed and repeated augmentation too.
    settings = dict(seed=0, max_epochs=3, batch_size=8, lr=1e-3, accelerator="cpu", devices=1, precision="32",
                    augment=True, augment_shift_voxels=0)
    settings.update(train)
    return tiny_model(), config(TrainConfig, **settings)


def tiny_model() -> ModelConfig:
    return config(ModelConfig, arch="resnet18", weights="none", weights_sha256=None, freeze_until_epoch=0,
                  backbone_lr_scale=1.0, stem_kernel_depth=7, stem_stride_depth=2)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def logged_val_auc(live_dir: Path) -> list[float]:
    """Validation AUC per epoch as DVCLive recorded it (it files ``val_auc`` as ``val/auc``)."""
    with (live_dir / "plots" / "metrics" / "val" / "auc.tsv").open(newline="") as handle:
        return [float(r["auc"]) for r in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real run shared by the tests that read its outputs (a run takes seconds)."""
    root = tmp_path_factory.mktemp("run")
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


def test_confident_scores_keep_their_ranking_in_the_csv(tmp_path):
    """Logits of 24-26 are all 1.0 as float32 probabilities; the CSV must still rank them."""

    class Confident(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.tensor(10.0))

        def forward(self, x):
            return 20.0 + self.gain * x.flatten(1).mean(1, keepdim=True)

    cache = write_cache(tmp_path, counts={"train": 4, "val": 10, "test": 4})
    data = CachedDataModule(cache, batch_size=4)
    data.setup("fit")
    system = ClassifierSystem(Confident(), lr=1e-3, weight_decay=0.0, max_epochs=1)
    rows = predict_rows(system, data, ("val",))
    write_rows(tmp_path / "p.csv", rows, (*PREDICTION_COLUMNS, "site"))
    written = read_csv(tmp_path / "p.csv")
    scores = [float(r["score"]) for r in written]
    assert len(set(scores)) == len(scores) and max(scores) < 1.0
    images = np.asarray(data.splits["val"].images, dtype=np.float32)
    logits = 20.0 + 10.0 * images.reshape(len(images), -1).mean(1)
    labels = [int(r["label"]) for r in written]
    assert roc_auc_score(labels, scores) == roc_auc_score(labels, logits)


def test_summary_records_provenance_config_and_completion(trained):
    cache, paths, summary = trained
    written = json.loads(paths["summary_json"].read_text())
    assert written["weights"]["source"] == "none" and written["weights"]["arch"] == "resnet18"
    assert written["model"] == {"arch": "resnet18", "spatial_dims": 2, "in_channels": 1, "num_classes": 1}
    assert written["best_epoch"] == summary.best_epoch and written["resumed_from_epoch"] is None
    assert written["config"]["train"]["max_epochs"] == 3 and written["config"]["train"]["precision"] == "32"
    assert written["cache"]["counts"] == COUNTS
    assert json.loads((paths["model_dir"] / "fingerprint.json").read_text())["complete"] is True
    assert "best epoch" in summary.line() and "weights none" in summary.line()


def test_channels_last_changes_the_layout_not_the_result():
    torch.manual_seed(0)
    backbone = ResNet("basic", [1, 1, 1, 1], [4, 8, 16, 32], spatial_dims=3, n_input_channels=1, num_classes=1)
    plain = ClassifierSystem(backbone, lr=1e-3, weight_decay=0.0, max_epochs=1).eval()
    plain.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    x = torch.rand(2, 1, 16, 16, 8, dtype=torch.float16)
    with torch.no_grad():
        expected = plain(plain.on_after_batch_transfer((x, torch.zeros(2), torch.arange(2)), 0)[0])
    fast = ClassifierSystem(backbone, lr=1e-3, weight_decay=0.0, max_epochs=1, channels_last=True).eval()
    fast.trainer = plain.trainer
    batch = fast.on_after_batch_transfer((x, torch.zeros(2), torch.arange(2)), 0)[0]
    assert batch.is_contiguous(memory_format=torch.channels_last_3d)
    weight = backbone.layer1[0].conv1.weight  # 4 input channels: the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(fast(batch), expected, atol=1e-5)


@pytest.mark.parametrize("key", ["channels_last", "compile"])
def test_speed_knobs_must_be_booleans(key):
    with pytest.raises(ConfigError, match=rf"'train.{key}' must be one of \[True, False\]; got 'yes'"):
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
