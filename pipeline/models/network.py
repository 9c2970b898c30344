"""The bare network: MONAI's ResNet in torchvision's ImageNet layout, 2D or 3D.

The layout is torchvision's (7x7 stride-2 stem, max-pool, 1x1-conv shortcut without
bias) so that torchvision's checkpoints load strictly. It matters: MONAI's defaults
(stem stride 1, shortcut with bias) either refuse those keys or, worse, accept them and
give different features. In 3D the stem is ``7 x 7 x stem_kernel_depth`` with stride
``s x s x stem_stride_depth``: scans are usually thinner along depth than in-plane. The
in-plane stride ``s`` is 2 as in torchvision; 1 (MONAI's default) keeps twice the
resolution per axis through the network, for small inputs (a 32^3 volume, a 28^2
image) that stride 2 and the max-pool would shrink to a few cells. The stride does not
change any weight's shape, so pretrained weights load either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monai.networks import nets
from monai.networks.nets import ResNet
from torch import nn

from pipeline.rules import ARCHS

#: MONAI's constructor of each architecture in :data:`pipeline.rules.ARCHS` (same names).
CONSTRUCTORS: dict[str, Callable[..., ResNet]] = {arch: getattr(nets, arch) for arch in ARCHS}
HEAD_MODULE = "fc"
STEM_KERNEL = 7


@dataclass(frozen=True)
class NetworkLayout:
    """Everything that fixes a ResNet's keys and shapes (the model file's ``network`` entry).

    Attributes:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        spatial_dims: 2 for images ``(B, C, H, W)``, 3 for volumes ``(B, C, H, W, D)``.
        in_channels: input channels.
        num_classes: logits per sample (the head's size).
        stem_kernel: stem kernel size per spatial axis.
        stem_stride: stem stride per spatial axis.
        shortcut_type: MONAI ``shortcut_type``: ``A`` parameter-free, ``B`` 1x1 conv + BN.
        bias_downsample: whether the shortcut conv carries a bias.
    """

    arch: str
    spatial_dims: int
    in_channels: int
    num_classes: int
    stem_kernel: tuple[int, ...]
    stem_stride: tuple[int, ...]
    shortcut_type: str
    bias_downsample: bool


def stem_shape(
    spatial_dims: int, kernel_depth: int, stride_depth: int, stride: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Stem kernel and stride per spatial axis; ``stride`` is in-plane, the depth settings apply in 3D only."""
    if spatial_dims == 2:
        return (STEM_KERNEL, STEM_KERNEL), (stride, stride)
    return (STEM_KERNEL, STEM_KERNEL, kernel_depth), (stride, stride, stride_depth)


def build_network(layout: NetworkLayout) -> ResNet:
    """The ResNet ``layout`` describes, with MONAI's random initialisation."""
    return CONSTRUCTORS[layout.arch](
        spatial_dims=layout.spatial_dims,
        n_input_channels=layout.in_channels,
        num_classes=layout.num_classes,
        conv1_t_size=layout.stem_kernel,
        conv1_t_stride=layout.stem_stride,
        no_max_pool=False,
        shortcut_type=layout.shortcut_type,
        bias_downsample=layout.bias_downsample,
        feed_forward=True,
    )


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of ``model.fc``, the head that :func:`pipeline.models.build_backbone` sizes."""
    return list(getattr(model, HEAD_MODULE).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``model`` outside its head, in registration order."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]
