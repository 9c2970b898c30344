"""One builder for 2D and 3D ResNet backbones with named, recorded pretrained weights.

:func:`build_backbone` reads as its three steps: *resolve* the weights (a named source's
row and file, or a user's file, found and verified by :mod:`~pipeline.models.fetch`),
*build* the network in the layout those weights need (:mod:`~pipeline.models.network`),
and *transfer* them into it strictly (:mod:`~pipeline.models.adapt`); the result carries
its :class:`~pipeline.models.provenance.WeightsProvenance`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.networks.nets import ResNet
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.adapt import file_layout, fit_state_dict, load_state_dict
from pipeline.models.errors import WeightsNotFoundError
from pipeline.models.fetch import ResolvedFile, resolve_checkpoint, verify_file
from pipeline.models.network import (
    HEAD_MODULE,
    NetworkLayout,
    backbone_parameters,
    build_network,
    head_parameters,
    stem_shape,
)
from pipeline.models.provenance import WeightsProvenance, loaded_provenance, random_provenance
from pipeline.models.sources import Normalization, WeightSource, row_for_file_name, weight_source
from pipeline.rules import (
    ARCHS,
    NAMED_WEIGHTS,
    SPATIAL_DIMS,
    check_choice,
    check_sha256_prefix,
    check_stem_kernel_depth,
    check_stem_stride,
    check_weights,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    """A ready model and the record of its weights.

    Attributes:
        model: ``(B, in_channels, H, W[, D]) -> (B, num_classes)`` logits.
        provenance: where the weights came from (see :class:`WeightsProvenance`).
        normalization: the input normalisation the weights were trained with, adapted to
            ``in_channels``; ``None`` for random initialisation or an unknown file.
    """

    model: ResNet
    provenance: WeightsProvenance
    normalization: Normalization | None

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new classification head."""
        return head_parameters(self.model)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of everything but the head (the pretrained part)."""
        return backbone_parameters(self.model)


def build_backbone(
    *,
    arch: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    weights: str | os.PathLike,
    weights_sha256: str | None,
    stem_kernel_depth: int,
    stem_stride_depth: int,
    stem_stride: int,
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
        weights_sha256: expected SHA-256 of the checkpoint (8 to 64 leading hex digits), or
            ``None``; overrides the published checksum, e.g. for a site's own copy.
        stem_kernel_depth: 3D only: stem kernel size along depth (odd).
        stem_stride_depth: 3D only: stem stride along depth.
        stem_stride: in-plane stem stride: 2 as torchvision, 1 for small inputs.
        download_timeout_s: seconds for the download; ``None`` reads
            ``$PIPELINE_WEIGHTS_TIMEOUT_S`` (default 10, ``0`` disables downloads).

    Returns the model with its provenance and input normalisation.

    Raises:
        ConfigError: an argument breaks its rule.
        WeightsNotFoundError: a named file is neither at hand nor downloadable (not for ``auto``).
        WeightsError: checksum, key or shape mismatch.
    """
    requested = _check_args(arch, spatial_dims, in_channels, num_classes, weights, weights_sha256,
                            stem_kernel_depth, stem_stride_depth, stem_stride)
    kernel, stride = stem_shape(spatial_dims, stem_kernel_depth, stem_stride_depth, stem_stride)
    layout = NetworkLayout(arch, spatial_dims, in_channels, num_classes, kernel, stride, "B", False)
    if requested == "none":
        return Backbone(build_network(layout), random_provenance(layout, requested="none"), None)
    try:  # resolve
        checkpoint = _resolve(requested, layout, stem_kernel_depth, weights_sha256, download_timeout_s)
    except WeightsNotFoundError as error:
        if requested != "auto":
            raise
        return _random_fallback(layout, weight_source("imagenet", arch), error)
    model = build_network(checkpoint.layout)  # build
    fitted = fit_state_dict(checkpoint.state, model.state_dict(), head_prefixes=checkpoint.head_prefixes,
                            origin=checkpoint.found.path.name)  # transfer
    model.load_state_dict(fitted.state, strict=True)
    row = checkpoint.row
    record = loaded_provenance(checkpoint.layout, requested=requested, row=row, found=checkpoint.found, fitted=fitted)
    logger.info("backbone %s %dD weights=%s file=%s sha256=%s", arch, spatial_dims, record.source, record.file,
                record.sha256)
    return Backbone(model, record, row.normalization.adapted(in_channels) if row else None)


