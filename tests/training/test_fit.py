"""The system the fit trains, the Trainer's settings, and the best checkpoint it reports."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from pipeline.data import CachedDataModule
from pipeline.finetuning import FreezeEarlyLayers
from pipeline.models import build_backbone
from pipeline.training.fit import best_score, build_system, deterministic, fit
from pipeline.augment import BatchAugment
from tests.training.tiny_run import COUNTS, tiny_configs, write_cache

META = {"spatial_dims": 2, "roi": [32, 32], "pixdim": [1.0, 1.0], "counts": COUNTS, "dtype": "float16"}


def _backbone():
    model, _ = tiny_configs()
    return build_backbone(arch=model.arch, spatial_dims=2, in_channels=1, num_classes=1, weights=model.weights,
                          weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)


@pytest.mark.parametrize("augment", [True, False])
def test_the_system_takes_its_settings_from_the_config(augment):
    model, train = tiny_configs(augment=augment, augment_shift_voxels=3, seed=5, lr=2e-3)
    backbone = _backbone()

    system = build_system(backbone, model=model, train=train, cache_meta=META, model_config={"arch": "resnet18"})

    assert system.backbone is backbone.model and system.normalize is None  # random weights: no normalisation
    assert (system.hparams.lr, system.hparams.weight_decay, system.hparams.max_epochs) == (2e-3, 1e-4, 3)
    assert system.hparams.backbone_lr_scale == model.backbone_lr_scale and not system.hparams.channels_last
    if augment:
        assert isinstance(system.augment, BatchAugment)
        assert (system.augment.spatial_dims, system.augment.seed, system.augment.max_shift) == (2, 5, 3)
    else:
        assert system.augment is None
    description = system.model_description
    assert description["network"]["arch"] == "resnet18" and description["model_config"] == {"arch": "resnet18"}
    assert description["preprocess"]["roi"] == [32, 32] and "counts" not in description["preprocess"]


def test_a_cpu_run_is_deterministic():
    assert deterministic(tiny_configs(accelerator="cpu")[1])


def test_the_best_score_comes_from_the_checkpoint_when_the_callback_lost_it(tmp_path):
    """Under ddp_spawn only the path comes back to the main process."""
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val_auc")
    assert math.isnan(best_score(best))
    path = tmp_path / "best.ckpt"
    torch.save({"callbacks": {"ModelCheckpoint{...}": {"best_model_score": torch.tensor(0.625)}}}, path)
    best.best_model_path = str(path)
    assert best_score(best) == 0.625
    best.best_model_score = torch.tensor(0.75)
    assert best_score(best) == 0.75


def test_a_fit_writes_best_and_last_and_freezes_when_asked(tmp_path, capsys):
    cache = write_cache(tmp_path)
    model, train = tiny_configs(max_epochs=1)
    model = dataclasses.replace(model, freeze_until_epoch=1)
    system = build_system(_backbone(), model=model, train=train, cache_meta=META, model_config={})
    data = CachedDataModule(cache, batch_size=train.batch_size, num_workers=0, seed=0, device_cache=False)

    fitted = fit(system, data, train=train, freeze_until_epoch=model.freeze_until_epoch, model_dir=tmp_path / "models",
                 live_dir=tmp_path / "dvclive", ckpt_path=None, extra_callbacks=[])

    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert fitted.best_path == str(tmp_path / "models" / "best.ckpt") and fitted.best_epoch == 0
    assert fitted.best_val_auc == pytest.approx(float(fitted.trainer.callback_metrics["val_auc"]), abs=1e-6)
    assert fitted.resumed_from_epoch is None
    assert any(isinstance(c, FreezeEarlyLayers) for c in fitted.trainer.callbacks)
    assert not system.backbone.conv1.weight.requires_grad  # still frozen: it thaws at epoch 1
    assert "train: precision 32 (set by train.precision)" in capsys.readouterr().out
