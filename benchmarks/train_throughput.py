"""Training throughput: the model's compute limit, the project's path, MONAI's tutorial loop.

One run prints, for the same model input size, batch and precision:

(a) compute limit: forward, backward and AdamW step of the project's backbone
    (:func:`pipeline.models.build_backbone`, ImageNet stem layout) on a batch already on
    the device, in a plain loop;
(b) the project's path: a cache written with :class:`pipeline.cache.CacheWriter`,
    streamed by :class:`pipeline.data.CachedDataModule` into
    :class:`pipeline.system.ClassifierSystem` (cast and ``BatchAugment`` on the device)
    under a Lightning ``Trainer`` for a fixed number of steps;
(c) MONAI's tutorial loop (``3d_classification/densenet_training_dict.py`` with MONAI's
    default ``resnet18(spatial_dims=3)``): a ``monai.data.Dataset`` with ``LoadImaged``,
    ``ScaleIntensityd``, ``Resized``, ``RandRotate90d`` that reads ``.nii.gz`` files every
    epoch, a ``DataLoader`` with ``min(4, cpus)`` workers, cross-entropy over 2 logits;
(d) the data path alone: one full epoch of (b)'s loader over the whole cohort, cast and
    augmented, without the model: the rate the cache can feed and its resident memory.

On a GPU, ``train.device_cache: auto`` holds the cohort in device memory when it fits;
(b) is then also run with the cache streamed from the file, and both are printed.

Each part runs in its own child process, so the peak resident memory reported for a part
(``VmHWM`` of that process; loader workers of (c) reported apart) is its own. Throughputs are
samples per second after ``--warmup`` steps. The last line is one JSON object.

Usage::

    python benchmarks/train_throughput.py --quick           # CPU: 1x64^3, batch 4, < 3 min
    python benchmarks/train_throughput.py                   # GPU: 1x96^3, batch 16, bf16

``--precision auto`` (the default) trains in bf16-mixed where the GPU or CPU computes bf16
natively and in fp32 on a CPU without it (AVX2 only), where bf16 is emulated and many times
slower; the choice and its reason are printed and recorded in the JSON line.
    python benchmarks/train_throughput.py --cohort 1000     # RSS over 1,000 volumes
    python benchmarks/train_throughput.py --knobs           # (a) per model knob
    python benchmarks/train_throughput.py --device-cache false  # (b) and (d) streamed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setup:
    """What every part shares: one model input size, batch and precision."""

    device: str
    size: int
    batch: int
    precision: str
    channels_last: bool
    compile: bool
    steps: int
    warmup: int
    cohort: int
    deterministic: bool  # pipeline.training asks Lightning for deterministic algorithms on CPU
    dims: int = 3  # 3: volumes size^3; 2: images size^2 (radiographs)
    arch: str = "resnet18"
    stem: str = "imagenet"  # "imagenet" (project) or "monai" (MONAI's default stride-1 stem)
    tutorial_workers: int = min(4, os.cpu_count() or 1)
    loader_workers: int = 0  # (b)'s DataLoader workers, as train.num_workers
    device_cache: bool | str = "auto"  # as train.device_cache: "auto" holds the cohort on a GPU
    seed: int = 0


# ---------------------------------------------------------------------------- helpers


def peak_rss_mb() -> float:
    """Peak resident set of this process since it started, MB (``VmHWM``).

    Not ``ru_maxrss``: Linux carries the parent's high-water mark across ``fork`` and
    ``exec``, so a child would report the memory of the driver that wrote the cache.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def workers_peak_rss_mb() -> float:
    """Largest ``ru_maxrss`` among finished children (loader workers), MB.

    Forked workers share the parent's pages, and this figure counts those shared pages
    again: an upper bound, reported apart from the main process.
    """
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def autocast(device: str, precision: str):  # noqa: ANN201 - a context manager
    import torch

    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None)


def build_model(setup: Setup):  # noqa: ANN201
    """The backbone of part (a)/(b) (``stem="imagenet"``), or MONAI's default stem."""
    if setup.stem == "monai":
        from monai.networks.nets import resnet18

        return resnet18(spatial_dims=setup.dims, n_input_channels=1, num_classes=1)
    from pipeline.models import build_backbone

    # The stem of params.yaml's model section (7 along depth, stride 2), random weights.
    return build_backbone(arch=setup.arch, spatial_dims=setup.dims, in_channels=1, num_classes=1, weights="none",
                          weights_sha256=None, stem_kernel_depth=7, stem_stride_depth=2, stem_stride=2).model


