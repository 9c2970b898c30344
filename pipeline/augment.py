"""Random augmentation of whole batches on the training device.

Running the random steps per sample in CPU workers is what starves a GPU; here they run
on the batch, on whatever device it is on, after the transfer. The deterministic steps
are cached once by ``preprocess`` (:mod:`pipeline.transforms`).
"""

from __future__ import annotations

import torch

from pipeline.seeds import epoch_seed


class BatchAugment(torch.nn.Module):
    """Random flips, intensity scale/shift and Gaussian noise on a whole batch.

    Runs on whatever device the batch is on, so augmentation costs the GPU microseconds
    instead of costing CPU workers milliseconds per sample. Draws come from its own
    ``torch.Generator`` seeded from the config, so a run is repeatable.

    Args:
        spatial_dims: 2 or 3; flips are drawn per sample for each spatial axis.
        seed: generator seed (add the DDP rank so ranks draw differently).
        max_shift: largest translation per spatial axis, voxels (``train.augment_shift_voxels``;
            0: none); each sample moves by its own random integer offset, zero-filled. A
            lesion can sit anywhere, so translations are label-preserving, and they stop a
            small cohort from being memorised by the exact position of its anatomy.
        flip_prob: probability of flipping each axis.
        scale: intensity multiplied by ``1 + U(-scale, scale)``.
        shift: intensity shifted by ``U(-shift, shift)``.
        noise_std: standard deviation of added Gaussian noise (intensity units, [0, 1]).
    """

    def __init__(
        self,
        spatial_dims: int,
        *,
        seed: int,
        max_shift: int,
        flip_prob: float = 0.5,
        scale: float = 0.1,
        shift: float = 0.05,
        noise_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.seed = seed
        self.flip_prob = flip_prob
        self.scale = scale
        self.shift = shift
        self.noise_std = noise_std
        self.max_shift = max_shift
        self.epoch = 0
        self._generator: torch.Generator | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's augmentations from (seed, epoch) alone.

        Called at the start of every training epoch, so a run resumed from a checkpoint
        augments each remaining epoch exactly as an uninterrupted run does.
        """
        self.epoch = epoch
        self._generator = None

    def _gen(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(epoch_seed(self.seed, self.epoch))
        return self._generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Augment ``x`` of shape (B, C, *spatial); returns a new tensor of the same shape."""
        g = self._gen(x.device)
        b = x.shape[0]
        bcast = (b,) + (1,) * (x.ndim - 1)
        for axis in range(2, 2 + self.spatial_dims):
            flip = torch.rand(b, device=x.device, generator=g) < self.flip_prob
            x = torch.where(flip.view(bcast), x.flip(axis), x)
        scale = 1 + (torch.rand(b, device=x.device, generator=g) * 2 - 1) * self.scale
        shift = (torch.rand(b, device=x.device, generator=g) * 2 - 1) * self.shift
        x = x * scale.view(bcast).to(x.dtype) + shift.view(bcast).to(x.dtype)
        if self.noise_std > 0:
            x = x + torch.randn(x.shape, device=x.device, generator=g, dtype=x.dtype) * self.noise_std
        if self.max_shift > 0:
            x = self._shift(x, g)
        return x

    def _shift(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Translate each sample by its own integer offset, filling with zeros (air).

        One gather per axis on the device: reading the offsets back to Python (``tolist``)
        would make the host wait for the GPU's queue on every training step.
        """
        s = self.max_shift
        out = torch.nn.functional.pad(x, [s, s] * self.spatial_dims)
        offsets = torch.randint(0, 2 * s + 1, (x.shape[0], self.spatial_dims), device=x.device, generator=g)
        for axis, n in enumerate(x.shape[2:]):
            dim = 2 + axis
            index = torch.arange(n, device=x.device) + offsets[:, axis : axis + 1]  # (B, n)
            view = [x.shape[0]] + [1] * (out.ndim - 1)
            view[dim] = n
            size = list(out.shape)
            size[dim] = n
            out = torch.gather(out, dim, index.view(view).expand(size))
        return out
