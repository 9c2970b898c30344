"""Configs of the stages that fit and judge the model: model, train, evaluate.

Each field is read from ``params.yaml`` (no field has a default: see
:mod:`pipeline.config.checks`) and checked in ``__post_init__``; the value rules shared
with the library come from :mod:`pipeline.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config.checks import check_bool, check_names, check_range, fields_of, section
from pipeline.config.cohort import BaseConfig
from pipeline.errors import ConfigError
from pipeline.rules import (
    ACCELERATORS,
    AGGREGATES,
    ARCHS,
    CALIBRATION_METHODS,
    CI_METHODS,
    MAX_GALLERY_CASES,
    PRECISIONS,
    SALIENCY_LAYERS,
    STRATEGIES,
    THRESHOLD_RULES,
    check_choice,
    check_device_cache,
    check_sha256_prefix,
    check_stem_kernel_depth,
    check_stem_stride,
    check_weights,
)

_SEED = frozenset({"seed"})


@dataclass(frozen=True)
class ModelConfig:
    """The backbone; see :func:`pipeline.models.build_backbone`.

    Attributes:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        weights: ``none``, ``imagenet``, ``medicalnet``, ``auto`` or a checkpoint path.
        weights_sha256: expected SHA-256 (8 to 64 leading hex digits) of the checkpoint;
            overrides the published checksum of a named source (null: none).
        freeze_until_epoch: epochs during which the stem and ``layer1`` stay frozen
            (0 trains everything from the start).
        backbone_lr_scale: learning rate of the pretrained layers relative to the head.
        stem_kernel_depth: 3D only: stem kernel size along depth (odd; MedicalNet needs 7).
        stem_stride_depth: 3D only: stem stride along depth; 1 keeps more depth on thin
            volumes, 2 matches the in-plane stride.
        stem_stride: in-plane stem stride, 2D and 3D: 2 as torchvision's ImageNet layout;
            1 keeps twice the resolution per axis (four times the compute in 2D, in 3D
            with ``stem_stride_depth: 1`` eight), for inputs of a few dozen voxels per
            axis that stride 2 and the max-pool would shrink to a few cells.
    """

    arch: str
    weights: str
    weights_sha256: str | None
    freeze_until_epoch: int
    backbone_lr_scale: float
    stem_kernel_depth: int
    stem_stride_depth: int
    stem_stride: int

    def __post_init__(self) -> None:
        check_choice("model.arch", self.arch, ARCHS)
        check_weights("model.weights", self.weights)
        check_sha256_prefix("model.weights_sha256", self.weights_sha256)
        check_range("model.freeze_until_epoch", self.freeze_until_epoch, low=0, integer=True)
        check_range("model.backbone_lr_scale", self.backbone_lr_scale, low=0.0, low_open=True)
        check_stem_kernel_depth("model.stem_kernel_depth", self.stem_kernel_depth)
        check_range("model.stem_stride_depth", self.stem_stride_depth, low=1, integer=True)
        check_stem_stride("model.stem_stride", self.stem_stride)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ModelConfig":
        return cls(**fields_of(section(params, "model"), cls, "model"))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the Lightning Trainer.

    Attributes:
        seed: seeds Python, NumPy, torch and the on-device augmentation.
        max_epochs: epochs to train; the best epoch by validation AUC is kept.
        batch_size: samples per step.
        lr: AdamW learning rate of the head.
        weight_decay: AdamW weight decay.
        precision: Lightning precision, ``32``, ``bf16-mixed`` or ``16-mixed``; ``auto``
            picks bf16-mixed where the GPU or CPU computes bf16 natively and fp32 on a CPU
            without it (AVX2 only), where bf16 is emulated and many times slower.
        accelerator: ``cpu``, ``gpu`` or ``auto``.
        devices: devices per node (``auto`` or an integer).
        strategy: Lightning strategy, ``auto``, ``ddp`` or ``ddp_spawn``.
        num_nodes: nodes for multi-node DDP.
        num_workers: DataLoader processes (0 reads the memory map in the main process).
        device_cache: hold the train and val splits on the training device and gather
            each batch there, so the host does no per-step reading. ``auto``: on a
            CUDA GPU when both fit in a quarter of its free memory; ``true``: always (on
            a CPU that is RAM, growing with the cohort); ``false``: stream from the cache.
        augment: random flips, intensity shift and noise on each training batch.
        augment_shift_voxels: largest random translation per axis, voxels (0: none).
        resume: continue from ``last.ckpt`` when a previous run was interrupted.
        channels_last: store weights and batches channels-last (NDHWC). Faster on recent
            NVIDIA GPUs with mixed precision (1.27x on an H200, issue 6); slower on CPU.
            See benchmarks/README.md.
        compile: wrap the backbone in ``torch.compile`` (a minute of compilation at the
            start; pays off on a GPU over long runs, not on CPU).
    """

    seed: int
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    precision: str
    accelerator: str
    devices: int | str
    strategy: str
    num_nodes: int
    num_workers: int
    device_cache: bool | str
    augment: bool
    augment_shift_voxels: int
    resume: bool
    channels_last: bool
    compile: bool

    def __post_init__(self) -> None:
        check_range("base.seed", self.seed, low=0, integer=True)
        check_range("train.max_epochs", self.max_epochs, low=1, integer=True)
        check_range("train.batch_size", self.batch_size, low=1, integer=True)
        check_range("train.lr", self.lr, low=0.0, low_open=True)
        check_range("train.weight_decay", self.weight_decay, low=0.0)
        object.__setattr__(self, "precision", str(self.precision))
        check_choice("train.precision", self.precision, PRECISIONS)
        check_choice("train.accelerator", self.accelerator, ACCELERATORS)
        if self.devices != "auto":
            check_range("train.devices", self.devices, low=1, integer=True)
        check_choice("train.strategy", self.strategy, STRATEGIES)
        check_range("train.num_nodes", self.num_nodes, low=1, integer=True)
        check_range("train.num_workers", self.num_workers, low=0, integer=True)
        check_device_cache("train.device_cache", self.device_cache)
        check_range("train.augment_shift_voxels", self.augment_shift_voxels, low=0, integer=True)
        for name in ("augment", "resume", "channels_last", "compile"):
            check_bool(f"train.{name}", getattr(self, name))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "TrainConfig":
        seed = BaseConfig.from_params(params).seed
        return cls(seed=seed, **fields_of(section(params, "train"), cls, "train", skip=_SEED))


