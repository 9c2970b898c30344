"""Fine-tuning schedule for a pretrained backbone: early-layer freezing and per-part learning rates.

Early layers hold generic edge and texture filters that transfer across domains; with a
few hundred scans, training them from the first step mostly lets a randomly initialised
head's large gradients wreck them. So the stem and ``layer1`` can stay frozen for the
first epochs (Yosinski et al., 2014, "How transferable are features in deep neural
networks?"), and the pretrained part can learn more slowly than the new head
(discriminative learning rates, Howard & Ruder, 2018, ULMFiT).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from pipeline.errors import ConfigError
from pipeline.models import backbone_parameters, head_parameters

EARLY_LAYERS = ("conv1", "bn1", "layer1")


def discriminative_param_groups(model: nn.Module, *, lr: float, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the pretrained backbone at ``lr * backbone_lr_scale``, the head at ``lr``.

    Every parameter is listed, frozen or not: a frozen parameter has no gradient, so
    ``torch.optim`` skips it (no update, no weight decay, no state), and unfreezing it
    later needs no new group, which keeps learning-rate schedulers covering it.

    Args:
        model: a model from :func:`pipeline.models.build_backbone` (head ``model.fc``).
        lr: learning rate of the head.
        backbone_lr_scale: factor (> 0) applied to ``lr`` for the backbone.

    Returns:
        ``[{"name": "backbone", ...}, {"name": "head", ...}]`` for ``torch.optim``.

    Raises:
        ConfigError: ``lr`` or ``backbone_lr_scale`` not > 0.
    """
    if not lr > 0:
        raise ConfigError(f"'lr' must be > 0; got {lr!r}.")
    if not backbone_lr_scale > 0:
        raise ConfigError(
            f"'backbone_lr_scale' must be > 0; got {backbone_lr_scale!r}. Freeze layers with "
            "FreezeEarlyLayers instead of a zero learning rate."
        )
    return [
        {"name": "backbone", "params": backbone_parameters(model), "lr": lr * backbone_lr_scale},
        {"name": "head", "params": head_parameters(model), "lr": lr},
    ]


class FreezeEarlyLayers(BaseFinetuning):
    """Freeze the stem and early layers until ``unfreeze_at_epoch``, then train them.

    While frozen, their BatchNorm layers also run in eval mode, so they normalise with
    the pretrained running statistics rather than those of small, noisy batches, and
    leave those statistics unchanged. At ``unfreeze_at_epoch`` (counted from 0) they
    become trainable; parameters the optimizer does not hold yet (when
    ``configure_optimizers`` filtered on ``requires_grad``) are added in a group
    ``backbone_early`` at the learning rate of the group named ``backbone``, or of the
    first group. Resuming past that epoch unfreezes at once.

    Args:
        unfreeze_at_epoch: first epoch that trains the early layers; 0 never freezes.
        backbone_attr: attribute of the LightningModule holding the ResNet.
        layers: names of the ResNet's children to freeze.
    """

    def __init__(
        self,
        unfreeze_at_epoch: int,
        *,
        backbone_attr: str = "backbone",
        layers: Sequence[str] = EARLY_LAYERS,
    ) -> None:
        super().__init__()
        if isinstance(unfreeze_at_epoch, bool) or not isinstance(unfreeze_at_epoch, int) or unfreeze_at_epoch < 0:
            raise ConfigError(f"'unfreeze_at_epoch' must be an integer >= 0; got {unfreeze_at_epoch!r}.")
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_attr = backbone_attr
        self.layers = tuple(layers)
        self._frozen = False

    def _modules(self, pl_module: pl.LightningModule) -> list[nn.Module]:
        backbone = getattr(pl_module, self.backbone_attr, None)
        if not isinstance(backbone, nn.Module):
            raise TypeError(
                f"'backbone_attr' must name the LightningModule attribute holding the ResNet; got "
                f"{self.backbone_attr!r}, which is {type(backbone).__name__}. Pass the right name."
            )
        missing = [name for name in self.layers if not isinstance(getattr(backbone, name, None), nn.Module)]
        if missing:  # no setting chooses the layers: this is code calling it wrongly, a bug
            raise ValueError(
                f"'layers' must name children of {type(backbone).__name__}; got unknown {missing}. "
                f"Known: {[name for name, _ in backbone.named_children()]}."
            )
        return [getattr(backbone, name) for name in self.layers]

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        if self.unfreeze_at_epoch == 0:
            return
        self.freeze(self._modules(pl_module), train_bn=False)
        self._frozen = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._frozen:
            for module in self._modules(pl_module):
                for sub in module.modules():
                    if isinstance(sub, _BatchNorm):
                        sub.eval()

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if not self._frozen or epoch < self.unfreeze_at_epoch:
            return
        modules = self._modules(pl_module)
        self.make_trainable(modules)
        for module in modules:
            module.train()
        self._frozen = False
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        new = [p for module in modules for p in module.parameters() if id(p) not in held]
        if new:
            reference = next((g for g in optimizer.param_groups if g.get("name") == "backbone"), optimizer.param_groups[0])
            settings = {k: v for k, v in reference.items() if k not in ("params", "name", "initial_lr")}
            optimizer.add_param_group({**settings, "params": new, "name": "backbone_early"})
