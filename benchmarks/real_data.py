"""Real images: the pipeline against a plain MONAI training loop, same arrays, same run.

For each shared set (``../shared/data``, see its README) the script

1. writes the set as an export a hospital would hand over: PneumoniaMNIST as one CR
   DICOM file per radiograph (PatientID, StudyInstanceUID, ... set; the images were
   resized by MedMNIST, so no spacing tag is written and ingest assumes 1 mm and notes
   it), AdrenalMNIST3D as one NIfTI volume per case; plus a manifest with ``patient_id``,
   ``label``, ``path`` and the official ``split``;
2. runs the real stages on it, in order (``python -m pipeline.stages.ingest``, ``split``,
   ``preprocess``, ``train``) with a params file from ``configs/`` (``--set`` overrides
   keys), and scores the test rows of ``predictions.csv``;
3. trains the plain baseline below (:func:`plain_loop`) on the same uint8 arrays;
4. prints both test AUCs with DeLong 95% CIs per seed, their means, and times; the last
   line is one JSON object.

The plain loop is what a careful user writes in about 30 lines: MONAI
``resnet18(spatial_dims, n_input_channels=1, num_classes=1)`` from random weights
(MONAI's own stem, stride 1), images scaled by 1/255, random flips on every spatial
axis, AdamW lr 1e-3 (weight decay 1e-2, torch's default), cosine schedule over the
epochs, batch 32, BCE, and the epoch of best validation AUC kept for test. It is fixed:
change the pipeline's config, never this loop, to close a gap.

3D runs at 32^3 by default (``--size 32``: each 2x2x2 block averaged, before export,
so both arms see the same volumes): on a CPU, 64^3 takes hours; use ``--size 64`` on a GPU.

Usage::

    python benchmarks/real_data.py                         # both sets, 3 seeds
    python benchmarks/real_data.py --set-name pneumonia --quick --seeds 1
    python benchmarks/real_data.py --set-name pneumonia --set train.augment=false
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.metrics import roc_auc_ci  # noqa: E402

DATA_DIR = ROOT.parent / "shared" / "data"
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class RealSet:
    """One shared set: its file, dimensionality, the config it runs with, its export."""

    name: str
    file: str
    spatial_dims: int
    config: str
    export: str  # "dicom_cr" or "nifti"


SETS = {
    "pneumonia": RealSet("pneumonia", "pneumoniamnist.npz", 2, "configs/radiographs-2d-cpu.yaml", "dicom_cr"),
    "adrenal": RealSet("adrenal", "adrenalmnist3d_64.npz", 3, "configs/ct-3d-small.yaml", "nifti"),
}
#: ``--quick``: per-part sample sizes (val and test stay large enough for a stable AUC).
QUICK_SIZES = {"train": 600, "val": 300, "test": 400}


def load_arrays(
    spec: RealSet, *, sizes: dict[str, int] | None, size: int, data_dir: Path = DATA_DIR
) -> dict[str, tuple]:
    """``part -> (uint8 images (N, *spatial), int labels (N,))``, subsampled and resized.

    Args:
        spec: the set.
        sizes: images kept per part (a fixed random sample, seed 0), or None for all.
        size: 3D edge length; 2x2x2 blocks are averaged to reach it.
        data_dir: folder holding the ``.npz`` files.
    """
    path = data_dir / spec.file
    if not path.is_file():
        raise FileNotFoundError(f"real set {str(path)!r} must exist; it was not found. See ../shared/data/README.md.")
    data = np.load(path)
    rng = np.random.default_rng(0)
    out = {}
    for part in PARTS:
        images, labels = data[f"{part}_images"], data[f"{part}_labels"].reshape(-1).astype(int)
        if sizes and len(labels) > sizes[part]:
            keep = np.sort(rng.choice(len(labels), sizes[part], replace=False))
            images, labels = images[keep], labels[keep]
        if spec.spatial_dims == 3 and size != images.shape[1]:
            f = images.shape[1] // size
            n = images.shape[0]
            images = images.reshape(n, size, f, size, f, size, f).mean(axis=(2, 4, 6)).round().astype(np.uint8)
        out[part] = (images, labels)
    return out


def export(spec: RealSet, arrays: dict[str, tuple], folder: Path, *, voxel_mm: float = 1.0) -> tuple[Path, Path]:
    """Write the arrays as files plus ``manifest.csv``; returns (raw_dir, manifest)."""
    raw = folder / "raw"
    rows = []
    for part, (images, labels) in arrays.items():
        for i, (image, label) in enumerate(zip(images, labels)):
            pid = f"{part[:2].upper()}{i:05d}"
            if spec.export == "dicom_cr":
                rel = f"{pid}/cr.dcm"
                _write_cr(raw / rel, image, pid)
            else:
                rel = f"{pid}.nii.gz"
                _write_volume(raw / rel, image, voxel_mm)
            rows.append({"patient_id": pid, "label": int(label), "path": rel, "split": part})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["patient_id", "label", "path", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return raw, manifest


def _write_cr(path: Path, image: np.ndarray, pid: str) -> None:
    """One 8-bit CR Image Storage file with a study's identifying and vendor tags."""
    from pydicom.uid import ComputedRadiographyImageStorage, generate_uid

    from pipeline.demo.dicom_writer import SITES, PatientHeader, _base_dataset, series_uids

    patient = PatientHeader(pid, f"DOE^{pid}", "20180101", "20230101", "101500", "F", "005Y", f"A{pid}", "REF^DR")
    uids = series_uids(["real-data", pid])
    ds = _base_dataset(patient, SITES[0], uids, series_uid=generate_uid(entropy_srcs=["real-data", pid, "cr"]))
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid(entropy_srcs=["real-data", pid, "sop"])
    ds.Modality = "CR"
    ds.StudyDescription = "XR CHEST PA"
    ds.ViewPosition = "PA"
    for keyword in ("ConvolutionKernel", "FrameOfReferenceUID", "PositionReferenceIndicator", "PatientPosition"):
        delattr(ds, keyword)
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _write_volume(path: Path, volume: np.ndarray, voxel_mm: float) -> None:
    from pipeline.demo.geometry import AxialGeometry
    from pipeline.demo.nifti_writer import write_nifti

    geometry = AxialGeometry(volume.shape, (0.0, 0.0, 0.0), voxel_mm, voxel_mm)
    write_nifti(path, volume.astype(np.int16), geometry=geometry, orientation="RAS")