@dataclass(frozen=True)
class EvaluateConfig:
    """How predictions become the report.

    Attributes:
        aggregate: per-patient score from several series, ``max`` or ``mean``.
        threshold: ``youden`` or ``sensitivity`` (pick the highest threshold reaching
            ``target_sensitivity`` on validation).
        target_sensitivity: used when ``threshold`` is ``sensitivity``.
        ci_method: ``delong`` or ``bootstrap`` for the AUC interval.
        n_boot: bootstrap resamples.
        calibration_bins: bins of the reliability curve and the ECE.
        subgroups: columns of predictions.csv reported per level (AUC with CI); empty
            means every extra column with 2 to 20 levels.
        calibration: ``none``, ``platt`` or ``isotonic``: the map from scores to
            probabilities fitted on validation and applied to test; thresholded metrics
            use the calibrated score.
        reader_columns: columns of predictions.csv holding a reader's rating (any
            numbers, higher meaning more suspicious), each compared with the model on
            the same patients (paired DeLong test).
        seed: bootstrap seed.
    """

    seed: int
    aggregate: str
    threshold: str
    target_sensitivity: float
    ci_method: str
    n_boot: int
    calibration_bins: int
    subgroups: tuple[str, ...]
    calibration: str
    reader_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        check_choice("evaluate.aggregate", self.aggregate, AGGREGATES)
        check_choice("evaluate.threshold", self.threshold, THRESHOLD_RULES)
        check_range("evaluate.target_sensitivity", self.target_sensitivity, low=0.0, high=1.0, low_open=True)
        check_choice("evaluate.ci_method", self.ci_method, CI_METHODS)
        check_range("evaluate.n_boot", self.n_boot, low=100, integer=True)
        check_range("evaluate.calibration_bins", self.calibration_bins, low=2, integer=True)
        if not isinstance(self.subgroups, (list, tuple)) or not all(isinstance(s, str) for s in self.subgroups):
            raise ConfigError(f"'evaluate.subgroups' must be a list of column names; got {self.subgroups!r}.")
        object.__setattr__(self, "subgroups", tuple(self.subgroups))
        check_choice("evaluate.calibration", self.calibration, CALIBRATION_METHODS)
        object.__setattr__(self, "reader_columns", check_names("evaluate.reader_columns", self.reader_columns))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "EvaluateConfig":
        seed = BaseConfig.from_params(params).seed
        return cls(seed=seed, **fields_of(section(params, "evaluate"), cls, "evaluate", skip=_SEED))


@dataclass(frozen=True)
class ExplainConfig:
    """Which test cases the report's Grad-CAM gallery shows, and from which layer.

    Attributes:
        cases_per_group: cases per group (true positives, false positives, false
            negatives at the validation-chosen operating point), 1 to
            :data:`pipeline.rules.MAX_GALLERY_CASES`.
        layer: the ResNet stage of the maps (``layer1``..``layer4``, or ``auto``: the
            deepest with 8 cells along each in-plane axis of the input).
    """

    cases_per_group: int
    layer: str

    def __post_init__(self) -> None:
        check_range("explain.cases_per_group", self.cases_per_group, low=1, high=MAX_GALLERY_CASES, integer=True)
        check_choice("explain.layer", self.layer, SALIENCY_LAYERS)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ExplainConfig":
        return cls(**fields_of(section(params, "explain"), cls, "explain"))
