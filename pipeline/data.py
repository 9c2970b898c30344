"""LightningDataModule over the memory-mapped cache.

It only reads what ``preprocess`` wrote; it never splits, never decodes DICOM or NIfTI,
and holds no volume in RAM beyond the batch being assembled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.cache import CacheError, CachedSplit, open_split


class CachedDataset(Dataset):
    """Samples of one cached split as ``(image, label, index)``.

    ``image`` stays float16 (1, *roi): it is cast on the device after the transfer,
    which halves host-to-device traffic. ``index`` lets the model de-duplicate the
    padded samples a ``DistributedSampler`` adds under DDP.
    """

    def __init__(self, split: CachedSplit) -> None:
        self.split = split
        self.labels = split.labels

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = torch.from_numpy(np.array(self.split.images[i]))  # copy: the memory map is read-only
        return image, torch.tensor(self.labels[i], dtype=torch.float32), i


class CachedDataModule(pl.LightningDataModule):
    """Train/val/test loaders over ``CACHE_DIR``.

    Args:
        cache_dir: folder written by ``preprocess``.
        batch_size: samples per batch.
        num_workers: loader processes; 0 reads in the main process, which is enough for
            memory-mapped float16 on CPU.
        seed: seeds the shuffling generator.
    """

    def __init__(self, cache_dir: str | Path, *, batch_size: int, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.splits: dict[str, CachedSplit] = {}

    def setup(self, stage: str | None = None) -> None:
        for part in ("train", "val", "test"):
            if part not in self.splits:
                self.splits[part] = open_split(self.cache_dir, part)
        for part in ("train", "val"):
            labels = self.splits[part].labels
            if len(labels) == 0 or labels.min() == labels.max():
                raise CacheError(
                    f"the {part!r} split must hold both classes to train and select a model by AUC; got "
                    f"{len(labels)} samples with labels {sorted(set(labels.tolist()))}. "
                    "Add patients, or change split.val_fraction / the manifest's split column."
                )

    def dataset(self, part: str) -> CachedDataset:
        return CachedDataset(self.splits[part])

    def _loader(self, part: str, *, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            self.dataset(part),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def predict_loader(self, part: str) -> DataLoader:
        return self._loader(part, shuffle=False)
