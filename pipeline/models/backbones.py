"""One builder for 2D and 3D ResNet backbones with named, recorded pretrained weights.

The network is MONAI's :class:`~monai.networks.nets.ResNet`, built with torchvision's
ImageNet layout (7x7 stride-2 stem, max-pool, 1x1-conv shortcut without bias) so that
torchvision's checkpoints load strictly. The layout matters: MONAI's defaults (stem
stride 1, shortcut with bias) either refuse those keys or, worse, accept them and give
different features. In 3D the stem is ``7 x 7 x stem_kernel_depth`` with stride
``2 x 2 x stem_stride_depth``: scans are usually thinner along depth than in-plane.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.networks.nets import ResNet, resnet18, resnet34, resnet50
from torch import nn

from pipeline.models.weights import (
    NAMED_SOURCES,
    Normalization,
    Provenance,
    WeightsError,
    WeightsNotFoundError,
    WeightSource,
    fit_state_dict,
    load_state_dict,
    resolve_checkpoint,
    row_for_file_name,
    verify_file,
    weight_source,
)

logger = logging.getLogger(__name__)

ARCHS: dict[str, Callable[..., ResNet]] = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
HEAD_MODULE = "fc"
STEM_KERNEL = 7
STEM_STRIDE = 2


@dataclass(frozen=True)
class Backbone:
    """A ready model and the record of its weights.

    Attributes:
        model: ``(B, in_channels, H, W[, D]) -> (B, num_classes)`` logits.
        provenance: where the weights came from (see :class:`Provenance`).
        normalization: the input normalisation the weights were trained with, adapted to
            ``in_channels``; ``None`` for random initialisation or an unknown file.
    """

    model: ResNet
    provenance: Provenance
    normalization: Normalization | None

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new classification head."""
        return head_parameters(self.model)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of everything but the head (the pretrained part)."""
        return backbone_parameters(self.model)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``model.fc``, the head that :func:`build_backbone` sizes."""
    return list(getattr(model, HEAD_MODULE).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``model`` outside its head, in registration order."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def build_backbone(
    arch: str,
    *,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    weights: str | os.PathLike,
    weights_sha256: str | None = None,
    stem_kernel_depth: int = STEM_KERNEL,
    stem_stride_depth: int = STEM_STRIDE,
    download_timeout_s: float | None = None,
) -> Backbone:
    """Build a MONAI ResNet classifier and load named or given weights into it.

    Args:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        spatial_dims: 2 for images ``(B, C, H, W)``, 3 for volumes ``(B, C, H, W, D)``.
        in_channels: input channels; a pretrained stem is summed (1) or repeated (others).
        num_classes: logits per sample; the head is a new ``Linear`` sized from the
            backbone (kept from the checkpoint only when its shape already matches).
        weights: ``none`` (random), ``imagenet`` (torchvision ImageNet-1k, inflated in
            3D), ``medicalnet`` (Tencent MedicalNet, 3D only), ``auto`` (ImageNet when the
            file is at hand or downloadable, else random with a loud warning recorded in
            the provenance), or a checkpoint path. A path whose file name is a published
            one (e.g. ``resnet18-f37072fd.pth``) is treated as that source.
        weights_sha256: expected SHA-256 (or a leading part of it, 8+ hex digits) of the
            checkpoint; overrides the published checksum, e.g. for a site's own copy.
        stem_kernel_depth: 3D only: stem kernel size along depth (odd).
        stem_stride_depth: 3D only: stem stride along depth.
        download_timeout_s: seconds for the download; ``None`` reads
            ``$PIPELINE_WEIGHTS_TIMEOUT_S`` (default 10, ``0`` disables downloads).

    Returns:
        The model with its provenance and input normalisation.

    Raises:
        ValueError: an argument breaks its rule.
        WeightsNotFoundError: a named checkpoint is not at hand and cannot be downloaded
            (not raised for ``auto``).
        WeightsError: checksum, key or shape mismatch.
    """
    _check_args(arch, spatial_dims, in_channels, num_classes, weights_sha256, stem_kernel_depth, stem_stride_depth)
    requested = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else weights
    if not isinstance(requested, str) or not requested:
        raise ValueError(
            f"'weights' must be 'none', 'imagenet', 'medicalnet', 'auto' or a file path; got {weights!r}."
        )
    kernel, stride = _stem(spatial_dims, stem_kernel_depth, stem_stride_depth)
    common = {"arch": arch, "spatial_dims": spatial_dims, "in_channels": in_channels,
              "stem_kernel": kernel, "stem_stride": stride}

    if requested == "none":
        model = _resnet(arch, spatial_dims, in_channels, num_classes, kernel, stride, "B", False)
        return Backbone(model, Provenance(source="none", requested="none", shortcut_type="B", **common), None)

    if requested in NAMED_SOURCES or requested == "auto":
        row = weight_source("imagenet" if requested == "auto" else requested, arch)
        path = None
    else:
        path = Path(requested).expanduser()
        if not path.exists() and path.suffix == "" and len(path.parts) == 1:
            raise ValueError(
                f"'weights' must be 'none', 'imagenet', 'medicalnet', 'auto' or a file path; got {requested!r}, "
                "which is neither a known name nor an existing file. Check the spelling."
            )
        row = row_for_file_name(path.name, arch)
    if row is not None:
        _check_row_fits(row, spatial_dims, stem_kernel_depth)
        try:
            found = resolve_checkpoint(row, path=path, expected_sha256=weights_sha256, timeout_s=download_timeout_s)
        except WeightsNotFoundError as error:
            if requested != "auto":
                raise
            return _random_fallback(arch, num_classes, row, error, common)
        state = load_state_dict(found.path, state_dict_key=row.state_dict_key, key_prefix=row.key_prefix)
        shortcut, bias = row.shortcut_type, row.bias_downsample
        head_prefixes: tuple[str, ...] = (HEAD_MODULE + ".", row.head_prefix)
    else:
        found = verify_file(path, weights_sha256)
        state = load_state_dict(found.path)
        shortcut, bias, kernel = _layout_of(state, spatial_dims, kernel, path)
        common["stem_kernel"] = kernel
        head_prefixes = (HEAD_MODULE + ".",)

    model = _resnet(arch, spatial_dims, in_channels, num_classes, common["stem_kernel"], stride, shortcut, bias)
    fitted = fit_state_dict(state, model.state_dict(), head_prefixes=head_prefixes, origin=found.path.name)
    model.load_state_dict(fitted.state, strict=True)
    provenance = Provenance(
        source=row.source if row else "file",
        requested=requested if requested in NAMED_SOURCES + ("auto",) else "file",
        shortcut_type=shortcut,
        file=found.path.name,
        sha256=found.sha256,
        sha256_expected=found.expected,
        found=found.how,
        url=row.url if row else None,
        licence=row.licence if row else "unknown: a user-supplied file; record its licence yourself",
        channel_adaptation=fitted.channel_adaptation,
        inflated=fitted.inflated,
        head=fitted.head,
        notes=row.notes if row else "",
        warning=None if found.expected else f"{found.path.name!r} was not checked against a known SHA-256.",
        **common,
    )
    normalization = row.normalization.adapted(in_channels) if row else None
    logger.info("backbone %s %dD weights=%s file=%s sha256=%s", arch, spatial_dims, provenance.source,
                provenance.file, provenance.sha256)
    return Backbone(model, provenance, normalization)


