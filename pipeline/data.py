"""LightningDataModule over the memory-mapped cache.

It only reads what ``preprocess`` wrote; it never splits, never decodes DICOM or NIfTI.
A batch is read straight into one buffer (no per-sample arrays, no collate copy).
On a GPU whose free memory holds the training and validation splits, both are copied
there once and every batch is a gather on the device (``device_cache``): the host then
reads nothing per step, and its memory stays flat whatever the cohort.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from pipeline.cache import CACHE_DTYPE, CachedSplit, CacheError, open_split
from pipeline.rules import check_device_cache
from pipeline.schema.tables import PARTS
from pipeline.seeds import epoch_seed

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Share of the GPU's free memory that ``device_cache: auto`` may fill; the rest is left
# to activations, which for a 3D ResNet at batch 16 of 96^3 take several GB.
DEVICE_CACHE_SHARE = 0.25
_UPLOAD_CHUNK_BYTES = 64 * 2**20  # host staging buffer when copying a split to the device


class CachedDataset(Dataset):
    """Samples of one cached split as ``(image, label, index)``; batches via ``__getitems__``.

    ``image`` stays float16 (1, *roi): it is cast on the device after the transfer,
    which halves host-to-device traffic. ``index`` lets the model de-duplicate the
    padded samples a ``DistributedSampler`` adds under DDP.

    Samples are read from the ``.npy`` file with ``os.preadv`` rather than through the
    memory map: pages touched through a map stay in the process's resident set, so
    one epoch over 1,000 volumes of 96^3 showed 2.3 GB RSS, growing with the cohort,
    which a scheduler enforcing RSS limits (Slurm) kills. ``pread`` goes through the
    kernel page cache (still shared, still reclaimable) and the process keeps only the
    batch (benchmarks/README.md). ``pread`` has no file position, so forked loader
    workers can share the descriptor.

    Args:
        split: the memory-mapped split.
        resident: the whole split already on a device, (N, 1, *roi) float16; batches are
            then gathered there instead of read from the file.
        pin: read batches into page-locked memory, so the copy to a GPU is a DMA with
            no staging copy (only in the process that owns the GPU, not in loader workers).
    """

    def __init__(self, split: CachedSplit, *, resident: torch.Tensor | None = None, pin: bool = False) -> None:
        if split.images.dtype != CACHE_DTYPE:  # offsets and buffers below are float16
            raise CacheError(
                f"cache split arrays must be {np.dtype(CACHE_DTYPE).name}; got {split.images.dtype}. The cache "
                "was not written by this version's preprocess: re-run it (dvc repro -f preprocess)."
            )
        if resident is not None and tuple(resident.shape) != tuple(split.images.shape):
            raise CacheError(
                f"a device copy of the split must have the cache's shape {tuple(split.images.shape)}; "
                f"got {tuple(resident.shape)}. Re-create the DataModule after re-running preprocess."
            )
        self.split = split
        self.labels = torch.as_tensor(split.labels, dtype=torch.float32)
        self.resident = resident
        self._resident_labels = self.labels.to(resident.device) if resident is not None else None
        self.pin = pin
        self._path = getattr(split.images, "filename", None)  # None: an in-memory array
        self._offset = int(getattr(split.images, "offset", 0))
        self._fd: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # a descriptor does not survive pickling (spawn)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y, index = self.__getitems__([i])
        return x[0], y[0], int(index[0])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """The batch of ``indices`` in that order: images (B, 1, *roi), labels (B,), indices (B,)."""
        order = list(indices)
        index = torch.as_tensor(order, dtype=torch.long)
        if self.resident is not None:
            # A blocking copy would make the host wait for the GPU's queue on every step;
            # from page-locked memory the index goes by DMA and the host moves on.
            # The index is returned on the device too, so Lightning has nothing to copy.
            source = index.pin_memory() if self.resident.is_cuda else index
            on_device = source.to(self.resident.device, non_blocking=True)
            return self.resident.index_select(0, on_device), self._resident_labels.index_select(0, on_device), on_device
        images = self.split.images
        pin = self.pin and get_worker_info() is None
        out = torch.empty((len(index), *images.shape[1:]), dtype=torch.float16, pin_memory=pin)
        self.read_into(out.numpy(), order)
        return out, self.labels[index], index

    def release(self) -> None:
        """Drop the device copy (the loader that holds this dataset then streams)."""
        self.resident = self._resident_labels = None

    def read_into(self, out: np.ndarray, indices: Sequence[int]) -> None:
        """Read samples ``indices`` into consecutive rows of ``out``; runs of consecutive
        indices (validation, prediction, the device upload) take one system call each."""
        images = self.split.images
        if self._path is None:
            out[...] = images[np.asarray(indices)]
            return
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        sample_bytes = out[0].nbytes if len(out) else 0
        flat = memoryview(out).cast("B")
        start = 0
        while start < len(indices):
            stop = start + 1
            while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
                stop += 1
            want = (stop - start) * sample_bytes
            got = os.preadv(self._fd, [flat[start * sample_bytes : stop * sample_bytes]],
                            self._offset + indices[start] * sample_bytes)
            if got != want:
                raise CacheError(
                    f"cache file {str(self._path)!r} must hold {len(images)} samples of {sample_bytes} bytes; reading "
                    f"samples {indices[start]}..{indices[stop - 1]} returned {got} of {want} bytes. The cache is "
                    "truncated: re-run preprocess (dvc repro -f preprocess)."
                )
            start = stop


def copy_to_device(dataset: CachedDataset, device: torch.device) -> torch.Tensor:
    """The whole split as one float16 tensor on ``device``, staged in small host chunks
    so host memory never holds more than one chunk."""
    images = dataset.split.images
    try:
        resident = torch.empty(images.shape, dtype=torch.float16, device=device)
    except torch.cuda.OutOfMemoryError as error:
        free = torch.cuda.mem_get_info(device)[0] / 2**30
        raise CacheError(
            f"train.device_cache: true must fit the split on {device}; it needs {images.nbytes / 2**30:.2f} GiB "
            f"and {free:.2f} GiB are free. Set train.device_cache: auto (holds it only when it fits) or false."
        ) from error
    per_chunk = max(1, _UPLOAD_CHUNK_BYTES // max(1, images[0].nbytes)) if len(images) else 1
    staging = torch.empty((min(per_chunk, len(images)), *images.shape[1:]), dtype=torch.float16,
                          pin_memory=device.type == "cuda")
    for start in range(0, len(images), per_chunk):
        stop = min(start + per_chunk, len(images))
        dataset.read_into(staging.numpy()[: stop - start], range(start, stop))
        resident[start:stop].copy_(staging[: stop - start])  # blocking: the staging buffer is reused next
    return resident


def choose_placement(device_cache: bool | str, device_type: str, nbytes: int, free_bytes: int | None) -> str:
    """``"device"`` or ``"stream"`` for the fit splits (``nbytes`` together).

    ``"auto"`` holds them on a CUDA device when they fill at most ``DEVICE_CACHE_SHARE``
    of its ``free_bytes``. Not on a CPU: there the "device" is RAM, which would then grow
    with the cohort, and the page cache already serves the file at memory speed.
    """
    if device_cache is True:
        return "device"
    if device_cache is False or device_type != "cuda" or free_bytes is None:
        return "stream"
    return "device" if nbytes <= DEVICE_CACHE_SHARE * free_bytes else "stream"


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` drawn from the seed and the epoch number alone.

    Lightning calls ``set_epoch`` before every training epoch. Because nothing carries
    over from one epoch's draw to the next, a run resumed from a checkpoint at epoch k
    trains epoch k on the order an uninterrupted run uses there; a generator shared
    across epochs would restart at the first epoch's order after a resume. The order
    does not depend on loader workers or on where the cache is held either.
    """

    def __init__(self, n: int, *, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # noqa: ANN204 - an iterator of ints, as Sampler declares
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=order).tolist())


