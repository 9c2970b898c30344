"""The deterministic MONAI ``Compose`` that ``preprocess`` runs once and caches.

Why a cache: the deterministic steps (load, orient, resample, window, crop) are the
expensive ones and give the same result every epoch, so they run once; the random steps
must differ every epoch and run on whole batches on the training device
(:class:`pipeline.augment.BatchAugment`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    Resize,
    ResizeWithPadOrCropd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)

from pipeline.errors import ConfigError
from pipeline.rules import INTENSITY_MODES, RESIZE_MODES, check_choice
from pipeline.schema.tables import COLOUR_CHANNELS

# Body versus air on CT: anything above -500 HU is tissue (lung parenchyma sits near
# -850 but is enclosed by the body outline, so the crop keeps it).
BODY_THRESHOLD_HU = -500.0
# Non-CT images are scaled by percentiles to [0, 1]; below this they count as background.
BODY_THRESHOLD_SCALED = 0.05
#: ITU-R BT.601 luma: how a colour image becomes grey for a one-channel model.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Above:
    """Picklable foreground selector: ``x > threshold`` (lambdas do not pickle)."""

    threshold: float

    def __call__(self, x: Any) -> Any:
        return x > self.threshold


class LargestAxialSliced(MapTransform):
    """Reduce a (C, H, W, D) volume to its (C, H, W) axial slice of largest body area.

    Used only when a 2D model is asked to learn from 3D volumes. The slice with the most
    foreground is the one most likely to cut through the organ of interest; a study that
    needs a specific level should provide 2D images instead.
    """

    def __init__(self, keys: Sequence[Hashable], threshold: float) -> None:
        super().__init__(keys)
        self.threshold = threshold

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim == 3:  # already (C, H, W)
                continue
            area = (img > self.threshold).sum(dim=(0, 1, 2))
            k = int(torch.argmax(area))
            affine = img.affine.clone() if isinstance(img, MetaTensor) else torch.eye(4, dtype=torch.float64)
            # Keep the in-plane part of the affine; the slice's origin moves to slice k.
            origin = affine[:3, 3] + affine[:3, 2] * k
            affine2d = torch.eye(3, dtype=affine.dtype)
            affine2d[:2, :2] = affine[:2, :2]
            affine2d[:2, 2] = origin[:2]
            plain = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
            d[key] = MetaTensor(plain[..., k].clone(), affine=affine2d)
        return d


class ImageChannelsd(MapTransform):
    """Give the model ``in_channels`` channels: colour made grey (BT.601 luma) or grey repeated.

    Ingest stores a colour image with its channels on NIfTI's fifth axis, which
    ``LoadImaged`` reads as ``(3, X, Y, Z, 1)`` (``Z`` is 1 for a 2D image); the singleton
    axes are dropped here so the image is ``(3, X, Y)`` or ``(3, X, Y, Z)`` like its grey
    counterpart ``(1, X, Y[, Z])``. Then 3 -> 1 takes the luma, 1 -> 3 repeats the grey
    image (equal R, G and B, which an ImageNet stem answers as it answers grey), and an
    image that already has ``in_channels`` passes unchanged.
    """

    def __init__(self, keys: Sequence[Hashable], in_channels: int) -> None:
        super().__init__(keys)
        self.in_channels = in_channels

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim > 4:  # a 5D file: (C, X, Y, Z, 1) -> (C, X, Y[, Z])
                plain = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
                while plain.ndim > 3 and plain.shape[-1] == 1:
                    plain = plain[..., 0]
                img = MetaTensor(plain, meta=img.meta) if isinstance(img, MetaTensor) else plain
            d[key] = self._convert(img)
        return d

    def _convert(self, img: Any) -> Any:
        channels = int(img.shape[0])
        if channels == self.in_channels:
            return img
        if channels == COLOUR_CHANNELS and self.in_channels == 1:
            weights = torch.tensor(LUMA_WEIGHTS, dtype=img.dtype).view(-1, *([1] * (img.ndim - 1)))
            return (img * weights).sum(dim=0, keepdim=True)
        if channels == 1 and self.in_channels == COLOUR_CHANNELS:
            return img.repeat(COLOUR_CHANNELS, *([1] * (img.ndim - 1)))
        raise ValueError(f"image must have 1 or {COLOUR_CHANNELS} channels for {self.in_channels}; got {channels}")


class FitToRoid(MapTransform):
    """Scale ``(C, *spatial)`` so it fits the ROI touching it on one side, aspect ratio kept.

    The factor is the smallest ``roi[i] / size[i]``: a 1,920 x 1,080 screenshot and a
    180 x 180 crop both end with their longer side filling a square ROI, the shorter side
    padded afterwards by ``ResizeWithPadOrCropd``. Shrinking averages the pixels each
    output pixel covers (``area``: a 1,920 px image is not subsampled, and unlike a
    Gaussian anti-aliasing filter it does not darken the border); enlarging is
    (bi/tri)linear. The affine follows, so a saliency map still lands on the right pixels.
    """

    def __init__(self, keys: Sequence[Hashable], roi: Sequence[int]) -> None:
        super().__init__(keys)
        self.roi = tuple(int(r) for r in roi)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            size = tuple(int(s) for s in img.shape[1:])
            factor = min(r / s for r, s in zip(self.roi, size))
            target = tuple(max(1, min(r, round(s * factor))) for r, s in zip(self.roi, size))
            if target != size:
                mode = "area" if factor < 1 else ("bilinear" if len(size) == 2 else "trilinear")
                d[key] = Resize(spatial_size=target, mode=mode)(img)
        return d


class RecordExtentd(MapTransform):
    """Keep the image's spatial size before the ROI crop/pad under ``extent_key``.

    ``preprocess`` reads it to exclude an image that resampling left a few pixels wide
    and to warn about one the ROI crops to a fragment (:func:`pipeline.preprocessing.build_cache`).
    """

    def __init__(self, keys: Sequence[Hashable], extent_key: str = "extent") -> None:
        super().__init__(keys)
        self.extent_key = extent_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.extent_key] = tuple(int(s) for s in d[key].shape[1:])
        return d


#: Intensity mappings to [0, 1]; ``auto`` picks one per modality (:func:`resolve_intensity`).
#: Projection and photographic modalities whose stored values are absolute (8-bit US,
#: CR, DX, MG, XA, RF, SC, XC, OP): brightness is diagnostic (an opaque lung is brighter
#: than a clear one), so ``auto`` maps them with one range for the whole dataset instead
#: of rescaling every image by its own percentiles. On PneumoniaMNIST exported as CR this
#: raised the test AUC (benchmarks/README.md, "Real data").
FIXED_RANGE_MODALITIES = frozenset({"US", "CR", "DX", "MG", "XA", "RF", "SC", "XC", "OP"})
#: Modalities ``auto`` crops to the thresholded body: a CT's air around the patient is
#: wasted voxels. A radiograph or ultrasound frame is already framed by its operator, and
#: a threshold on it cuts into dark (diagnostic) lung or fluid.
CROP_MODALITIES = frozenset({"CT", "MR", "PT", "NM"})


def resolve_intensity(mode: str, modality: str) -> str:
    """The mapping used for ``modality`` when ``preprocess.intensity`` is ``mode``.

    ``auto``: CT -> ``ct_window`` (HU are absolute); US/CR/DX/MG/XA/RF/SC -> ``fixed_range``
    (one dataset-wide range); anything else (MR, PET, unknown) -> ``percentile`` per image,
    since their raw scale differs between scanners and sessions.
    """
    check_choice("preprocess.intensity", mode, INTENSITY_MODES)
    if mode != "auto":
        return mode
    modality = modality.upper()
    if modality == "CT":
        return "ct_window"
    return "fixed_range" if modality in FIXED_RANGE_MODALITIES else "percentile"


def resolve_crop(crop: bool | str, modality: str) -> bool:
    """Whether to crop to the foreground: ``auto`` crops only :data:`CROP_MODALITIES`."""
    return modality.upper() in CROP_MODALITIES if crop == "auto" else bool(crop)


def deterministic_transforms(
    *,
    spatial_dims: int,
    pixdim: Sequence[float],
    roi: Sequence[int],
    hu_window: tuple[float, float],
    modality: str,
    in_channels: int,
    resize: str,
    intensity: str,
    value_range: tuple[float, float] | None,
    crop_foreground: bool | str,
) -> Compose:
    """The cached half: file path -> (in_channels, *roi) float32 tensor in [0, 1].

    Steps: load (NIfTI written by ingest, already RAS), give it ``in_channels`` channels,
    map intensities to [0, 1] (see ``intensity``), orient to RAS, then by ``resize``:
    ``spacing`` resamples to ``pixdim`` mm (cropping at a fixed voxel size keeps physical
    scale: a 10 mm lesion has the same size in voxels in every patient); ``fit`` scales
    the image to fit the ROI instead (:class:`FitToRoid`), for photographs and screenshots
    without a pixel spacing. Then optionally crop to the body (before the fit, so the
    foreground is what fills the ROI), and centre crop or pad to ``roi``.

    The intensity mapping is one for all channels, so the balance between R, G and B
    (the colour of a lesion) is kept; a pretrained network's per-channel mean and std
    are applied later, on the batch (:class:`pipeline.models.Normalization`).

    Args:
        spatial_dims: 2 or 3; 3D inputs are reduced to one axial slice for 2.
        pixdim: target spacing in mm, one per spatial dim (``resize: spacing`` only).
        roi: output size in voxels, one per spatial dim.
        hu_window: (low, high) HU, the range of ``ct_window``.
        modality: DICOM modality of the series (``OT`` when unknown).
        in_channels: channels of the output: 1 (grey) or 3 (RGB); see :class:`ImageChannelsd`.
        resize: ``spacing`` or ``fit`` (:data:`pipeline.rules.RESIZE_MODES`).
        intensity: one of :data:`INTENSITY_MODES`; ``fixed_range`` maps ``value_range``
            (one range for the whole dataset) to [0, 1], ``percentile`` each image's own
            0.5-99.5 percentiles, ``ct_window`` ``hu_window``.
        value_range: (low, high) stored values for ``fixed_range``; None for the other modes.
        crop_foreground: crop to the thresholded body; ``auto`` per :func:`resolve_crop`.

    Returns:
        A dictionary ``Compose`` over key ``"image"``; it also sets ``"extent"``, the
        spatial size before the final crop/pad (:class:`RecordExtentd`).
    """
    check_choice("preprocess.resize", resize, RESIZE_MODES)
    scale, threshold = intensity_step(resolve_intensity(intensity, modality), modality, hu_window, value_range)
    steps: list[Any] = [
        _nibabel_loader(),
        EnsureTyped("image", dtype=torch.float32, track_meta=True),
        ImageChannelsd(["image"], in_channels=in_channels),
        scale,
    ]
    crop = resolve_crop(crop_foreground, modality)
    return Compose([*steps, *_geometry_steps(spatial_dims, pixdim, roi, resize, crop=crop, threshold=threshold)])


def _nibabel_loader() -> LoadImaged:
    """MONAI's loader with nibabel, without the note MONAI prints about a reader it does not use.

    MONAI 1.6's ``LoadImage`` builds every reader it supports as a fallback, the GPU DICOM
    reader among them, which on any machine without nvImageCodec logs a warning and raises
    a second one each time a loader is built (every preprocess and predict run). Ingest
    writes NIfTI, read here by nibabel alone; the note is about nothing the run does.
    """
    probe = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = probe.level
    probe.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")
            return LoadImaged("image", reader="NibabelReader", ensure_channel_first=True, image_only=True)
    finally:
        probe.setLevel(level)


def _geometry_steps(
    spatial_dims: int, pixdim: Sequence[float], roi: Sequence[int], resize: str, *, crop: bool, threshold: float
) -> list[Any]:
    """The steps after the intensity mapping: slice or orient, resample or fit, body crop, ROI
    (in the order :func:`deterministic_transforms` describes); ``threshold`` is the body's on [0, 1]."""
    steps: list[Any] = []
    if spatial_dims == 2:
        steps.append(LargestAxialSliced(["image"], threshold=threshold))
    else:
        steps.append(Orientationd("image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))))
    if resize == "spacing":
        steps.append(Spacingd("image", pixdim=tuple(pixdim), mode="bilinear", padding_mode="zeros", dtype=np.float32))
    if crop:
        steps.append(
            CropForegroundd("image", source_key="image", select_fn=Above(threshold), margin=2, allow_smaller=True)
        )
    if resize == "fit":
        steps.append(FitToRoid(["image"], roi=roi))
    steps.append(RecordExtentd(["image"]))
    steps.append(ResizeWithPadOrCropd("image", spatial_size=tuple(roi), mode="constant"))
    return steps


def intensity_step(
    mode: str, modality: str, hu_window: tuple[float, float], value_range: tuple[float, float] | None
) -> tuple[Any, float]:
    """The transform mapping stored values to [0, 1] for a resolved ``mode``, and the body
    threshold on that [0, 1] scale (what the slice rule and the foreground crop use).

    Raises:
        ConfigError: ``fixed_range`` without a range (no training image of the modality).
    """
    if mode == "percentile":
        scale = ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True)
        return scale, BODY_THRESHOLD_SCALED
    if mode == "fixed_range" and value_range is None:
        raise ConfigError(
            f"'value_range' must be (low, high) for intensity 'fixed_range' of {modality} images; got None (no "
            "readable training image of this modality to estimate it from). Set preprocess.intensity_range, "
            "or preprocess.intensity: percentile."
        )
    low, high = hu_window if mode == "ct_window" else value_range
    scale = ScaleIntensityRanged("image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
    threshold = (BODY_THRESHOLD_HU - low) / (high - low) if mode == "ct_window" else BODY_THRESHOLD_SCALED
    return scale, threshold