@dataclass(frozen=True)
class _Checkpoint:
    """Weights found, verified and read, with the network layout they need."""

    row: WeightSource | None  # None: a user's file under a name no source publishes
    found: ResolvedFile
    state: dict[str, torch.Tensor]
    layout: NetworkLayout
    head_prefixes: tuple[str, ...]


def _resolve(
    requested: str, layout: NetworkLayout, stem_kernel_depth: int, weights_sha256: str | None, timeout_s: float | None
) -> _Checkpoint:
    """The checkpoint ``requested`` names (a source, ``auto``, or a path), read and verified.

    Raises:
        WeightsNotFoundError: the file is neither at hand nor downloadable.
    """
    head = (HEAD_MODULE + ".",)
    path = None
    if requested in NAMED_WEIGHTS:
        row = weight_source("imagenet" if requested == "auto" else requested, layout.arch)
    else:
        path = Path(requested).expanduser()
        if not path.exists() and path.suffix == "" and len(path.parts) == 1:
            raise ConfigError(
                f"'weights' must be {', '.join(map(repr, NAMED_WEIGHTS))} or a file path; got {requested!r}, "
                "which is neither a known name nor an existing file. Check the spelling."
            )
        row = row_for_file_name(path.name, layout.arch)
    if row is None:
        found = verify_file(path, weights_sha256)
        state = load_state_dict(found.path)
        implied = file_layout(state, layout.spatial_dims, layout.stem_kernel, path.name)
        return _Checkpoint(None, found, state, dataclasses.replace(layout, **dataclasses.asdict(implied)), head)
    _check_row_fits(row, layout.spatial_dims, stem_kernel_depth)
    found = resolve_checkpoint(row, path=path, expected_sha256=weights_sha256, timeout_s=timeout_s)
    state = load_state_dict(found.path, state_dict_key=row.state_dict_key, key_prefix=row.key_prefix)
    needs = dataclasses.replace(layout, shortcut_type=row.shortcut_type, bias_downsample=row.bias_downsample)
    return _Checkpoint(row, found, state, needs, (*head, row.head_prefix))


def _check_args(
    arch: str,
    spatial_dims: int,
    in_channels: int,
    num_classes: int,
    weights: str | os.PathLike,
    weights_sha256: str | None,
    stem_kernel_depth: int,
    stem_stride_depth: int,
    stem_stride: int,
) -> str:
    """Check every argument against its rule (:mod:`pipeline.rules`); returns ``weights`` as a string."""
    check_choice("arch", arch, ARCHS)
    check_choice("spatial_dims", spatial_dims, SPATIAL_DIMS)
    for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("stem_stride_depth", stem_stride_depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name!r} must be an integer >= 1; got {value!r}.")
    check_stem_kernel_depth("stem_kernel_depth", stem_kernel_depth)
    check_stem_stride("stem_stride", stem_stride)
    check_sha256_prefix("weights_sha256", weights_sha256)
    requested = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else weights
    check_weights("weights", requested)
    return requested


def _check_row_fits(row: WeightSource, spatial_dims: int, stem_kernel_depth: int) -> None:
    if row.spatial_dims == 3 and spatial_dims != 3:
        raise ConfigError(
            f"weights {row.source!r} must be used with spatial_dims 3 (they are 3D); got spatial_dims "
            f"{spatial_dims}. Use 'imagenet' for 2D images."
        )
    if row.stem_kernel_depth is not None and stem_kernel_depth != row.stem_kernel_depth:
        raise ConfigError(
            f"'stem_kernel_depth' must be {row.stem_kernel_depth} for {row.source} weights (their stem is "
            f"7x7x{row.stem_kernel_depth}); got {stem_kernel_depth}. Set model.stem_kernel_depth to "
            f"{row.stem_kernel_depth}."
        )


def _random_fallback(layout: NetworkLayout, row: WeightSource, error: WeightsNotFoundError) -> Backbone:
    message = (
        f"model.weights 'auto': {row.source} weights for {row.arch} ({row.file_name!r}) are not at hand, so "
        f"the backbone starts from RANDOM weights and results will be worse than with pretraining. {error}"
    )
    # One channel only: with no logging handler configured, a logger.warning beside this
    # reached stderr too (through logging's last-resort handler) and printed it twice.
    warnings.warn(message, UserWarning, stacklevel=3)
    return Backbone(build_network(layout), random_provenance(layout, requested="auto", warning=message), None)
