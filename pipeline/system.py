"""The LightningModule: a binary classifier around an injected backbone.

The backbone (a MONAI ResNet from :func:`pipeline.models.build_backbone`) is passed in,
not built here, so the same system trains any backbone and tests can inject a small one.
No file I/O happens here. Methods follow Lightning's order: init, forward, training,
validation, predict, configure_optimizers, then the other hooks.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from pipeline.finetuning import discriminative_param_groups
from pipeline.modelfile import KEY as MODEL_FILE_KEY
from pipeline.modelfile import seal
from pipeline.augment import BatchAugment
from pipeline.errors import PipelineInputError


class TrainingDivergedError(PipelineInputError):
    """Validation scores came out NaN or infinite: the run cannot rank cases, and the fix is a setting."""


class ClassifierSystem(pl.LightningModule):
    """Fine-tunes ``backbone`` for one binary label with BCE on a single logit.

    Args:
        backbone: ResNet mapping (B, C, *spatial) to logits (B, 1); its head is ``fc``.
        lr: AdamW learning rate of the head.
        weight_decay: AdamW weight decay.
        max_epochs: length of the cosine learning-rate schedule.
        backbone_lr_scale: backbone learning rate relative to ``lr`` (discriminative
            fine-tuning: pretrained layers move slower than the fresh head).
        normalize: the input normalisation the weights were trained with
            (``Backbone.normalization.apply``), or None for none.
        augment: batch augmentation applied on the device during training, or None.
            Each DDP rank offsets its seed by its global rank, so ranks draw different
            flips and noise while a run stays repeatable.
        channels_last: keep weights and batches channels-last (NHWC / NDHWC), the
            layout cuDNN's fastest mixed-precision convolutions use.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        lr: float,
        weight_decay: float,
        max_epochs: int,
        backbone_lr_scale: float,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None,
        augment: BatchAugment | None,
        channels_last: bool,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "normalize", "augment"])
        self.backbone = backbone
        self.normalize = normalize
        self.augment = augment
        self._augment_seed = augment.seed if augment is not None else None
        self._memory_format = _channels_last_format(backbone) if channels_last else None
        if self._memory_format is not None:
            backbone.to(memory_format=self._memory_format)
        self.loss = nn.BCEWithLogitsLoss()
        self._val_scores: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self._val_index: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (B,) in float64 for images (B, C, *spatial) in [0, 1] intensity units.

        The sigmoid runs in float64: in float32 it is exactly 1.0 for every logit above
        about 17, so a confident model's positives and its worst negatives would tie and
        the ROC would lose its ranking (measured: val AUC 1.000 by logits, 0.833 by
        float32 probabilities written to 6 decimals).
        """
        logits = self._logits(x)
        # Apple's MPS has no float64; a (B,) vector costs nothing to move.
        return torch.sigmoid((logits.cpu() if logits.device.type == "mps" else logits).double())

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x if self.normalize is None else self.normalize(x)).squeeze(-1)

    def on_fit_start(self) -> None:
        if self.augment is not None:
            self.augment.seed = self._augment_seed + self.global_rank

    def on_train_epoch_start(self) -> None:
        if self.augment is not None:
            self.augment.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:  # noqa: ANN001
        x, y, _ = batch
        loss = self.loss(self._logits(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:  # noqa: ANN001
        x, y, idx = batch
        logits = self._logits(x)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        # Rank by logits: a sigmoid would saturate and tie confident samples.
        self._val_scores.append(logits.float().detach())
        self._val_labels.append(y.detach())
        self._val_index.append(idx.detach())

    def on_validation_epoch_end(self) -> None:
        scores, labels, index = (torch.cat(v) for v in (self._val_scores, self._val_labels, self._val_index))
        self._val_scores.clear(), self._val_labels.clear(), self._val_index.clear()
        # Under DDP each rank saw a shard (padded with repeats); gather and de-duplicate
        # by sample index so the AUC is over the whole validation set, once.
        if self.trainer.world_size > 1:
            scores, labels, index = (self.all_gather(t).reshape(-1) for t in (scores, labels, index))
        auc = validation_auc(scores.cpu().numpy(), labels.cpu().numpy(), index.cpu().numpy())
        self.log("val_auc", auc, prog_bar=True, sync_dist=False, rank_zero_only=False)

    def predict_step(self, batch, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        """Probabilities (B,) in float64 (:meth:`forward`) and the samples' cache indices (B,)."""
        x, _, idx = batch
        return self(x), idx

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's return type is a union
        groups = discriminative_param_groups(
            self.backbone, lr=self.hparams.lr, backbone_lr_scale=self.hparams.backbone_lr_scale
        )
        optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.hparams.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_after_batch_transfer(self, batch, dataloader_idx: int):  # noqa: ANN001 - Lightning hook
        x, y, idx = batch
        x = x.float()  # the cache is float16; cast on the device
        if self._memory_format is not None:
            x = x.contiguous(memory_format=self._memory_format)
        if self.trainer.training and self.augment is not None:
            x = self.augment(x)
        return x, y, idx

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Seal the model description (set by training as ``model_description``) into the file.

        With it the checkpoint alone rebuilds the model (:func:`pipeline.load_classifier`);
        the digest covers the weights as saved, so any later change to either is detected.
        """
        description = getattr(self, "model_description", None)
        if description is not None:
            checkpoint[MODEL_FILE_KEY] = seal(description, checkpoint["state_dict"])


def _channels_last_format(backbone: nn.Module) -> torch.memory_format:
    """``channels_last_3d`` for a volume model (5-D conv weights), else ``channels_last``."""
    return torch.channels_last_3d if any(p.ndim == 5 for p in backbone.parameters()) else torch.channels_last


def validation_auc(scores: np.ndarray, labels: np.ndarray, index: np.ndarray) -> float:
    """ROC AUC over unique samples; 0.5 when one class is absent (cannot rank).

    The DataModule refuses a one-class validation split up front, so 0.5 can only
    appear for a partial validation pass (``limit_val_batches``, a sanity check), never
    in a reported result: evaluate recomputes every metric from predictions.csv.
    """
    _, first = np.unique(index, return_index=True)
    scores, labels = scores[first], labels[first]
    if not np.isfinite(scores).all():
        raise TrainingDivergedError(
            f"validation scores must be finite numbers; {int((~np.isfinite(scores)).sum())} of {len(scores)} are NaN or "
            "infinite, so training diverged (or the hardware computed garbage). Fix: set train.precision: '32' "
            "if it is a bf16 or fp16 setting, else lower train.lr, then run dvc repro train again."
        )
    if labels.min() == labels.max():
        return 0.5
    return float(roc_auc_score(labels, scores))
