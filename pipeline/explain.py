"""Grad-CAM saliency for the classifier: MONAI's ``GradCAM`` on a named residual stage.

The map comes from one ResNet stage (``layer1`` to ``layer4``), upsampled by MONAI to the
model's input grid (the ROI the preprocess transforms produce) and scaled to [0, 1] per
case. A map only localises when the stage keeps enough cells: ``auto`` picks the deepest
stage with at least :data:`MIN_CELLS` cells along each in-plane axis (with the usual
stride-32 ResNet, ``layer2`` for a 64-voxel ROI), else the finest stage, ``layer1``.

3D maps are written as NIfTI with the affine of the prepared image, so a viewer overlays
them on the original scan in world coordinates; 2D maps as PNG overlays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import PipelineInputError

LAYERS = ("layer4", "layer3", "layer2", "layer1")
MIN_CELLS = 8


class _Logits(nn.Module):
    """Normalisation and network: image -> logits (B, num_classes), as GradCAM expects."""

    def __init__(self, network: nn.Module, normalization: Any) -> None:
        super().__init__()
        self.network = network
        self.normalization = normalization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x if self.normalization is None else self.normalization.apply(x))


def stage_cells(network: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Spatial size of each stage's output for one input of ``input_shape`` (C, *roi)."""
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(network, name).register_forward_hook(
        lambda _m, _i, out, name=name: sizes.__setitem__(name, tuple(out.shape[2:]))) for name in LAYERS]
    device = next(network.parameters()).device
    try:
        with torch.no_grad():
            network(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def choose_layer(network: nn.Module, input_shape: tuple[int, ...], layer: str = "auto") -> str:
    """``layer`` checked, or for ``auto`` the deepest stage with >= MIN_CELLS cells in-plane.

    Raises:
        PipelineInputError: ``layer`` is not a ResNet stage name.
    """
    if layer != "auto":
        if layer not in LAYERS:
            raise PipelineInputError(f"saliency layer must be 'auto' or one of {list(LAYERS)}; got {layer!r}.")
        return layer
    sizes = stage_cells(network, input_shape)
    # In-plane axes are the first two: images are (H, W), volumes RAS (x, y, z) with z axial.
    return next((name for name in LAYERS if min(sizes[name][:2]) >= MIN_CELLS), "layer1")


def grad_cam(network: nn.Module, normalization: Any, images: torch.Tensor, layer: str) -> np.ndarray:
    """Grad-CAM of the positive logit: (B, *roi) float32 in [0, 1] (1 = most salient), on the input grid."""
    from monai.visualize import GradCAM

    # eval() on the wrapper: GradCAM restores the wrapper's mode after its pass, and a new
    # Module starts in training mode, which would leave the network with BatchNorm training.
    # MONAI's default postprocessing maps each map's (min, max) to (1, 0), flipping it (made
    # for its colour maps); the raw upsampled map is taken instead and scaled here.
    cam = GradCAM(nn_module=_Logits(network, normalization).eval(), target_layers=f"network.{layer}",
                  postprocessing=lambda maps: maps)
    with torch.enable_grad():
        maps = cam(x=images.to(next(network.parameters()).device).float(), class_idx=0)
    network.zero_grad(set_to_none=True)
    return np.stack([scale_to_unit(m) for m in maps[:, 0].detach().cpu().numpy()]).astype(np.float32)


def scale_to_unit(saliency: np.ndarray) -> np.ndarray:
    """One map scaled so its minimum is 0 and its maximum 1; a flat map (no evidence anywhere) is all 0."""
    low, high = float(saliency.min()), float(saliency.max())
    if not high > low:
        return np.zeros_like(saliency, dtype=np.float32)
    return ((saliency - low) / (high - low)).astype(np.float32)


def peak_slice(saliency: np.ndarray) -> int:
    """Axial slice (last axis) holding the map's maximum."""
    return int(np.unravel_index(int(np.argmax(saliency)), saliency.shape)[-1])


def save_overlay(path: str | Path, image: np.ndarray, saliency: np.ndarray, *, slice_index: int | None = None) -> Path:
    """PNG of the image (2D) or one axial slice (3D), with the map over it.

    ``image`` is ``(C, *spatial)`` or ``(*spatial)``; an RGB image (C = 3) is drawn in colour.
    ``slice_index``: the axial slice of a 3D image; ``None``, the one where the map peaks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.asarray(image)
    colour = image.ndim == saliency.ndim + 1 and image.shape[0] == 3
    image = np.moveaxis(image, 0, -1) if colour else image[0] if image.ndim == saliency.ndim + 1 else image
    if saliency.ndim == 3:
        k = peak_slice(saliency) if slice_index is None else slice_index
        image, saliency = image[:, :, k], saliency[..., k]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    # Arrays are (x, y) in RAS; shown as radiology shows an axial slice: anterior up, the
    # patient's right on the viewer's left.
    if colour:
        axis.imshow(np.clip(np.stack([_radiological(image[..., c]) for c in range(3)], axis=-1), 0.0, 1.0))
    else:
        axis.imshow(_radiological(image), cmap="gray", vmin=0.0, vmax=1.0)
    if float(saliency.max()) > 0.0:  # a flat map (no evidence anywhere) is drawn as no overlay, not a blue veil
        axis.imshow(_radiological(saliency), cmap="jet", alpha=0.35, vmin=0.0, vmax=1.0)
    axis.set_axis_off()
    figure.savefig(path, bbox_inches="tight", pad_inches=0)
    plt.close(figure)
    return path


def _radiological(plane: np.ndarray) -> np.ndarray:
    return np.flipud(np.fliplr(plane.T))


def save_saliency(folder: str | Path, name: str, image: np.ndarray, saliency: np.ndarray,
                  affine: np.ndarray | None) -> Path:
    """``folder/name.nii.gz`` (3D, world-aligned by ``affine``) or ``folder/name.png`` (2D overlay)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if saliency.ndim == 2:
        return save_overlay(folder / f"{name}.png", image, saliency)
    import nibabel as nib

    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(saliency.astype(np.float32), np.eye(4) if affine is None else np.asarray(affine)), path)
    return path