def _already_batched(batch: Batch) -> Batch:
    """``collate_fn`` for ``__getitems__``, which returns the finished batch."""
    return batch


class CachedDataModule(pl.LightningDataModule):
    """Train/val/test loaders over ``CACHE_DIR``.

    Args:
        cache_dir: folder written by ``preprocess``.
        batch_size: samples per batch.
        num_workers: loader processes; 0 reads in the main process, which is enough for
            a memory-mapped float16 cache on CPU. Unused when the splits are held on the device.
        seed: seeds the shuffling generator.
        device_cache: hold the train and val splits on the training device and gather
            batches there (``True``, ``False`` or ``"auto"``, as ``train.device_cache``;
            anything else is a ``ConfigError``). ``"auto"``: on a CUDA device when both fit in
            ``DEVICE_CACHE_SHARE`` of its free memory; ``True``: always (on a CPU that
            means in RAM, which then grows with the cohort); ``False``: stream from the file.
        device: where batches go when no Trainer is attached (benchmarks); with a
            Trainer, its root device.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        *,
        batch_size: int,
        num_workers: int,
        seed: int,
        device_cache: bool | str,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        check_device_cache("device_cache", device_cache)
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.device_cache = device_cache
        self.device = torch.device(device)
        self.splits: dict[str, CachedSplit] = {}
        self._resident: dict[str, torch.Tensor] = {}
        self._holding: list[CachedDataset] = []  # datasets handed to loaders with a device copy
        self._placement: str | None = None  # "device" or "stream", decided at the first fit loader

    def setup(self, stage: str | None = None) -> None:
        for part in PARTS:
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

    @property
    def placement(self) -> str | None:
        """``"device"`` when the fit splits are held on the device, ``"stream"`` when read
        from the file, None before the first loader."""
        return self._placement

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else self.device

    def _decide(self, device: torch.device) -> str:
        nbytes = sum(self.splits[p].images.nbytes for p in ("train", "val"))
        auto = self.device_cache == "auto" and device.type == "cuda"
        free = torch.cuda.mem_get_info(device)[0] if auto else None
        placement = choose_placement(self.device_cache, device.type, nbytes, free)
        if self.trainer is None or self.trainer.is_global_zero:
            where = f"held on {device}" if placement == "device" else "streamed from the cache file"
            reason = f"; {free / 2**30:.1f} GiB free there (train.device_cache: auto)" if auto else ""
            idle = "; no loader workers needed" if placement == "device" and self.num_workers > 0 else ""
            print(f"train: train+val cache of {nbytes / 2**30:.2f} GiB {where}{reason}{idle}")
        return placement

    def _fit_dataset(self, part: str) -> CachedDataset:
        device = self._device()
        if self._placement is None:
            self._placement = self._decide(device)
        if self._placement == "device":
            if part not in self._resident:
                self._resident[part] = copy_to_device(self.dataset(part), device)
            dataset = CachedDataset(self.splits[part], resident=self._resident[part])
            self._holding.append(dataset)
            return dataset
        return CachedDataset(self.splits[part], pin=device.type == "cuda" and self.num_workers == 0)

    def _loader(self, dataset: CachedDataset, *, shuffle: bool) -> DataLoader:
        workers = 0 if dataset.resident is not None else self.num_workers
        # The order has a generator of its own (EpochShuffle), apart from the loader's:
        # torch draws the workers' base seed from the loader's generator each time an
        # epoch's iterator starts (once in all with persistent workers), so one shared
        # generator would make the shuffle depend on num_workers, and on device_cache,
        # which runs without workers.
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(dataset), seed=self.seed) if shuffle else None,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=workers,
            persistent_workers=workers > 0,
            # Batches read in the main process are page-locked already (``pin``).
            pin_memory=workers > 0 and torch.cuda.is_available(),
            collate_fn=_already_batched,
            # A training batch of one sample stops BatchNorm ("Expected more than 1 value per
            # channel when training"): a train part of 4k + 1 samples at batch 4, as a
            # cross-validation fold easily has, crashed the run in its first epoch. Only
            # that last sample goes (a different one each epoch, the order being shuffled);
            # any other remainder is kept, so other runs are unchanged.
            drop_last=shuffle and len(dataset) % self.batch_size == 1,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._fit_dataset("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._fit_dataset("val"), shuffle=False)

    def predict_loader(self, part: str) -> DataLoader:
        return self._loader(CachedDataset(self.splits[part], pin=torch.cuda.is_available()), shuffle=False)

    def teardown(self, stage: str | None = None) -> None:
        # The Trainer's loops still hold the loaders, and through them the datasets:
        # the device memory comes back only once those datasets drop their copy too.
        for dataset in self._holding:
            dataset.release()
        self._holding.clear()
        self._resident.clear()
