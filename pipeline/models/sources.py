"""Pretrained weight sources as data: one :class:`WeightSource` row per (source, arch).

Each named source (``imagenet``, ``medicalnet``) is one row per architecture in
:data:`WEIGHT_SOURCES`: file name, checksum, URL, licence, the layout the weights need
(stem, shortcut type) and the input normalisation they were trained with. The rest of
:mod:`pipeline.models` reads those rows; no backbone or dataset literal lives elsewhere.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


@functools.lru_cache(maxsize=32)
def _channel_constants(values: tuple[float, ...], dtype: torch.dtype, device: torch.device, ndim: int) -> torch.Tensor:
    """Per-channel constants shaped ``(1, C, 1, ...)``, built once per dtype and device.

    ``apply`` runs on every training step; building the tensor there copies it from the
    host each time, and on a GPU that copy waits for all queued work (measured on an H100:
    the host blocked 426 ms per step behind the queue, 0.09 ms with the cached tensor).
    """
    return torch.tensor(values, dtype=dtype, device=device).view((1, len(values)) + (1,) * (ndim - 2))


@dataclass(frozen=True)
class Normalization:
    """The input normalisation a set of weights was trained with.

    Attributes:
        kind: ``mean_std``: ``(x - mean[c]) / std[c]`` per channel, on inputs already
            scaled to [0, 1] (torchvision's ImageNet convention); ``volume_zscore``: each
            volume and channel z-scored over its voxels above 0 (MedicalNet's convention,
            so ``mean`` and ``std`` are empty).
        mean: one value per input channel (``mean_std`` only).
        std: one value per input channel (``mean_std`` only).
    """

    kind: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        # Rows and sealed model files build these, never a user: a bad one is a bug.
        if self.kind not in ("mean_std", "volume_zscore"):
            raise ValueError(f"'kind' must be 'mean_std' or 'volume_zscore'; got {self.kind!r}.")
        if self.kind == "mean_std" and (not self.mean or len(self.mean) != len(self.std)):
            raise ValueError(
                f"'mean' and 'std' must have one value per channel; got {self.mean!r} and {self.std!r}."
            )

    def adapted(self, in_channels: int) -> Normalization:
        """The constants for ``in_channels`` inputs, matching :func:`pipeline.models.adapt.adapt_input_channels`.

        One channel takes the mean of the per-channel constants (the stem kernel is summed
        over its input channels, so a grey image stands for equal R, G and B); other counts
        repeat the constants cyclically, as the kernel is repeated.
        """
        if self.kind != "mean_std" or in_channels == len(self.mean):
            return self
        if in_channels == 1:
            return Normalization(
                self.kind, (sum(self.mean) / len(self.mean),), (sum(self.std) / len(self.std),)
            )
        pick = [i % len(self.mean) for i in range(in_channels)]
        return Normalization(self.kind, tuple(self.mean[i] for i in pick), tuple(self.std[i] for i in pick))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a batch ``(B, C, *spatial)``; returns a new tensor of the same shape."""
        if self.kind == "mean_std":
            mean = _channel_constants(self.mean, x.dtype, x.device, x.ndim)
            std = _channel_constants(self.std, x.dtype, x.device, x.ndim)
            return (x - mean) / std
        flat = x.flatten(2)
        inside = flat > 0
        count = inside.sum(-1, keepdim=True).clamp_min(1)
        mean = (flat * inside).sum(-1, keepdim=True) / count
        var = (((flat - mean) * inside) ** 2).sum(-1, keepdim=True) / count
        return ((flat - mean) / var.sqrt().clamp_min(1e-6)).view_as(x)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class WeightSource:
    """One row of the weight table: a published checkpoint and what it needs.

    Attributes:
        source: ``imagenet`` or ``medicalnet``.
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        file_name: name of the file, the one torch hub and the publisher use.
        url: where the publisher serves it.
        sha256: full SHA-256 when published, else ``None``.
        sha256_prefix: hash prefix embedded in the file name (torch hub's convention;
            ``torch.hub`` checks the same prefix), or ``None``.
        licence: licence of the weights and the terms of the data they were trained on.
        spatial_dims: 2 or 3, the dimension the weights were trained in.
        in_channels: input channels of the published stem.
        stem_kernel_depth: depth of the stem kernel for 3D weights (``None`` for 2D).
        shortcut_type: MONAI ``shortcut_type`` the keys need (``A``: parameter-free
            zero-padded shortcut; ``B``: 1x1 conv + BN).
        bias_downsample: whether the shortcut conv carries a bias.
        state_dict_key: key under which the file wraps its state dict, if any.
        key_prefix: prefix on every key (``module.`` from ``DataParallel``), stripped.
        head_prefix: keys of the published head, dropped unless the new head has the
            same shape.
        normalization: input normalisation the weights were trained with.
        notes: what differs from this pipeline's layout, for the record.
    """

    source: str
    arch: str
    file_name: str
    url: str
    sha256: str | None
    sha256_prefix: str | None
    licence: str
    spatial_dims: int
    in_channels: int
    stem_kernel_depth: int | None
    shortcut_type: str
    bias_downsample: bool
    state_dict_key: str | None
    key_prefix: str
    head_prefix: str
    normalization: Normalization
    notes: str = ""

    @property
    def expected_hash(self) -> str | None:
        """The hex digest (full or prefix) a file must start with, or ``None``."""
        return self.sha256 or self.sha256_prefix


_TORCHVISION_LICENCE = (
    "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access allow "
    "non-commercial research and education only"
)
_MEDICALNET_LICENCE = "MIT (Tencent/MedicalNet); trained on 23 public medical segmentation datasets"
_MEDICALNET_NOTES = (
    "MedicalNet trained a segmentation network with a 7x7x7 stride-2 stem and dilated, "
    "unstrided layer3/layer4; here the same weights run in MONAI's strided ResNet (as "
    "MONAI's own loader does). Its kernels follow the voxel order of nibabel arrays, as "
    "MONAI's (H, W, D) does, so they load without permutation."
)


def _imagenet(arch: str, file_name: str, shortcut_type: str = "B") -> WeightSource:
    return WeightSource(
        source="imagenet",
        arch=arch,
        file_name=file_name,
        url=f"https://download.pytorch.org/models/{file_name}",
        sha256=None,
        sha256_prefix=_HASH_IN_NAME.search(file_name).group(1),
        licence=_TORCHVISION_LICENCE,
        spatial_dims=2,
        in_channels=3,
        stem_kernel_depth=None,
        shortcut_type=shortcut_type,
        bias_downsample=False,
        state_dict_key=None,
        key_prefix="",
        head_prefix="fc.",
        normalization=Normalization("mean_std", IMAGENET_MEAN, IMAGENET_STD),
        notes="torchvision IMAGENET1K_V1: stem 7x7 stride 2, max-pool, 1x1-conv shortcut without bias.",
    )


def _medicalnet(arch: str, depth: int, shortcut_type: str) -> WeightSource:
    file_name = f"resnet_{depth}_23dataset.pth"
    return WeightSource(
        source="medicalnet",
        arch=arch,
        file_name=file_name,
        url=f"https://huggingface.co/TencentMedicalNet/MedicalNet-Resnet{depth}/resolve/main/{file_name}",
        sha256=None,
        sha256_prefix=None,
        licence=_MEDICALNET_LICENCE,
        spatial_dims=3,
        in_channels=1,
        stem_kernel_depth=7,
        shortcut_type=shortcut_type,
        bias_downsample=False,
        state_dict_key="state_dict",
        key_prefix="module.",
        head_prefix="conv_seg.",
        normalization=Normalization("volume_zscore"),
        notes=_MEDICALNET_NOTES,
    )


WEIGHT_SOURCES: tuple[WeightSource, ...] = (
    _imagenet("resnet18", "resnet18-f37072fd.pth"),
    _imagenet("resnet34", "resnet34-b627a593.pth"),
    _imagenet("resnet50", "resnet50-0676ba61.pth"),
    _medicalnet("resnet18", 18, "A"),
    _medicalnet("resnet34", 34, "A"),
    _medicalnet("resnet50", 50, "B"),
)
"""Every named checkpoint this pipeline knows; one row per (source, arch)."""

NAMED_SOURCES: tuple[str, ...] = tuple(dict.fromkeys(row.source for row in WEIGHT_SOURCES))
"""The sources that name a published file (``imagenet``, ``medicalnet``), in row order."""


def weight_source(source: str, arch: str) -> WeightSource:
    """The row for ``source`` and ``arch``; unknown pairs list the known ones.

    Callers check ``arch`` and the source name against :mod:`pipeline.rules` first, and
    every such pair has a row, so an unknown pair here is a bug, not a user's input.
    """
    for row in WEIGHT_SOURCES:
        if row.source == source and row.arch == arch:
            return row
    known = sorted(f"{r.source}/{r.arch}" for r in WEIGHT_SOURCES)
    raise ValueError(f"weights {source!r} for arch {arch!r} must be one of {known}; got {source}/{arch}.")


def row_for_file_name(file_name: str, arch: str) -> WeightSource | None:
    """The row whose published file name is ``file_name`` for ``arch``, if any."""
    for row in WEIGHT_SOURCES:
        if row.file_name == file_name and row.arch == arch:
            return row
    return None
