"""Ingest throughput against MONAI's ``LoadImage(reader="PydicomReader")``, in one run.

Builds, in a temporary folder, one 300-slice 512x512 CT series (shuffled file names and
InstanceNumbers, from the pydicom wheel's CT_small header) and a mixed folder (that
series, a 2-image localizer, a second 120-slice series, a structured report and a junk
file). Prints slices per second for:

* ``ours (volume)``: header scan in a process pool + grouping + position ordering +
  pixels + HU into memory: the same work as MONAI's reader;
* ``ours (stage)``: the full :func:`pipeline.io.ingest.ingest_cohort`, including the
  canonical volume write (the default ``ingest.volume_format``), index and ledger, and
  the same with ``.nii.gz``;
* ``monai``: ``LoadImage(reader="PydicomReader", image_only=True)`` on the series folder;
* ``write ...``: the canonical write of that volume alone, per format and deflate
  implementation (``nibabel.save``'s zlib, ISA-L with one thread and with all cores);
* ``re-ingest``: a cohort of ``--cohort`` series ingested with a store, ten series added,
  ingested again: the second run's time as a share of the first's, and whether its
  output is byte-identical to a fresh ingest of the same cohort without a store; once
  per ``--cohort-shape`` (default: 8 x 128^2 and 32 x 256^2 series, both far smaller than
  a CT series of hundreds of 512^2 slices, which would make the share smaller still);

and the ratios, best of ``--repeats`` runs each. Run: ``python benchmarks/ingest_throughput.py``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

# The pipeline of the checkout this file is in, not whichever one the venv installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import IngestConfig, load_params
from pipeline.io.ingest import ingest_cohort
from pipeline.io.nifti_write import write_canonical
from pipeline.io.pixels import read_planes
from pipeline.io.scan import read_headers
from pipeline.io.series import group_series
from pipeline.io.tree import walk
from pipeline.io.volume_plan import plan_volume

TEMPLATE = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def shipped(workers: int) -> dict:
    """The ``ingest`` settings params.yaml ships, with this run's workers: what the stage would do."""
    config = IngestConfig.from_params(load_params(PARAMS))
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "pseudonym_key"}
    return {**settings, "workers": workers}


