"""Everything between a checkpoint file and a state dict that fits the model built.

Reading a file safely (``weights_only``) and unwrapping it (MedicalNet, Lightning,
``DataParallel``), reading the layout a user's file implies, adapting the stem to the
number of input channels, and I3D inflation of 2D kernels to 3D (Carreira & Zisserman,
2017, "Quo Vadis, Action Recognition?", section 2.4). The fit is strict: a layout
mismatch is an error, never a silent partial load.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.models.errors import WeightsError

STEM_KEY = "conv1.weight"


def load_state_dict(path: Path, *, state_dict_key: str | None = None, key_prefix: str = "") -> dict[str, torch.Tensor]:
    """Read a checkpoint with ``weights_only=True`` and unwrap it to a flat state dict.

    A dict holding ``state_dict_key`` (MedicalNet, Lightning) is unwrapped; when every key
    starts with ``key_prefix`` (``module.`` from ``DataParallel``) the prefix is removed.
    With ``state_dict_key=None``, a top-level ``state_dict`` entry is still unwrapped, so
    a file given by path needs no declared format.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise WeightsError(
            f"checkpoint {str(path)!r} must be a torch state dict readable with weights_only=True; "
            f"reading it failed with {type(error).__name__}: {error}. Re-save it with "
            "torch.save(model.state_dict(), path)."
        ) from None
    key = state_dict_key or "state_dict"
    if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
        loaded = loaded[key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(
            f"checkpoint {str(path)!r} must hold a mapping of parameter names to tensors; got "
            f"{type(loaded).__name__}. Save the model's state_dict(), not the model object."
        )
    prefix = key_prefix or "module."
    state = dict(loaded)
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


@dataclass(frozen=True)
class FileLayout:
    """The network layout a user's checkpoint implies by its keys and stem shape."""

    shortcut_type: str
    bias_downsample: bool
    stem_kernel: tuple[int, ...]


def file_layout(state: Mapping[str, torch.Tensor], spatial_dims: int, stem_kernel: tuple[int, ...], name: str) -> FileLayout:
    """Shortcut type, downsample bias and stem kernel implied by a user file's keys.

    A 3D stem sets the kernel; a 2D stem keeps ``stem_kernel`` (it is inflated to it).

    Raises:
        WeightsError: no stem, or a stem of more dimensions than the model.
    """
    stem = state.get(STEM_KEY)
    if stem is None:
        raise WeightsError(
            f"checkpoint {name!r} must hold a ResNet state dict with {STEM_KEY!r}; got keys "
            f"{sorted(state)[:5]}. Save the model's state_dict() (keys as in torchvision or MONAI)."
        )
    if stem.ndim - 2 > spatial_dims:
        raise WeightsError(
            f"checkpoint {name!r} must be 2D or {spatial_dims}D; got a {stem.ndim - 2}D stem "
            f"{tuple(stem.shape)}. Set model spatial_dims to {stem.ndim - 2}."
        )
    kernel = tuple(int(k) for k in stem.shape[2:]) if stem.ndim == 5 else stem_kernel
    return FileLayout(
        shortcut_type="B" if "layer2.0.downsample.0.weight" in state else "A",
        bias_downsample="layer2.0.downsample.0.bias" in state,
        stem_kernel=kernel,
    )


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> tuple[torch.Tensor, str]:
    """Fit a stem kernel ``(out, c, *k)`` to ``in_channels`` inputs.

    One channel sums the kernel over its ``c`` inputs (a grey image is R = G = B, so the
    response to it is unchanged). Other counts repeat the kernel cyclically and scale it
    by ``c / in_channels`` to keep the response's scale; for a multiple of ``c`` channels,
    an input equal on all channels gets exactly the original response (timm's
    ``adapt_input_conv`` makes the same choice).

    Returns:
        The kernel ``(out, in_channels, *k)`` and ``none``, ``sum`` or ``repeat``.
    """
    channels = weight.shape[1]
    if in_channels == channels:
        return weight, "none"
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True), "sum"
    index = torch.arange(in_channels) % channels
    return weight[:, index] * (channels / in_channels), "repeat"


