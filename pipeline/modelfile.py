"""What a trained model file holds beyond its weights, and how it is read back.

``train`` writes Lightning checkpoints (``models/best.ckpt``). :meth:`ClassifierSystem.
on_save_checkpoint` adds one entry, ``checkpoint["medimg"]``, built by
:func:`describe_model`: the network layout, the input normalisation, the weights
provenance, the preprocess settings that made the training tensors, and a digest of the
metadata and weights. Every value is a plain type (dict, list, str, int, float, bool,
None), so the file loads with ``torch.load(weights_only=True)`` and nothing in it runs code.

:func:`read_model_file` checks such a file and returns its parts; a file from another
tool, another format version, or altered after training is refused with a
:class:`ModelFileError` that says which.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import PipelineInputError

KEY = "medimg"
FORMAT = "medimg-classifier"
FORMAT_VERSION = 1
STATE_PREFIX = "backbone."
NETWORK_KEYS = (
    "arch", "spatial_dims", "in_channels", "num_classes", "stem_kernel", "stem_stride", "shortcut_type", "bias_downsample",
)
REQUIRED = ("format", "format_version", "network", "normalization", "weights", "preprocess", "digest")
PREPROCESS_REQUIRED = ("spatial_dims", "roi", "pixdim", "dtype", "in_channels", "resize")
# Cache meta that describes the training cohort, not how an image is turned into a tensor.
COHORT_META = frozenset(
    {"counts", "positives", "excluded", "excluded_reasons", "subgroup_columns", "channels_reason", "roi_crop_warnings"}
)
RETRAIN = "Retrain with this version of the pipeline (dvc repro -f train) to get a readable models/best.ckpt."


class ModelFileError(PipelineInputError):
    """A model file is missing, foreign, from another format version, or altered."""


@dataclass(frozen=True)
class ModelFile:
    """The checked contents of a model file.

    Attributes:
        meta: the ``medimg`` entry (network, normalization, weights, preprocess, ...).
        state: the network's state dict, keys as in the bare MONAI ResNet.
    """

    meta: dict[str, Any]
    state: dict[str, torch.Tensor]


def describe_model(
    network: nn.Module,
    *,
    provenance: Mapping[str, Any],
    normalization: Any,
    cache_meta: Mapping[str, Any],
    model_config: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``medimg`` entry for a model trained from ``cache_meta`` (digest added at save).

    Args:
        network: the MONAI ResNet being trained (its head size and shortcut layout).
        provenance: ``WeightsProvenance.to_dict()`` of its initial weights.
        normalization: the backbone's :class:`~pipeline.models.Normalization`, or None.
        cache_meta: ``meta.json`` of the cache it trains on (:func:`pipeline.cache.read_meta`).
        model_config: the ``model`` params as a dict.
    """
    state_keys = network.state_dict().keys()
    layout = {
        "arch": provenance["arch"],
        "spatial_dims": int(provenance["spatial_dims"]),
        "in_channels": int(provenance["in_channels"]),
        "num_classes": int(network.fc.out_features),
        "stem_kernel": [int(k) for k in provenance["stem_kernel"]],
        "stem_stride": [int(s) for s in provenance["stem_stride"]],
        "shortcut_type": provenance["shortcut_type"],
        "bias_downsample": any(k.endswith("downsample.0.bias") for k in state_keys),
    }
    norm = None if normalization is None else {
        "kind": normalization.kind, "mean": list(normalization.mean), "std": list(normalization.std),
    }
    return _plain({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": layout,
        "normalization": norm,
        "weights": dict(provenance),
        "preprocess": {k: v for k, v in cache_meta.items() if k not in COHORT_META},
        "model_config": dict(model_config),
    })


def seal(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``meta`` with the digest of itself and the network weights under ``state``."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    return {**body, "digest": digest(body, _network_state(state))}


def sealed_digest(path: str | Path) -> str:
    """The digest ``path`` was sealed with when it was saved (:func:`seal`), read without checking the file.

    For train, naming the ``best.ckpt`` it has just written: the file is its own, so the
    checks of :func:`read_model_file` (which also refuse a cache meta this version would
    not read) are not its business. Memory-mapped: the weights are not read.
    """
    return str(torch.load(path, map_location="cpu", weights_only=True, mmap=True)[KEY]["digest"])


def digest(meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata (canonical JSON) and every weight's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"|{name}|{tensor.dtype}|{tuple(state[name].shape)}|".encode())
        h.update(tensor.view(torch.uint8).numpy())
    return h.hexdigest()


def read_model_file(path: str | Path) -> ModelFile:
    """Load and check a model file written by ``train``.

    Raises:
        ModelFileError: not a file, not a checkpoint, not ours, another format version,
            a key missing, or metadata/weights changed since training (says which).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} must exist; it was not found. Train first (dvc repro train).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError) as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelFileError(
            f"model file {name!r} must be a PyTorch checkpoint of plain values (loadable with weights_only=True); "
            f"it is not ({first}). Give the best.ckpt written by the train stage."
        ) from None
    if not isinstance(checkpoint, dict) or KEY not in checkpoint:
        older = isinstance(checkpoint, dict) and "state_dict" in checkpoint
        what = "a Lightning checkpoint without the 'medimg' entry (written before format 1 or by another tool)" \
            if older else "not a checkpoint written by this pipeline's train stage"
        raise ModelFileError(f"model file {name!r} must hold the pipeline's 'medimg' entry; it is {what}. {RETRAIN}")
    meta = checkpoint[KEY]
    _check_meta(name, meta)
    state = _network_state(checkpoint.get("state_dict") or {})
    expected = digest({k: v for k, v in meta.items() if k != "digest"}, state)
    if expected != meta["digest"]:
        raise ModelFileError(
            f"model file {name!r} must hold the metadata and weights that train sealed; their digest is "
            f"{expected[:12]}..., the recorded one {str(meta['digest'])[:12]}...: the file was altered after "
            f"training. Use an unaltered copy. {RETRAIN}"
        )
    return ModelFile(meta=meta, state=state)


def _check_meta(name: str, meta: Any) -> None:
    if not isinstance(meta, dict):
        raise ModelFileError(f"model file {name!r}: 'medimg' must be a mapping; got {type(meta).__name__}. {RETRAIN}")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"model file {name!r} must be format {FORMAT!r} version {FORMAT_VERSION}; got format "
            f"{meta.get('format')!r} version {meta.get('format_version')!r}. Use the pipeline version that "
            f"wrote it, or {RETRAIN[0].lower() + RETRAIN[1:]}"
        )
    for where, keys, block in (
        ("medimg", REQUIRED, meta),
        ("medimg.network", NETWORK_KEYS, meta.get("network")),
        ("medimg.preprocess", PREPROCESS_REQUIRED, meta.get("preprocess")),
    ):
        missing = [k for k in keys if not isinstance(block, dict) or k not in block]
        if missing:
            raise ModelFileError(f"model file {name!r}: {where!r} must hold {missing}; they are missing. {RETRAIN}")


def check_state(name: str, expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights whose names or shapes differ from the rebuilt network's, naming them."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in sorted(set(expected) & set(state)) if tuple(expected[k].shape) != tuple(state[k].shape)]
    if missing or extra or wrong:
        parts = [f"{label} {keys[:3]}{' and more' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if keys]
        raise ModelFileError(
            f"model file {name!r}: the weights must fit the network its metadata describes; got "
            f"{'; '.join(parts)}. The metadata and weights come from different models. {RETRAIN}"
        )


def _network_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's entries of a LightningModule state dict, keys without ``backbone.``."""
    return {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: the entry must be plain types that JSON round-trips."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