def stage(module: str, *args: str | Path, params: Path) -> None:
    """Run ``python -m pipeline.stages.<module>`` as ``dvc repro`` would; raise on failure."""
    cmd = [sys.executable, "-m", f"pipeline.stages.{module}", *map(str, args), "--params", str(params)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())})
    if done.returncode != 0:
        raise RuntimeError(f"stage {module} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print("   ", done.stdout.strip().splitlines()[-1] if done.stdout.strip() else module)


def pipeline_params(spec: RealSet, raw: Path, manifest: Path, overrides: list[str], epochs: int | None) -> dict:
    params = yaml.safe_load((ROOT / spec.config).read_text())
    params["data"] = {"raw_dir": str(raw), "manifest": str(manifest)}
    if epochs is not None:
        params["train"]["max_epochs"] = epochs
    params["train"]["resume"] = False
    for item in overrides:
        key, value = item.split("=", 1)
        block, name = key.split(".", 1)
        params[block][name] = yaml.safe_load(value)
    return params


def run_pipeline(work: Path, params: dict, seeds: list[int]) -> list[dict]:
    """ingest + split + preprocess once, train once per seed; test AUC per seed."""
    p = work / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    t0 = time.perf_counter()
    stage("ingest", params["data"]["raw_dir"], params["data"]["manifest"], work / "ingested", params=p)
    stage("split", work / "ingested" / "index.csv", work / "split.csv", params=p)
    stage("preprocess", work / "ingested" / "index.csv", work / "split.csv", work / "cache", params=p)
    prep_s = time.perf_counter() - t0
    results = []
    for seed in seeds:
        seeded = copy.deepcopy(params)
        seeded["base"]["seed"] = seed
        ps = work / f"params-{seed}.yaml"
        ps.write_text(yaml.safe_dump(seeded))
        out = work / f"seed{seed}"
        t0 = time.perf_counter()
        stage("train", work / "cache", out / "models", out / "predictions.csv", out / "summary.json", out / "live", params=ps)
        with (out / "predictions.csv").open() as handle:
            test = [r for r in csv.DictReader(handle) if r["split"] == "test"]
        y = np.array([int(r["label"]) for r in test])
        s = np.array([float(r["score"]) for r in test])
        summary = json.loads((out / "summary.json").read_text())
        results.append(_scored(seed, y, s, time.perf_counter() - t0, best_epoch=summary["best_epoch"]))
    results[0]["prep_seconds"] = round(prep_s, 1)
    return results


def plain_loop(arrays: dict[str, tuple], spatial_dims: int, *, epochs: int, seed: int, batch: int = 32) -> dict:
    """The fixed baseline: the loop a careful user writes by hand (see module docstring)."""
    from monai.networks.nets import resnet18
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = {p: torch.from_numpy(a[0]).float().div(255).unsqueeze(1) for p, a in arrays.items()}
    y = {p: torch.from_numpy(a[1]).float() for p, a in arrays.items()}
    net = resnet18(spatial_dims=spatial_dims, n_input_channels=1, num_classes=1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def scores(part: str) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return torch.cat([net(xb).squeeze(1) for xb in x[part].split(256)]).numpy()

    best, best_state, best_epoch, t0 = -1.0, None, -1, time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y["train"]), generator=g)
        for idx in order.split(batch):
            xb = x["train"][idx]
            for axis in range(2, 2 + spatial_dims):
                flip = torch.rand(len(idx), generator=g) < 0.5
                xb = torch.where(flip.view(-1, *[1] * (xb.ndim - 1)), xb.flip(axis), xb)
            opt.zero_grad()
            loss_fn(net(xb).squeeze(1), y["train"][idx]).backward()
            opt.step()
        sched.step()
        auc = roc_auc_score(y["val"].numpy(), scores("val"))
        if auc > best:
            best, best_epoch = auc, epoch
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return _scored(seed, y["test"].numpy().astype(int), scores("test"), time.perf_counter() - t0, best_epoch=best_epoch)


