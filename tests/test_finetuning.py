"""Early-layer freezing with a real Lightning Trainer, and discriminative learning rates."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from pipeline.errors import ConfigError, PipelineInputError
from pipeline.finetuning import FreezeEarlyLayers, discriminative_param_groups
from pipeline.models import build_backbone


class _Classifier(pl.LightningModule):
    """The smallest system around an injected backbone: cross-entropy and SGD."""

    def __init__(self, backbone: torch.nn.Module, filter_frozen: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.filter_frozen = filter_frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.backbone(x), y)

    def configure_optimizers(self):
        groups = discriminative_param_groups(self.backbone, lr=0.1, backbone_lr_scale=0.1)
        if self.filter_frozen:
            groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
        return torch.optim.SGD(groups, lr=0.1)


class _Snapshots(pl.Callback):
    """Copies of chosen tensors at the end of every training epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, torch.Tensor]] = []
        self.bn_training_seen: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.bn_training_seen.append(pl_module.backbone.bn1.training)

    def on_train_epoch_end(self, trainer, pl_module):
        model = pl_module.backbone
        self.epochs.append({
            "conv1": model.conv1.weight.detach().clone(),
            "bn1_mean": model.bn1.running_mean.clone(),
            "layer1": model.layer1[0].conv1.weight.detach().clone(),
            "layer2": model.layer2[0].conv1.weight.detach().clone(),
        })


def _fit(unfreeze_at_epoch: int, filter_frozen: bool):
    torch.manual_seed(0)
    bb = build_backbone(arch="resnet18", spatial_dims=2, in_channels=1, num_classes=2, weights="none",
                        weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2)
    module = _Classifier(bb.model, filter_frozen)
    start = {"conv1": bb.model.conv1.weight.detach().clone(), "bn1_mean": bb.model.bn1.running_mean.clone()}
    data = TensorDataset(torch.randn(8, 1, 32, 32), torch.tensor([0, 1] * 4))
    snapshots = _Snapshots()
    trainer = pl.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[FreezeEarlyLayers(unfreeze_at_epoch), snapshots],
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return start, snapshots, trainer.optimizers[0]


@pytest.mark.parametrize("filter_frozen", [False, True])
def test_stem_and_layer1_stay_frozen_until_the_epoch_then_train(filter_frozen):
    start, snaps, optimizer = _fit(unfreeze_at_epoch=2, filter_frozen=filter_frozen)

    for epoch in (0, 1):
        assert torch.equal(snaps.epochs[epoch]["conv1"], start["conv1"])
        assert torch.equal(snaps.epochs[epoch]["bn1_mean"], start["bn1_mean"])
        assert torch.equal(snaps.epochs[epoch]["layer1"], snaps.epochs[0]["layer1"])
    assert not torch.equal(snaps.epochs[1]["layer2"], snaps.epochs[0]["layer2"])
    assert not torch.equal(snaps.epochs[2]["conv1"], start["conv1"])
    assert not torch.equal(snaps.epochs[2]["layer1"], snaps.epochs[1]["layer1"])
    assert not torch.equal(snaps.epochs[2]["bn1_mean"], start["bn1_mean"])
    assert snaps.bn_training_seen == [False] * 4 + [True] * 2
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["backbone"] == pytest.approx(0.01) and lrs["head"] == pytest.approx(0.1)
    if filter_frozen:
        assert lrs["backbone_early"] == pytest.approx(0.01)
    else:
        assert "backbone_early" not in lrs


def test_zero_unfreeze_epoch_trains_everything_from_the_start():
    start, snaps, _ = _fit(unfreeze_at_epoch=0, filter_frozen=True)
    assert not torch.equal(snaps.epochs[0]["conv1"], start["conv1"])


def test_param_groups_split_backbone_and_head_and_cover_every_parameter():
    model = build_backbone(arch="resnet18", spatial_dims=2, in_channels=1, num_classes=3, weights="none",
                           weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2).model

    groups = discriminative_param_groups(model, lr=1e-3, backbone_lr_scale=0.1)

    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert groups[0]["lr"] == pytest.approx(1e-4) and groups[1]["lr"] == pytest.approx(1e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(model.fc.weight), id(model.fc.bias)}
    with pytest.raises(ConfigError, match="'backbone_lr_scale' must be > 0; got 0"):
        discriminative_param_groups(model, lr=1e-3, backbone_lr_scale=0)


def test_bad_callback_settings_are_named():
    with pytest.raises(ConfigError, match="'unfreeze_at_epoch' must be an integer >= 0; got -1"):
        FreezeEarlyLayers(-1)
    module = _Classifier(torch.nn.Linear(2, 2), filter_frozen=False)
    unknown = r"'layers' must name children of Linear; got unknown \['conv1', 'bn1', 'layer1'\]"
    with pytest.raises(ValueError, match=unknown) as caught:
        FreezeEarlyLayers(1).freeze_before_training(module)
    assert not isinstance(caught.value, PipelineInputError)  # no setting chooses the layers: a bug, not an input