def write_series(folder: Path, n_slices: int, matrix: int, seed: int, orientation=(1, 0, 0, 0, 1, 0)) -> None:
    """Write one CT series with shuffled names and InstanceNumbers."""
    rng = np.random.default_rng(seed)
    shuffle = random.Random(seed)
    base = pydicom.dcmread(TEMPLATE)
    base.Rows = base.Columns = matrix
    series_uid = generate_uid()
    numbers = list(range(1, n_slices + 1))
    shuffle.shuffle(numbers)
    folder.mkdir(parents=True, exist_ok=True)
    normal = np.cross(orientation[:3], orientation[3:])
    for index in range(n_slices):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = numbers[index]
        ds.ImageOrientationPatient = list(map(float, orientation))
        ds.ImagePositionPatient = [float(v) for v in np.array([-200.0, -200.0, 0.0]) + normal * 1.25 * index]
        ds.PixelData = rng.integers(0, 2400, size=(matrix, matrix), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{shuffle.getrandbits(48):012x}", enforce_file_format=True)


def ours_volume(folder: Path, settings: dict) -> np.ndarray:
    paths = walk(folder)
    records = read_headers(folder, paths, workers=settings["workers"], max_voxels=settings["max_voxels"])
    headers = {r.path: r.dicom for r in records if r.kind == "dicom"}
    candidates, _ = group_series(headers)
    best = max(candidates, key=lambda c: c.n_planes)
    plan = plan_volume(best, settings["spacing_policy"]).plan
    volume, _ = read_planes(str(folder), best.headers, plan)
    return volume


def monai_volume(folder: Path) -> np.ndarray:
    from monai.transforms import LoadImage

    return np.asarray(LoadImage(reader="PydicomReader", image_only=True)(str(folder)))


def _slice_set(volume: np.ndarray) -> list[bytes]:
    """The volume's axial slices as sorted bytes: equal for two volumes with the same slices in any order."""
    return sorted(volume[:, :, k].tobytes() for k in range(volume.shape[2]))


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def write_options(volume: np.ndarray, root: Path, repeats: int) -> None:
    """Time the canonical write of ``volume`` per format; print time, MiB/s and size."""
    import nibabel as nib

    affine = np.diag([-0.7, -0.7, 1.25, 1.0])
    cores = len(os.sched_getaffinity(0))
    mib = volume.nbytes / 2**20
    options = {
        "write nii (default)": lambda p: write_canonical(volume, affine, p.with_suffix(".nii")),
        "write nii.gz isal, 1 thread": lambda p: write_canonical(volume, affine, p.with_suffix(".nii.gz"), threads=1),
        f"write nii.gz isal, {cores} threads": lambda p: write_canonical(volume, affine, p.with_suffix(".nii.gz"), threads=cores),
        "write nii.gz nibabel (zlib 1)": lambda p: nib.save(nib.Nifti1Image(volume, affine), str(p.with_suffix(".nii.gz"))),
    }
    for name, write in options.items():
        target = root / "w" / "volume"
        target.parent.mkdir(exist_ok=True)
        seconds = best_time(lambda: write(target), repeats)
        size = sum(f.stat().st_size for f in target.parent.iterdir())
        print(f"{name:32s}: {seconds:6.2f} s {mib / seconds:7.0f} MiB/s  {size / 2**20:6.1f} MiB on disk")
        shutil.rmtree(target.parent)


def reingest(root: Path, n_series: int, slices: int, matrix: int, workers: int) -> list[str]:
    """Ingest ``n_series`` with a store, add 10, ingest again; the lines to print (times, ratio, identity)."""
    raw = root / "cohort"
    root.mkdir(parents=True)
    lines = ["patient_id,label,path"]
    for i in range(n_series + 10):
        write_series(raw / f"p{i:04d}", slices, matrix, seed=100 + i)
        lines.append(f"P{i},{i % 2},p{i:04d}")
    first_manifest, second_manifest = root / "c1.csv", root / "c2.csv"
    first_manifest.write_text("\n".join(lines[: n_series + 1]) + "\n")
    second_manifest.write_text("\n".join(lines) + "\n")
    hidden = [raw / f"p{i:04d}" for i in range(n_series, n_series + 10)]
    parked = root / "parked"
    parked.mkdir()
    for folder in hidden:  # the ten new series are not in the raw folder on the first run
        folder.rename(parked / folder.name)
    store = root / "store"
    settings = shipped(workers)

    def run(manifest: Path, out: str, store_dir: Path | None = store) -> float:
        start = time.perf_counter()
        ingest_cohort(raw, manifest, root / out, pseudonym_key="benchmark-key", store_dir=store_dir, **settings)
        return time.perf_counter() - start

    first = run(first_manifest, "c_out1")
    for folder in hidden:
        (parked / folder.name).rename(folder)
    second = run(second_manifest, "c_out2")
    run(second_manifest, "c_fresh", store_dir=None)  # the same cohort from scratch, no store
    files = (n_series + 10) * slices
    same = _same_tree(root / "c_out2", root / "c_fresh")
    shutil.rmtree(root)  # up to a GiB of series: gone before the next cohort is written
    return [
        f"first ingest : {n_series} series x {slices} x {matrix}^2 in {first:.2f} s (with an empty store)",
        f"re-ingest    : {n_series + 10} series ({files} files), 10 new, in {second:.2f} s = {100 * second / first:.1f}% of the first run",
        f"re-ingest vs a fresh ingest of the same cohort: {same}",
    ]


def _same_tree(left: Path, right: Path) -> str:
    """``byte-identical (N files)`` when both folders hold the same files with the same bytes, else what differs."""
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    other = {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    if names != other:
        return f"DIFFERENT: {len(names ^ other)} file(s) in one folder only"
    differ = [n for n in sorted(names) if (left / n).read_bytes() != (right / n).read_bytes()]
    return f"DIFFERENT: {len(differ)} of {len(names)} files differ" if differ else f"byte-identical ({len(names)} files)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cohort", type=int, default=200, help="series in the re-ingest cohort (0: skip)")
    parser.add_argument("--cohort-shape", action="append", metavar="SLICESxMATRIX",
                        help="series shape of a re-ingest cohort, e.g. 32x256 (repeatable; default: 8x128 and 32x256)")
    args = parser.parse_args()
    settings = shipped(args.workers)
    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp(prefix="ingest_bench_"))
    try:
        # The re-ingest first, while this process holds what a fresh ingest stage holds:
        # measured after MONAI, torch and a 300-slice volume were loaded, the same
        # re-ingest took 0.55 s instead of 0.37 s (a bigger heap for every collection).
        reingest_lines = []
        for n, shape in enumerate((args.cohort_shape or ["8x128", "32x256"]) if args.cohort else []):
            slices, matrix = (int(v) for v in shape.lower().split("x"))
            reingest_lines += reingest(root / f"cohort{n}", args.cohort, slices, matrix, args.workers)
        series = root / "series"
        write_series(series, args.slices, args.matrix, seed=0)
        mixed = root / "mixed"
        shutil.copytree(series, mixed / "p1")
        write_series(mixed / "p1", 2, args.matrix, seed=1, orientation=(0, 1, 0, 0, 0, -1))
        write_series(mixed / "p2", 120, args.matrix, seed=2)
        shutil.copyfile(TEMPLATE.parent / "test-SR.dcm", mixed / "p2" / "report.dcm")
        (mixed / "p2" / "notes.txt").write_text("not an image")
        (root / "manifest.csv").write_text("patient_id,label,path\nA,1,p1\nB,0,p2\n")
        (root / "one.csv").write_text("patient_id,label,path\nA,1,.\n")

        ours = ours_volume(series, settings)
        theirs = monai_volume(series)
        # Both must hold the same HU slices (rows and columns possibly swapped); the order
        # along z is reported separately, since only ours is checked against the positions.
        as_ours = [c.astype(ours.dtype) for c in (theirs, np.swapaxes(theirs, 0, 1)) if c.shape == ours.shape]
        same = any(_slice_set(c) == _slice_set(ours) for c in as_ours)
        same_order = any(np.array_equal(c, ours) for c in as_ours)
        print(f"cpu cores: {os.cpu_count()}, workers: {args.workers}, series: {args.slices} x {args.matrix}^2 int16")
        print(f"volumes: ours {ours.shape} {ours.dtype}, monai {theirs.shape} {theirs.dtype}; same slices: {same}, same z order: {same_order}")

        t_ours = best_time(lambda: ours_volume(series, settings), args.repeats)
        t_monai = best_time(lambda: monai_volume(series), args.repeats)
        t_stage = best_time(
            lambda: ingest_cohort(series, root / "one.csv", root / "out1", pseudonym_key="benchmark-key", **settings),
            args.repeats,
        )
        t_gz = best_time(
            lambda: ingest_cohort(series, root / "one.csv", root / "out3", pseudonym_key="benchmark-key",
                                  **{**settings, "volume_format": "nii.gz"}),
            args.repeats,
        )
        n_mixed = args.slices + 2 + 120
        t_mixed = best_time(
            lambda: ingest_cohort(mixed, root / "manifest.csv", root / "out2", pseudonym_key="benchmark-key",
                                  **settings),
            args.repeats,
        )
        rate = {name: args.slices / t for name, t in (("ours", t_ours), ("monai", t_monai), ("stage", t_stage))}
        print(f"ours (volume): {rate['ours']:8.1f} slices/s  ({t_ours:.2f} s)")
        print(f"ours (stage) : {rate['stage']:8.1f} slices/s  ({t_stage:.2f} s, incl. .nii write, the default)")
        print(f"ours (stage) : {args.slices / t_gz:8.1f} slices/s  ({t_gz:.2f} s, incl. .nii.gz write)")
        print(f"monai        : {rate['monai']:8.1f} slices/s  ({t_monai:.2f} s)")
        print(f"mixed folder : {n_mixed / t_mixed:8.1f} slices/s  ({t_mixed:.2f} s, {n_mixed} image files + 2 others, full stage)")
        print(f"ratio ours(volume)/monai: {rate['ours'] / rate['monai']:.2f}x; ours(stage)/monai: {rate['stage'] / rate['monai']:.2f}x; "
              f"ours(stage, nii.gz)/monai: {args.slices / t_gz / rate['monai']:.2f}x")
        write_options(ours, root, args.repeats)
        for line in reingest_lines:
            print(line)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
