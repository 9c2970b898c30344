"""LightningDataModule over the memory-mapped cache.

It only reads what ``preprocess`` wrote; it never splits, never decodes DICOM or NIfTI,
and holds no volume in RAM beyond the batch being assembled.
"""

from __future__ import annotations

import os
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

    A sample is read from the ``.npy`` file with ``os.preadv`` rather than through the
    memory map: pages touched through a map stay in the process's resident set, so
    one epoch over 1,000 volumes of 96^3 showed 2.3 GB RSS, growing with the cohort,
    which a scheduler enforcing RSS limits (Slurm) kills. ``pread`` goes through the
    kernel page cache (still shared, still reclaimable) and the process keeps only the
    batch (benchmarks/README.md). ``pread`` has no file position, so forked loader
    workers can share the descriptor.
    """

    def __init__(self, split: CachedSplit) -> None:
        self.split = split
        self.labels = split.labels
        self._path = getattr(split.images, "filename", None)  # None: an in-memory array
        self._offset = int(getattr(split.images, "offset", 0))
        self._fd: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # a descriptor does not survive pickling (spawn)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def _read(self, i: int) -> np.ndarray:
        images = self.split.images
        if self._path is None:
            return np.array(images[i])
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        out = np.empty(images.shape[1:], dtype=images.dtype)
        got = os.preadv(self._fd, [memoryview(out).cast("B")], self._offset + i * out.nbytes)
        if got != out.nbytes:
            raise CacheError(
                f"cache file {self._path!r} must hold {len(images)} samples of {out.nbytes} bytes; sample {i} "
                f"returned {got} bytes. The cache is truncated: re-run preprocess (dvc repro -f preprocess)."
            )
        return out

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = torch.from_numpy(self._read(i))
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