def system_for(setup: Setup, *, augment: bool):  # noqa: ANN201
    """The project's ClassifierSystem around the model, with the settings of ``train``."""
    from pipeline.system import ClassifierSystem
    from pipeline.augment import BatchAugment

    model = build_model(setup)
    if setup.compile:
        model.compile()
    # params.yaml's backbone_lr_scale (1.0); random weights need no normalisation; no shift.
    return ClassifierSystem(
        model, lr=1e-4, weight_decay=1e-4, max_epochs=1, backbone_lr_scale=1.0, normalize=None,
        augment=BatchAugment(setup.dims, seed=setup.seed, max_shift=0) if augment else None,
        channels_last=setup.channels_last,
    )


# ---------------------------------------------------------------------------- parts


def part_compute(setup: Setup, _: Path) -> dict[str, Any]:
    """(a) forward + backward + AdamW on a batch that never leaves the device."""
    import torch

    torch.manual_seed(setup.seed)
    torch.use_deterministic_algorithms(setup.deterministic)
    system = system_for(setup, augment=False).to(setup.device).train()
    optimizer = system.configure_optimizers()["optimizer"]
    scaler = torch.amp.GradScaler(setup.device, enabled=setup.precision == "16-mixed")
    x = torch.rand(setup.batch, 1, *(setup.size,) * setup.dims, device=setup.device)
    if setup.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d if setup.dims == 3 else torch.channels_last)
    y = (torch.arange(setup.batch, device=setup.device) % 2).float()

    def step() -> None:
        with autocast(setup.device, setup.precision):
            loss = system.loss(system._logits(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(setup.warmup):
        step()
    synchronize(setup.device)
    start = time.perf_counter()
    for _ in range(setup.steps):
        step()
    synchronize(setup.device)
    return {"sps": setup.batch * setup.steps / (time.perf_counter() - start)}


def part_pipeline(setup: Setup, cache: Path) -> dict[str, Any]:
    """(b) CachedDataModule + ClassifierSystem under a Trainer, fixed number of steps."""
    import pytorch_lightning as pl

    from pipeline.data import CachedDataModule

    class StepClock(pl.Callback):
        """Wall time from the end of the last warm-up step to the end of the last step."""

        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if trainer.global_step in (setup.warmup, setup.warmup + setup.steps):
                synchronize(setup.device)
                now = time.perf_counter()
                self.start, self.end = (now, self.end) if trainer.global_step == setup.warmup else (self.start, now)

    pl.seed_everything(setup.seed, workers=True, verbose=False)
    clock = StepClock()
    trainer = pl.Trainer(
        max_steps=setup.warmup + setup.steps,
        accelerator="gpu" if setup.device == "cuda" else "cpu",
        devices=1,
        precision=setup.precision,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        deterministic=setup.deterministic,
    )
    data = CachedDataModule(cache, batch_size=setup.batch, num_workers=setup.loader_workers, seed=setup.seed,
                            device_cache=setup.device_cache)
    trainer.fit(system_for(setup, augment=True), datamodule=data)
    return {"sps": setup.batch * setup.steps / (clock.end - clock.start), "placement": data.placement}


def part_stream(setup: Setup, cache: Path) -> dict[str, Any]:
    """(d) one epoch of the project's loader over the whole cohort: cast and augment, no model.

    With the cohort held on the device, the time includes copying it there (``upload_s``).
    """
    from pipeline.data import CachedDataModule
    from pipeline.augment import BatchAugment

    data = CachedDataModule(cache, batch_size=setup.batch, num_workers=0, seed=setup.seed,
                            device_cache=setup.device_cache, device=setup.device)
    data.setup("fit")
    augment = BatchAugment(setup.dims, seed=setup.seed, max_shift=0)
    checksum, n = 0.0, 0
    synchronize(setup.device)
    start = time.perf_counter()
    loader = data.train_dataloader()
    upload = time.perf_counter() - start
    for x, _, _ in loader:
        x = augment(x.to(setup.device, non_blocking=True).float())
        checksum += float(x.flatten(1)[:, 0].sum())  # forces the work, and a sync per batch
        n += len(x)
    seconds = time.perf_counter() - start
    return {"sps": n / seconds, "samples": n, "cache_resident_mb": resident_mb_of(cache), "checksum": checksum,
            "placement": data.placement, "upload_s": upload}


def resident_mb_of(folder: Path) -> float | None:
    """MB of files under ``folder`` mapped into this process and resident (from smaps)."""
    smaps = Path("/proc/self/smaps")
    if not smaps.is_file():
        return None
    total_kb, inside = 0, False
    for line in smaps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5].startswith(str(folder))  # anonymous maps have no path
        elif inside and fields and fields[0] == "Rss:":
            total_kb += int(fields[1])
    return total_kb / 1024


def part_tutorial(setup: Setup, nifti_dir: Path) -> dict[str, Any]:
    """(c) MONAI's tutorial: Dataset over NIfTI files, transforms per sample in workers."""
    import torch
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import resnet18
    from monai.transforms import Compose, LoadImaged, RandRotate90d, Resized, ScaleIntensityd

    torch.manual_seed(setup.seed)
    files = sorted(nifti_dir.glob("*.nii.gz"))
    items = [{"img": str(f), "label": i % 2} for i, f in enumerate(files)]
    transforms = Compose([
        LoadImaged(keys=["img"], ensure_channel_first=True),
        ScaleIntensityd(keys=["img"]),
        Resized(keys=["img"], spatial_size=(setup.size,) * 3),
        RandRotate90d(keys=["img"], prob=0.8, spatial_axes=(0, 2)),
    ])
    loader = DataLoader(Dataset(items, transform=transforms), batch_size=setup.batch, shuffle=True,
                        num_workers=setup.tutorial_workers, pin_memory=setup.device == "cuda",
                        persistent_workers=setup.tutorial_workers > 0)
    model = resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).to(setup.device).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(setup.device, enabled=setup.precision == "16-mixed")
    step, start = 0, None
    while step < setup.warmup + setup.steps:
        for batch in loader:
            x, y = batch["img"].to(setup.device), batch["label"].to(setup.device)
            with autocast(setup.device, setup.precision):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            if step == setup.warmup:
                synchronize(setup.device)
                start = time.perf_counter()
            if step == setup.warmup + setup.steps:
                break
    synchronize(setup.device)
    return {"sps": setup.batch * setup.steps / (time.perf_counter() - start)}