def _check_args(
    arch: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    weights_sha256: str | None,
    stem_kernel_depth: int,
    stem_stride_depth: int,
) -> None:
    if arch not in ARCHS:
        raise ValueError(f"'arch' must be one of {sorted(ARCHS)}; got {arch!r}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"'spatial_dims' must be 2 or 3; got {spatial_dims!r}.")
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("stem_stride_depth", stem_stride_depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name!r} must be an integer >= 1; got {value!r}.")
    if isinstance(stem_kernel_depth, bool) or not isinstance(stem_kernel_depth, int) or stem_kernel_depth < 1 \
            or stem_kernel_depth % 2 == 0:
        raise ValueError(
            f"'stem_kernel_depth' must be an odd integer >= 1 (so padding keeps the depth centred); "
            f"got {stem_kernel_depth!r}."
        )
    if weights_sha256 is not None and not (
        isinstance(weights_sha256, str) and re.fullmatch(r"[0-9a-fA-F]{8,64}", weights_sha256)
    ):
        raise ValueError(
            f"'weights_sha256' must be 8 to 64 hexadecimal digits of the file's SHA-256; got {weights_sha256!r}. "
            "Compute it with `sha256sum FILE`."
        )


def _stem(spatial_dims: int, kernel_depth: int, stride_depth: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if spatial_dims == 2:
        return (STEM_KERNEL, STEM_KERNEL), (STEM_STRIDE, STEM_STRIDE)
    return (STEM_KERNEL, STEM_KERNEL, kernel_depth), (STEM_STRIDE, STEM_STRIDE, stride_depth)


def _check_row_fits(row: WeightSource, spatial_dims: int, stem_kernel_depth: int) -> None:
    if row.spatial_dims == 3 and spatial_dims != 3:
        raise ValueError(
            f"weights {row.source!r} must be used with spatial_dims 3 (they are 3D); got spatial_dims "
            f"{spatial_dims}. Use 'imagenet' for 2D images."
        )
    if row.stem_kernel_depth is not None and stem_kernel_depth != row.stem_kernel_depth:
        raise ValueError(
            f"'stem_kernel_depth' must be {row.stem_kernel_depth} for {row.source} weights (their stem is "
            f"7x7x{row.stem_kernel_depth}); got {stem_kernel_depth}. Set model.stem_kernel_depth to "
            f"{row.stem_kernel_depth}."
        )


def _layout_of(
    state: dict[str, torch.Tensor], spatial_dims: int, kernel: tuple[int, ...], path: Path
) -> tuple[str, bool, tuple[int, ...]]:
    """Shortcut type, downsample bias and stem kernel implied by a user file's keys."""
    stem = state.get("conv1.weight")
    if stem is None:
        raise WeightsError(
            f"checkpoint {path.name!r} must hold a ResNet state dict with 'conv1.weight'; got keys "
            f"{sorted(state)[:5]}. Save the model's state_dict() (keys as in torchvision or MONAI)."
        )
    if stem.ndim - 2 > spatial_dims:
        raise WeightsError(
            f"checkpoint {path.name!r} must be 2D or {spatial_dims}D; got a {stem.ndim - 2}D stem "
            f"{tuple(stem.shape)}. Set model spatial_dims to {stem.ndim - 2}."
        )
    if stem.ndim == 5:
        kernel = tuple(int(k) for k in stem.shape[2:])
    shortcut = "B" if "layer2.0.downsample.0.weight" in state else "A"
    return shortcut, "layer2.0.downsample.0.bias" in state, kernel


def _random_fallback(
    arch: str, num_classes: int, row: WeightSource, error: WeightsNotFoundError, common: dict
) -> Backbone:
    message = (
        f"model.weights 'auto': {row.source} weights for {arch} ({row.file_name!r}) are not at hand, so "
        f"the backbone starts from RANDOM weights and results will be worse than with pretraining. {error}"
    )
    # One channel only: with no logging handler configured, a logger.warning beside this
    # reached stderr too (through logging's last-resort handler) and printed it twice.
    warnings.warn(message, UserWarning, stacklevel=3)
    model = _resnet(arch, common["spatial_dims"], common["in_channels"], num_classes,
                    common["stem_kernel"], common["stem_stride"], "B", False)
    provenance = Provenance(source="none", requested="auto", shortcut_type="B", warning=message,
                            **common)
    return Backbone(model, provenance, None)


def _resnet(
    arch: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    shortcut_type: str,
    bias_downsample: bool,
) -> ResNet:
    return ARCHS[arch](
        spatial_dims=spatial_dims,
        n_input_channels=in_channels,
        num_classes=num_classes,
        conv1_t_size=kernel,
        conv1_t_stride=stride,
        no_max_pool=False,
        shortcut_type=shortcut_type,
        bias_downsample=bias_downsample,
        feed_forward=True,
    )
