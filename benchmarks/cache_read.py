"""Host-side cost of one training batch from the cache: batch reads against per-sample reads.

Times, in one run and on the same shuffled order over one cache file:

- **per sample + collate**: the usual ``Dataset.__getitem__`` that reads one volume
  into its own array, then ``default_collate`` stacking the batch (one more copy);
- **batch read** (the project's ``CachedDataset.__getitems__``): each volume read with
  ``preadv`` straight into its row of one batch buffer, runs of consecutive indices in
  one call.

Both read through the kernel page cache (the file is read once first, so neither pays
for the disk). This is the work the training process does per step when the cache is
streamed with no loader workers; with the cache held on a GPU (``train.device_cache``)
the host does none of it. The last line is one JSON object.

Usage::

    python benchmarks/cache_read.py [--size 96] [--batch 16] [--cohort 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import CachedSplit, CacheWriter, open_split  # noqa: E402
from pipeline.data import CachedDataset  # noqa: E402


def per_sample(split: CachedSplit, fd: int, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One volume into its own array, as a plain ``__getitem__`` would read it."""
    out = np.empty(split.images.shape[1:], dtype=split.images.dtype)
    os.preadv(fd, [memoryview(out).cast("B")], int(split.images.offset) + i * out.nbytes)
    return torch.from_numpy(out), torch.tensor(float(split.labels[i])), i


def epoch_seconds(read_batch, order: list[int], batch: int) -> float:  # noqa: ANN001
    start = time.perf_counter()
    for s in range(0, len(order), batch):
        read_batch(order[s : s + batch])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96, help="cube edge, voxels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cohort", type=int, default=256, help="volumes in the cache file")
    parser.add_argument("--rounds", type=int, default=3, help="alternating epochs of each; best kept")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cache_read_") as tmp:
        cache = Path(tmp)
        writer = CacheWriter(cache, "train", args.cohort, (args.size,) * 3, channels=1)
        rng = np.random.default_rng(0)
        for i in range(args.cohort):
            writer.add(rng.random((1,) + (args.size,) * 3, dtype=np.float32),
                       {"patient_id": f"p{i}", "series_key": f"s{i}", "label": i % 2})
        writer.close(("patient_id", "series_key", "label"))
        split = open_split(cache, "train")
        dataset = CachedDataset(split)
        fd = os.open(split.images.filename, os.O_RDONLY)
        paths = {
            "per sample + collate": lambda idx: default_collate([per_sample(split, fd, i) for i in idx]),
            "batch read (project)": dataset.__getitems__,
        }
        # a run of consecutive rows (one read), then a descending tail (one read each)
        head = args.batch // 2
        check_order = list(range(head)) + list(range(head, min(args.batch, args.cohort)))[::-1]
        a, b = (paths[name](check_order) for name in paths)
        assert all(torch.equal(u, v) for u, v in zip(a, b)), "the two paths must return the same batch"
        generator = torch.Generator().manual_seed(0)
        epoch_seconds(paths["batch read (project)"], list(range(args.cohort)), args.batch)  # page cache warm
        best = {name: float("inf") for name in paths}
        for _ in range(args.rounds):
            order = torch.randperm(args.cohort, generator=generator).tolist()
            for name, read in paths.items():
                best[name] = min(best[name], epoch_seconds(read, order, args.batch))
        os.close(fd)

    sps = {name: args.cohort / seconds for name, seconds in best.items()}
    mb = args.size**3 * 2 / 2**20
    print(f"cache of {args.cohort} float16 volumes of {args.size}^3 ({mb:.2f} MB each), batch {args.batch}, "
          f"shuffled, best of {args.rounds}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    for name, rate in sps.items():
        print(f"{name:<22} {rate:9.1f} volumes/s  {rate * mb / 1024:6.2f} GB/s")
    ratio = sps["batch read (project)"] / sps["per sample + collate"]
    print(f"ratio batch read / per sample: {ratio:.2f}x")
    print(json.dumps({"size": args.size, "batch": args.batch, "cohort": args.cohort,
                      "per_sample_sps": round(sps["per sample + collate"], 1),
                      "batch_read_sps": round(sps["batch read (project)"], 1), "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