def _scored(seed: int, y: np.ndarray, s: np.ndarray, seconds: float, *, best_epoch: int) -> dict:
    auc, lo, hi = roc_auc_ci(y, 1 / (1 + np.exp(-s)) if s.min() < 0 or s.max() > 1 else s, method="delong")
    return {"seed": seed, "test_auc": round(auc, 4), "ci": [round(lo, 4), round(hi, 4)],
            "best_epoch": best_epoch, "seconds": round(seconds, 1)}


def summarise(name: str, rows: list[dict]) -> dict:
    aucs = [r["test_auc"] for r in rows]
    for r in rows:
        # counted from 1, as the train stage's lines count epochs (the JSON keeps the 0-based index)
        print(f"  {name:8s} seed {r['seed']}: test AUC {r['test_auc']:.3f} ({r['ci'][0]:.3f}-{r['ci'][1]:.3f}), "
              f"best epoch {r['best_epoch'] + 1}, {r['seconds']:.0f} s")
    mean = float(np.mean(aucs))
    print(f"  {name:8s} mean test AUC {mean:.3f} (sd {np.std(aucs):.3f}) over {len(aucs)} seed(s)")
    return {"mean_test_auc": round(mean, 4), "sd": round(float(np.std(aucs)), 4), "runs": rows}


def benchmark(spec: RealSet, args: argparse.Namespace, work: Path) -> dict:
    arrays = load_arrays(spec, sizes=QUICK_SIZES if args.quick else None, size=args.size)
    epochs = args.epochs or (5 if args.quick else None)
    roi = [f"preprocess.roi={[args.size] * 3}"] if spec.spatial_dims == 3 else []
    params = pipeline_params(spec, work / "raw", work / "manifest.csv", [*roi, *args.set], epochs)
    epochs = params["train"]["max_epochs"]
    counts = {p: len(a[1]) for p, a in arrays.items()}
    shape = arrays["train"][0].shape[1:]
    print(f"{spec.name}: {counts}, images {shape}, {epochs} epochs, config {spec.config} {args.set}")
    t0 = time.perf_counter()
    export(spec, arrays, work)
    print(f"  exported {sum(counts.values())} files ({spec.export}) in {time.perf_counter() - t0:.0f} s")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    result = {"set": spec.name, "counts": counts, "shape": list(shape), "epochs": epochs, "config": spec.config,
              "overrides": args.set, "quick": args.quick}
    if not args.plain_only:
        result["pipeline"] = summarise("pipeline", run_pipeline(work, params, seeds))
    if not args.pipeline_only:
        result["plain"] = summarise("plain", [plain_loop(arrays, spec.spatial_dims, epochs=epochs, seed=s) for s in seeds])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set-name", choices=[*SETS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed+1, ...")
    parser.add_argument("--quick", action="store_true", help=f"subsample {QUICK_SIZES}, 5 epochs")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's train.max_epochs")
    parser.add_argument("--size", type=int, default=32, help="3D edge length (32 or 64)")
    parser.add_argument("--set", action="append", default=[], metavar="BLOCK.KEY=VALUE",
                        help="override a params key of the pipeline run (YAML value)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both arms")
    parser.add_argument("--pipeline-only", action="store_true")
    parser.add_argument("--plain-only", action="store_true")
    args = parser.parse_args(argv)
    # Both arms get the same threads; on a shared CPU more threads than free cores made a
    # step 7x slower (measured: 5 s with 2 threads against 0.7 s with 1).
    torch.set_num_threads(args.threads)
    results = []
    for name in SETS if args.set_name == "all" else [args.set_name]:
        with tempfile.TemporaryDirectory(prefix=f"real-{name}-") as tmp:
            results.append(benchmark(SETS[name], args, Path(tmp)))
    print(json.dumps({"benchmark": "real_data", "torch_threads": torch.get_num_threads(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
