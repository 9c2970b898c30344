"""Checkpoints with published layouts, built from the architecture spec, not from MONAI.

The keys and shapes here follow torchvision's ``ResNet`` and Tencent MedicalNet's
``resnet.py`` as published; the values are random. Building them independently of
MONAI is the point: a strict load then proves that the MONAI model this pipeline builds
has the published layout.
"""

from __future__ import annotations

import math

import torch

SPEC = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
WIDTHS = (64, 128, 256, 512)


def resnet_state_dict(
    arch: str,
    *,
    seed: int,
    num_classes: int = 1000,
    in_channels: int = 3,
    depth_kernels: bool = False,
    shortcut: str = "B",
    downsample_bias: bool = False,
) -> dict[str, torch.Tensor]:
    """A ResNet state dict with torchvision's keys; 3D kernels ``(..., k, k, k)`` when ``depth_kernels``.

    Convolutions are He-scaled and BatchNorm statistics vary around 1, so activations
    stay in a sensible range through the whole network.
    """
    block, layers = SPEC[arch]
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shape = (out, inp) + (k,) * (3 if depth_kernels else 2)
        fan_in = inp * k ** (3 if depth_kernels else 2)
        state[f"{name}.weight"] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)

    def bn(name: str, channels: int) -> None:
        state[f"{name}.weight"] = 1 + 0.1 * torch.randn(channels, generator=gen)
        state[f"{name}.bias"] = 0.1 * torch.randn(channels, generator=gen)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(channels, generator=gen)
        state[f"{name}.running_var"] = 0.5 + torch.rand(channels, generator=gen)
        state[f"{name}.num_batches_tracked"] = torch.tensor(1000)

    conv("conv1", 64, in_channels, 7)
    bn("bn1", 64)
    inplanes = 64
    for index, (planes, blocks) in enumerate(zip(WIDTHS, layers)):
        stride = 1 if index == 0 else 2
        for b in range(blocks):
            prefix = f"layer{index + 1}.{b}"
            if block == "basic":
                conv(f"{prefix}.conv1", planes, inplanes, 3)
                bn(f"{prefix}.bn1", planes)
                conv(f"{prefix}.conv2", planes, planes, 3)
                bn(f"{prefix}.bn2", planes)
                out = planes
            else:
                conv(f"{prefix}.conv1", planes, inplanes, 1)
                bn(f"{prefix}.bn1", planes)
                conv(f"{prefix}.conv2", planes, planes, 3)
                bn(f"{prefix}.bn2", planes)
                conv(f"{prefix}.conv3", planes * 4, planes, 1)
                bn(f"{prefix}.bn3", planes * 4)
                out = planes * 4
            if b == 0 and (stride != 1 or inplanes != out) and shortcut == "B":
                conv(f"{prefix}.downsample.0", out, inplanes, 1)
                if downsample_bias:
                    state[f"{prefix}.downsample.0.bias"] = torch.zeros(out)
                bn(f"{prefix}.downsample.1", out)
            inplanes = out
    state["fc.weight"] = torch.randn(num_classes, inplanes, generator=gen) / math.sqrt(inplanes)
    state["fc.bias"] = 0.1 * torch.randn(num_classes, generator=gen)
    return state


