"""Ingest throughput against MONAI's ``LoadImage(reader="PydicomReader")``, in one run.

Builds, in a temporary folder, one 300-slice 512x512 CT series (shuffled file names and
InstanceNumbers, from the pydicom wheel's CT_small header) and a mixed folder (that
series, a 2-image localizer, a second 120-slice series, a structured report and a junk
file). Prints slices per second for:

* ``ours (volume)``: header scan in a process pool + grouping + position ordering +
  pixels + HU into memory: the same work as MONAI's reader;
* ``ours (stage)``: the full :func:`pipeline.io.ingest.ingest_cohort`, including the
  canonical ``.nii.gz`` write, index and ledger;
* ``monai``: ``LoadImage(reader="PydicomReader", image_only=True)`` on the series folder;

and the ratios, best of ``--repeats`` runs each. Run: ``python benchmarks/ingest_throughput.py``.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from pipeline.io.ingest import ingest_cohort
from pipeline.io.scan import read_headers, walk
from pipeline.io.series import group_series, plan_volume, read_planes

TEMPLATE = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


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


def ours_volume(folder: Path, workers: int) -> np.ndarray:
    paths = walk(folder)
    records = read_headers(folder, paths, workers)
    headers = {r.path: r.dicom for r in records if r.kind == "dicom"}
    candidates, _ = group_series(headers)
    best = max(candidates, key=lambda c: c.n_planes)
    plan = plan_volume(best, "reject").plan
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    root = Path(tempfile.mkdtemp(prefix="ingest_bench_"))
    try:
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

        ours = ours_volume(series, args.workers)
        theirs = monai_volume(series)
        # Both must hold the same HU slices (rows and columns possibly swapped); the order
        # along z is reported separately, since only ours is checked against the positions.
        as_ours = [c.astype(ours.dtype) for c in (theirs, np.swapaxes(theirs, 0, 1)) if c.shape == ours.shape]
        same = any(_slice_set(c) == _slice_set(ours) for c in as_ours)
        same_order = any(np.array_equal(c, ours) for c in as_ours)
        print(f"cpu cores: {os.cpu_count()}, workers: {args.workers}, series: {args.slices} x {args.matrix}^2 int16")
        print(f"volumes: ours {ours.shape} {ours.dtype}, monai {theirs.shape} {theirs.dtype}; same slices: {same}, same z order: {same_order}")

        t_ours = best_time(lambda: ours_volume(series, args.workers), args.repeats)
        t_monai = best_time(lambda: monai_volume(series), args.repeats)
        t_stage = best_time(
            lambda: ingest_cohort(series, root / "one.csv", root / "out1", pseudonym_key="benchmark-key", workers=args.workers),
            args.repeats,
        )
        n_mixed = args.slices + 2 + 120
        t_mixed = best_time(
            lambda: ingest_cohort(mixed, root / "manifest.csv", root / "out2", pseudonym_key="benchmark-key", workers=args.workers),
            args.repeats,
        )
        rate = {name: args.slices / t for name, t in (("ours", t_ours), ("monai", t_monai), ("stage", t_stage))}
        print(f"ours (volume): {rate['ours']:8.1f} slices/s  ({t_ours:.2f} s)")
        print(f"ours (stage) : {rate['stage']:8.1f} slices/s  ({t_stage:.2f} s, incl. .nii.gz write)")
        print(f"monai        : {rate['monai']:8.1f} slices/s  ({t_monai:.2f} s)")
        print(f"mixed folder : {n_mixed / t_mixed:8.1f} slices/s  ({t_mixed:.2f} s, {n_mixed} image files + 2 others, full stage)")
        print(f"ratio ours(volume)/monai: {rate['ours'] / rate['monai']:.2f}x; ours(stage)/monai: {rate['stage'] / rate['monai']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