def inflate_kernel(weight: torch.Tensor, depth: int) -> torch.Tensor:
    """I3D inflation of a 2D kernel ``(out, in, kh, kw)`` to ``(out, in, kh, kw, depth)``.

    The kernel is repeated along a new last axis (MONAI's depth, input ``(B, C, H, W, D)``)
    and divided by ``depth``, so its sum over depth equals the 2D kernel: on a volume
    that is constant along depth, each 3D conv reproduces the 2D conv away from the
    depth borders.
    """
    return weight.unsqueeze(-1).expand(*weight.shape, depth).contiguous() / depth


@dataclass
class Transferred:
    """A state dict fitted to a model, and what was done to it (for the provenance)."""

    state: dict[str, torch.Tensor]
    channel_adaptation: str = "none"
    inflated: bool = False
    head: str = "new"


def fit_state_dict(
    checkpoint: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    head_prefixes: tuple[str, ...],
    origin: str,
) -> Transferred:
    """Fit ``checkpoint`` to a model's state dict ``target``, strictly.

    The stem is adapted to the target's input channels, 2D kernels are inflated when the
    target is 3D, and the checkpoint's head is kept only when its shape matches the new
    head (``num_classes`` equal). Every other key must be present in both with the same
    shape: a layout mismatch (stem, shortcut type, downsample bias) is an error here,
    never a silent partial load. BatchNorm's ``num_batches_tracked`` counters, absent
    from some files, are taken from ``target``.

    Args:
        checkpoint: the file's state dict (:func:`load_state_dict`).
        target: the freshly built model's state dict.
        head_prefixes: key prefixes of the head, the model's and the file's own.
        origin: the file's name, for the error.

    Raises:
        WeightsError: listing missing, unexpected and mis-shaped keys.
    """
    result = _with_head(checkpoint, target, head_prefixes)
    stem = result.state.get(STEM_KEY)
    if stem is not None and STEM_KEY in target:
        result.state[STEM_KEY], result.channel_adaptation = adapt_input_channels(stem, target[STEM_KEY].shape[1])
    for key, value in list(result.state.items()):
        wanted = target.get(key)
        if wanted is not None and value.ndim == 4 and wanted.ndim == 5:
            result.state[key] = inflate_kernel(value, wanted.shape[-1])
            result.inflated = True
    for key, value in target.items():
        if key.endswith("num_batches_tracked") and key not in result.state:
            result.state[key] = value
    _check_match(result.state, target, origin)
    result.state = {k: v.to(target[k].dtype) for k, v in result.state.items()}
    return result


def _with_head(
    checkpoint: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], head_prefixes: tuple[str, ...]
) -> Transferred:
    """The checkpoint without its head, plus the head: the file's when it fits, else the target's."""
    result = Transferred(state={k: v for k, v in checkpoint.items() if not k.startswith(head_prefixes)})
    head_keys = {k for k in target if k.startswith(head_prefixes)}
    head = {k: checkpoint[k] for k in head_keys if k in checkpoint}
    if head_keys and head.keys() == head_keys and all(head[k].shape == target[k].shape for k in head_keys):
        result.state.update(head)
        result.head = "pretrained"
    else:
        result.state.update({k: target[k] for k in head_keys})
    return result


def _check_match(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], origin: str) -> None:
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    mis_shaped = sorted(
        f"{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
        for k in set(target) & set(state)
        if state[k].shape != target[k].shape
    )
    if missing or unexpected or mis_shaped:
        raise WeightsError(
            f"checkpoint {origin!r} must match the model's keys and shapes exactly; got "
            f"{len(missing)} missing {missing[:4]}, {len(unexpected)} unexpected {unexpected[:4]}, "
            f"{len(mis_shaped)} mis-shaped {mis_shaped[:4]}. Check 'model.arch' and the stem settings; "
            "weights with a parameter-free shortcut (no 'downsample' keys) need shortcut type 'A'."
        )
