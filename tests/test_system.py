from __future__ import annotations

import inspect

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from monai.networks.nets import ResNet

from pipeline.cache import CacheError
from pipeline.data import CachedDataModule
from pipeline.system import ClassifierSystem, TrainingDivergedError, validation_auc
from pipeline.augment import BatchAugment


def small_resnet() -> torch.nn.Module:
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 16, 32], spatial_dims=3, n_input_channels=1, num_classes=1)


def test_system_learns_to_separate_the_classes(tiny_cache, tmp_path):
    pl.seed_everything(0)
    system = ClassifierSystem(small_resnet(), lr=3e-3, weight_decay=0.0, max_epochs=4,
                              augment=BatchAugment(3, seed=0, noise_std=0.0, max_shift=0),
                              backbone_lr_scale=1.0, normalize=None, channels_last=False)
    data = CachedDataModule(tiny_cache, batch_size=8, seed=0, num_workers=0, device_cache=False)
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                         default_root_dir=tmp_path)
    trainer.fit(system, datamodule=data)
    assert trainer.callback_metrics["val_auc"] > 0.9
    system.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(data.splits["test"].images[:4], dtype=np.float32))
        probs = system(x)
    assert probs.shape == (4,) and bool(((probs >= 0) & (probs <= 1)).all())


def test_head_and_backbone_get_their_own_learning_rates():
    system = ClassifierSystem(small_resnet(), lr=1e-3, weight_decay=0.0, max_epochs=1, backbone_lr_scale=0.1,
                              normalize=None, augment=None, channels_last=False)
    optimizer = system.configure_optimizers()["optimizer"]
    body, head = optimizer.param_groups
    assert head["lr"] == pytest.approx(1e-3) and body["lr"] == pytest.approx(1e-4)
    assert sum(p.numel() for p in head["params"]) == 32 + 1  # fc: 32 features -> 1 logit


def test_normalisation_is_applied_before_the_backbone():
    class Probe(torch.nn.Module):
        def forward(self, x):
            self.seen = x
            return x.flatten(1).mean(1, keepdim=True)

    probe = Probe()
    system = ClassifierSystem(probe, lr=1e-3, weight_decay=0.0, max_epochs=1,
                              normalize=lambda x: (x - 0.5) / 0.25, backbone_lr_scale=1.0, augment=None,
                              channels_last=False)
    system(torch.full((2, 1, 4, 4, 4), 0.75))
    assert torch.allclose(probe.seen, torch.ones(2, 1, 4, 4, 4))


def test_probabilities_of_confident_logits_stay_distinct():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[18.0], [25.0], [30.0], [-30.0]])

    system = ClassifierSystem(Fixed(), lr=1e-3, weight_decay=0.0, max_epochs=1, backbone_lr_scale=1.0,
                              normalize=None, augment=None, channels_last=False)
    probs = system(torch.zeros(4, 1, 2, 2, 2))
    assert probs.dtype == torch.float64
    assert probs[3] < probs[0] < probs[1] < probs[2] < 1.0  # float32 would give 1.0 three times


def test_validation_auc_deduplicates_ddp_padding():
    scores = np.array([0.1, 0.9, 0.85, 0.8, 0.85])
    labels = np.array([0, 1, 0, 1, 0])
    index = np.array([0, 1, 2, 3, 2])  # sample 2 repeated by the sampler's padding
    assert validation_auc(scores, labels, index) == 0.75  # 2/3 if the repeat were counted
    assert validation_auc(np.array([0.3, 0.4]), np.array([1, 1]), np.array([0, 1])) == 0.5


def test_channels_last_changes_the_layout_not_the_result():
    torch.manual_seed(0)
    backbone = ResNet("basic", [1, 1, 1, 1], [4, 8, 16, 32], spatial_dims=3, n_input_channels=1, num_classes=1)
    plain = ClassifierSystem(backbone, lr=1e-3, weight_decay=0.0, max_epochs=1, backbone_lr_scale=1.0, normalize=None,
                             augment=None, channels_last=False).eval()
    plain.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    x = torch.rand(2, 1, 16, 16, 8, dtype=torch.float16)
    with torch.no_grad():
        expected = plain(plain.on_after_batch_transfer((x, torch.zeros(2), torch.arange(2)), 0)[0])
    fast = ClassifierSystem(backbone, lr=1e-3, weight_decay=0.0, max_epochs=1, backbone_lr_scale=1.0, normalize=None,
                            augment=None, channels_last=True).eval()
    fast.trainer = plain.trainer
    batch = fast.on_after_batch_transfer((x, torch.zeros(2), torch.arange(2)), 0)[0]
    assert batch.is_contiguous(memory_format=torch.channels_last_3d)
    weight = backbone.layer1[0].conv1.weight  # 4 input channels: the two layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(fast(batch), expected, atol=1e-5)


def test_the_settings_have_no_second_default_here():
    """backbone_lr_scale and channels_last come from params.yaml; normalize and augment from the run."""
    parameters = inspect.signature(ClassifierSystem).parameters
    for name in ("lr", "weight_decay", "max_epochs", "backbone_lr_scale", "normalize", "augment", "channels_last"):
        assert parameters[name].default is inspect.Parameter.empty, name


def test_validation_auc_refuses_nan_scores_with_the_fix_instead_of_a_library_traceback():
    scores = np.array([0.1, np.nan, 0.3, 0.9])
    with pytest.raises(TrainingDivergedError, match=r"1 of 4 are NaN or infinite.*train.precision: '32'"):
        validation_auc(scores, np.array([0, 1, 0, 1]), np.arange(4))