PARTS = {"compute": part_compute, "pipeline": part_pipeline, "stream": part_stream, "tutorial": part_tutorial}


# ---------------------------------------------------------------------------- data


def write_cache(cache: Path, setup: Setup) -> None:
    """A cohort of ``setup.cohort`` synthetic float16 volumes, written as preprocess does."""
    from pipeline.cache import CacheWriter, write_meta

    rng = np.random.default_rng(setup.seed)
    roi = (setup.size,) * setup.dims
    counts = {"train": setup.cohort, "val": 4, "test": 4}
    for part, n in counts.items():
        writer = CacheWriter(cache, part, n, roi, channels=1)
        for i in range(n):
            volume = rng.random(roi, dtype=np.float32)[None]
            writer.add(volume, {"patient_id": f"p{part}{i}", "series_key": f"{part}-{i}", "label": i % 2})
        writer.close(("patient_id", "series_key", "label"))
    write_meta(cache, {"spatial_dims": setup.dims, "roi": list(roi), "pixdim": [1.5] * setup.dims, "in_channels": 1,
                       "counts": counts})


def write_nifti(folder: Path, setup: Setup, n: int) -> None:
    """``n`` int16 CT-like ``.nii.gz`` volumes at a native grid the tutorial resizes to ``size``^3."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(setup.seed)
    shape = (setup.size * 5 // 4, setup.size * 5 // 4, setup.size * 3 // 4)
    for i in range(n):
        hu = rng.normal(0, 300, shape).clip(-1024, 3071).astype(np.int16)
        nib.save(nib.Nifti1Image(hu, np.diag([1.2, 1.2, 2.0, 1.0])), str(folder / f"case{i:04d}.nii.gz"))


# ---------------------------------------------------------------------------- driver


def run_part(name: str, setup: Setup, data: Path) -> dict[str, Any]:
    """Run one part in a fresh interpreter; its resident memory is its own."""
    command = [sys.executable, __file__, "--part", name, "--setup", json.dumps(asdict(setup)), "--data", str(data)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"part {name!r} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def describe_device(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"CPU {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def choose_setup(args: argparse.Namespace) -> Setup:
    import torch

    from pipeline.precision import fast_precision

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device == "cuda"
    if args.quick:
        defaults = dict(size=64, batch=4, steps=12, warmup=2, cohort=64)
    elif gpu:
        defaults = dict(size=96, batch=16, steps=50, warmup=10, cohort=512)
    else:
        defaults = dict(size=96, batch=4, steps=8, warmup=2, cohort=64)
    chosen = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    return Setup(
        device=device,
        precision=args.precision if args.precision != "auto" else fast_precision(device, spatial_dims=args.dims)[0],
        # channels-last pays on NVIDIA tensor cores; on CPU it measured slower (README)
        channels_last=args.channels_last if args.channels_last is not None else gpu,
        compile=args.compile,
        deterministic=not gpu,  # as pipeline.training sets it
        dims=args.dims,
        arch=args.arch,
        loader_workers=args.loader_workers,
        device_cache={"auto": "auto", "true": True, "false": False}[args.device_cache],
        **chosen,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized run: 1x64^3, batch 4, a few steps")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--size", type=int, help="edge of the model input, voxels (pixels with --dims 2)")
    parser.add_argument("--dims", type=int, default=3, choices=(2, 3), help="3: volumes; 2: images, without (c)")
    parser.add_argument("--arch", default="resnet18", choices=("resnet18", "resnet34", "resnet50"))
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int, help="timed steps per part")
    parser.add_argument("--warmup", type=int, help="untimed steps first")
    parser.add_argument("--cohort", type=int, help="volumes in the cache (d streams them all)")
    parser.add_argument("--precision", default="auto", choices=("auto", "32", "bf16-mixed", "16-mixed"),
                        help="auto: bf16-mixed where the GPU or CPU computes bf16 natively, else fp32 on a CPU")
    parser.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction,
                        default=None, help="default: on for CUDA, off for CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone in (a) and (b)")
    parser.add_argument("--no-tutorial", dest="tutorial", action="store_false",
                        help="skip (c), e.g. when only a knob of (a) and (b) changes between runs")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of (a) and (b); best kept")
    parser.add_argument("--knobs", action="store_true", help="also time (a) for each model knob")
    parser.add_argument("--loader-workers", dest="loader_workers", type=int, default=0,
                        help="DataLoader workers of (b), as train.num_workers (default 0)")
    parser.add_argument("--device-cache", dest="device_cache", default="auto", choices=("auto", "true", "false"),
                        help="as train.device_cache: auto holds the cohort in GPU memory when it fits")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.part:  # child process: one part, one JSON line
        setup = Setup(**json.loads(args.setup))
        result = PARTS[args.part](setup, Path(args.data))
        print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1),
                          "workers_peak_rss_mb": round(workers_peak_rss_mb(), 1)}))
        return

    from pipeline.precision import cpu_capability, cpu_has_native_bf16, fast_precision

    setup = choose_setup(args)
    device_name = describe_device(setup.device)
    print(f"device: {device_name}")
    reason = fast_precision(setup.device, spatial_dims=setup.dims)[1] if args.precision == "auto" else "set by --precision"
    print(f"precision {setup.precision}: {reason}")
    print(f"{setup.arch}, input 1x{setup.size}^{setup.dims}, batch {setup.batch}, precision {setup.precision}, "
          f"channels_last {setup.channels_last}, compile {setup.compile}, deterministic {setup.deterministic}, "
          f"{setup.steps} timed steps after "
          f"{setup.warmup}; cohort {setup.cohort} volumes; tutorial workers {setup.tutorial_workers}")
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as tmp:
        cache, nifti = Path(tmp) / "cache", Path(tmp) / "nifti"
        write_cache(cache, setup)
        tutorial = args.tutorial and setup.dims == 3  # MONAI's tutorial is 3D; a 2D run times (a), (b), (d)
        if tutorial:
            write_nifti(nifti, setup, n=min(setup.cohort, setup.batch * (setup.warmup + setup.steps)))
        # (a) and (b) alternate and each keeps its best round, so a burst of load from
        # another process on a shared machine does not decide the ratio b/a.
        # When (b) held the cohort on the device, the same path streamed joins each round,
        # so the two are measured alike and show what holding it buys.
        rounds = []
        for _ in range(args.rounds):
            compute, pipeline = run_part("compute", setup, cache), run_part("pipeline", setup, cache)
            streamed = (run_part("pipeline", replace(setup, device_cache=False), cache)
                        if pipeline["placement"] == "device" else None)
            rounds.append((compute, pipeline, streamed))
        results = {
            "compute": max((r[0] for r in rounds), key=lambda r: r["sps"]),
            "pipeline": max((r[1] for r in rounds), key=lambda r: r["sps"]),
            **({"tutorial": run_part("tutorial", setup, nifti)} if tutorial else {}),
            "stream": run_part("stream", setup, cache),
        }
        if all(r[2] is not None for r in rounds):
            results["pipeline_streamed"] = max((r[2] for r in rounds), key=lambda r: r["sps"])
        print("rounds (a, b) samples/s: " + ", ".join(f"({a['sps']:.3f}, {b['sps']:.3f})" for a, b, _ in rounds))
        knobs = {}
        if args.knobs:
            variants = {
                "MONAI default stem (stride 1), fp32": replace(setup, stem="monai", precision="32",
                                                              channels_last=False, compile=False),
                "ImageNet stem (stride 2), fp32": replace(setup, precision="32", channels_last=False, compile=False),
                "ImageNet stem, bf16-mixed": replace(setup, precision="bf16-mixed", channels_last=False,
                                                     compile=False),
                "ImageNet stem, bf16-mixed, deterministic algorithms off": replace(
                    setup, precision="bf16-mixed", channels_last=False, compile=False, deterministic=False),
                "ImageNet stem, bf16-mixed, channels-last": replace(setup, precision="bf16-mixed",
                                                                    channels_last=True, compile=False),
                "ImageNet stem, bf16-mixed, channels-last, compile": replace(
                    setup, precision="bf16-mixed", channels_last=True, compile=True),
            }
            if setup.device != "cuda" and not setup.compile:  # minutes of compilation, slower on CPU (README)
                variants.pop("ImageNet stem, bf16-mixed, channels-last, compile")
            knobs = {name: run_part("compute", v, cache)["sps"] for name, v in variants.items()}

    a, b, d = (results[k]["sps"] for k in ("compute", "pipeline", "stream"))
    c = results["tutorial"]["sps"] if "tutorial" in results else None
    # OpenMP threads slow down many-fold when other processes share the cores: say so
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}; cores: {os.cpu_count()}")
    print(f"(a) compute limit (model alone)      {a:10.2f} samples/s   peak RSS {results['compute']['peak_rss_mb']:8.0f} MB")
    print(f"(b) project path (cache + Trainer)   {b:10.2f} samples/s   peak RSS {results['pipeline']['peak_rss_mb']:8.0f} MB"
          f" (cache {results['pipeline']['placement']})")
    if "pipeline_streamed" in results:
        streamed = results["pipeline_streamed"]
        print(f"    (b) with the cache streamed          {streamed['sps']:10.2f} samples/s   peak RSS "
              f"{streamed['peak_rss_mb']:8.0f} MB")
    if c is not None:
        print(f"(c) MONAI tutorial loop (NIfTI)      {c:10.2f} samples/s   peak RSS "
              f"{results['tutorial']['peak_rss_mb']:8.0f} MB")
    print(f"(d) data path alone, {setup.cohort} volumes {d:10.2f} samples/s   peak RSS {results['stream']['peak_rss_mb']:8.0f} MB"
          f" (cache {results['stream']['placement']}, placed in {results['stream']['upload_s']:.2f} s;"
          f" cache pages mapped: {results['stream']['cache_resident_mb']} MB)")
    print(f"b/a = {b / a:.3f}" + (f"   b/c = {b / c:.3f}" if c is not None else ""))
    for name, sps in knobs.items():
        print(f"knob  {name:<52} {sps:10.2f} samples/s")
    summary = {
        "device": device_name,
        "compute_limit_sps": round(a, 3),
        "pipeline_sps": round(b, 3),
        "monai_tutorial_sps": round(c, 3) if c is not None else None,
        "pipeline_vs_compute": round(b / a, 3),
        "pipeline_vs_tutorial": round(b / c, 3) if c is not None else None,
        "peak_rss_mb": results["pipeline"]["peak_rss_mb"],
        "data_path_sps": round(d, 3),
        "data_path_peak_rss_mb": results["stream"]["peak_rss_mb"],
        "cache_placement": results["pipeline"]["placement"],
        "pipeline_streamed_sps": round(results["pipeline_streamed"]["sps"], 3) if "pipeline_streamed" in results else None,
        "setup": asdict(setup),
        "precision_reason": reason,
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "knobs_sps": {k: round(v, 3) for k, v in knobs.items()},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
