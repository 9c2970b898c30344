"""Vocabularies and value rules shared by ``pipeline.config`` and the library, written once.

A setting such as ``ingest.series_choice`` is checked when ``params.yaml`` is read and
again where a library function is called directly (benchmarks, tests, the Python API).
Both places import the rule from here, so the two checks cannot drift apart. This module
imports nothing heavier than the error base: ingest and split, which never load torch,
use it too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pipeline.errors import ConfigError

# ingest
SERIES_CHOICES: tuple[str, ...] = ("most_slices", "error")
SPACING_POLICIES: tuple[str, ...] = ("reject", "resample")
VOLUME_FORMATS: tuple[str, ...] = ("nii", "nii.gz")

# split
DUPLICATE_POLICIES: tuple[str, ...] = ("group", "refuse", "ignore")
#: Most folds of cross-validation: dvc.yaml has one train_fold stage per slot (DVC's
#: foreach cannot loop over a number, only a list), and fold_slots there lists this many.
MAX_FOLDS = 10

# preprocess
SPATIAL_DIMS: tuple[int, ...] = (2, 3)
INTENSITY_MODES: tuple[str, ...] = ("auto", "ct_window", "fixed_range", "percentile")
#: Channels the model sees: auto (rgb when the cohort has colour images, else gray).
CHANNEL_MODES: tuple[str, ...] = ("auto", "gray", "rgb")
#: How an image reaches the ROI's size: resampled to pixdim mm, or scaled to fit it.
RESIZE_MODES: tuple[str, ...] = ("spacing", "fit")

# model
ARCHS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
#: Weight sources known by name; any other non-empty string is a checkpoint path.
NAMED_WEIGHTS: tuple[str, ...] = ("none", "imagenet", "medicalnet", "auto")

# train
PRECISIONS: tuple[str, ...] = ("auto", "32", "bf16-mixed", "16-mixed")
ACCELERATORS: tuple[str, ...] = ("cpu", "gpu", "auto")
STRATEGIES: tuple[str, ...] = ("auto", "ddp", "ddp_spawn")

# evaluate
AGGREGATES: tuple[str, ...] = ("max", "mean")
THRESHOLD_RULES: tuple[str, ...] = ("youden", "sensitivity")
CI_METHODS: tuple[str, ...] = ("delong", "bootstrap")
CALIBRATION_METHODS: tuple[str, ...] = ("none", "platt", "isotonic")

# explain: the ResNet stage of the Grad-CAM maps (auto: the deepest with 8 cells in-plane).
SALIENCY_LAYERS: tuple[str, ...] = ("auto", "layer1", "layer2", "layer3", "layer4")
MAX_GALLERY_CASES = 20

# external
#: An external cohort's name: its folder under reports/external/, so letters, digits, _ and -.
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_SHA256_PREFIX = re.compile(r"[0-9a-fA-F]{8,64}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """``value`` must be one of ``choices``; the error lists them."""
    if value not in choices:
        raise ConfigError(f"{name!r} must be one of {list(choices)}; got {value!r}.")


def check_folds(name: str, value: Any) -> None:
    """0 (one train/val/test split) or 2 to :data:`MAX_FOLDS` folds of cross-validation."""
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or 2 <= value <= MAX_FOLDS):
        raise ConfigError(
            f"{name!r} must be 0 (one train/val/test split) or a whole number of folds from 2 to {MAX_FOLDS} "
            f"(dvc.yaml has {MAX_FOLDS} train_fold slots); got {value!r}. Use e.g. 5."
        )


def check_site_name(name: str, value: Any) -> None:
    """A name that is safe as one folder name: :data:`SITE_NAME`."""
    if not isinstance(value, str) or not SITE_NAME.fullmatch(value):
        raise ConfigError(
            f"{name!r} must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit (it names the "
            f"site's folder under reports/external/); got {value!r}. Use e.g. site_b."
        )


def check_weights(name: str, value: Any) -> None:
    """A named weight source or a checkpoint path: any non-empty string."""
    if not isinstance(value, str) or not value:
        named = ", ".join(repr(v) for v in NAMED_WEIGHTS)
        raise ConfigError(f"{name!r} must be {named} or a checkpoint file path; got {value!r}.")


def check_sha256_prefix(name: str, value: Any) -> None:
    """``None`` or 8 to 64 leading hexadecimal digits of a file's SHA-256."""
    if value is not None and not (isinstance(value, str) and _SHA256_PREFIX.fullmatch(value)):
        raise ConfigError(
            f"{name!r} must be 8 to 64 hexadecimal digits of the file's SHA-256, or null; got {value!r}. "
            "Compute it with `sha256sum FILE`."
        )


def check_stem_kernel_depth(name: str, value: Any) -> None:
    """An odd integer >= 1, so that the stem's padding keeps depth centred."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ConfigError(
            f"{name!r} must be an odd integer >= 1 so the padding keeps depth centred; got {value!r}. "
            "Use 7 (MedicalNet's) or 3."
        )


STEM_STRIDES = (1, 2)
"""In-plane stem strides: 2 is torchvision's layout, 1 keeps twice the resolution per axis."""


def check_stem_stride(name: str, value: Any) -> None:
    """1 or 2 (:data:`STEM_STRIDES`)."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in STEM_STRIDES:
        raise ConfigError(
            f"{name!r} must be 1 or 2; got {value!r}. Use 2 (torchvision's ImageNet layout) for inputs of "
            "about 100 voxels or more per axis, 1 for smaller ones (a 32^3 volume, a 28^2 image)."
        )


def check_device_cache(name: str, value: Any) -> None:
    """``True``, ``False`` or ``"auto"``; 1 and 0 are not booleans here."""
    if not (isinstance(value, bool) or value == "auto"):
        raise ConfigError(f"{name!r} must be true, false or auto; got {value!r}.")
