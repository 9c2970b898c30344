"""Peak memory of the ingest stage on hostile files and on a legitimate volume.

Each case is one raw folder with one manifest row, ingested by the real stage
(``python -m pipeline.stages.ingest``) in a fresh process; a wrapper process reports
that process's peak RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``). Cases:

* hostile (each must stay under 1 GB and be quarantined): a 39 KB DICOM declaring
  999,999,999 and 150,000,000 frames; a 416-byte NIfTI header declaring 4 GiB; gzip
  NIfTI bombs of 1 MB -> 1 GiB and 10 MB -> 10 GiB with truthful headers; a gzip stream
  running 1 GiB past a small declared shape;
* legitimate: a CT series of 512x512 int16 slices and a ``.nii.gz`` volume of the same
  size, whose peak must stay within 1.5x the decoded size + 300 MB.

Prints a table, then one JSON line with every figure. Run:
``python benchmarks/ingest_memory.py [--slices 300]``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gzip
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import yaml
from pydicom.uid import generate_uid

REPO = Path(__file__).resolve().parents[1]

TEMPLATE = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
HOSTILE_LIMIT = 10**9
ADDRESS_LIMIT = 16 * 2**30
"""Cap on the measured process's address space: a regression fails fast instead of
taking a workstation down."""

_WRAPPER = """
import json, resource, subprocess, sys
limit = int(sys.argv[1])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
done = subprocess.run(sys.argv[2:], preexec_fn=cap, capture_output=True, text=True)
print(json.dumps({"rc": done.returncode, "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:]}))
"""


def _nifti_header(shape: tuple[int, ...], dtype: type) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


def _gzip_member(head: bytes, zero_bytes: int) -> bytes:
    """One gzip member: ``head`` then ``zero_bytes`` zeros, compressed in 16 MiB writes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(head)
        chunk = bytes(2**24)
        left = zero_bytes
        while left > 0:
            handle.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    return buffer.getvalue()


def _gzip_zeros(path: Path, head: bytes, zero_bytes: int, members: int = 1) -> None:
    """``head`` then ``zero_bytes`` zeros, gzip; repeated members add zeros without recompressing."""
    per_member = zero_bytes // members
    with path.open("wb") as out:
        out.write(_gzip_member(head, per_member))
        if members > 1:
            rest = _gzip_member(b"", per_member)
            for _ in range(members - 1):
                out.write(rest)


def _frames_liar(path: Path, frames: int) -> None:
    ds = pydicom.dcmread(TEMPLATE)
    ds.NumberOfFrames = frames
    ds.save_as(path)


def _ct_series(folder: Path, slices: int) -> None:
    base = pydicom.dcmread(TEMPLATE)
    base.Rows = base.Columns = 512
    rng = np.random.default_rng(0)
    series = generate_uid()
    for index in range(slices):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [-250.0, -250.0, 2.5 * index]
        ds.InstanceNumber = index + 1
        ds.PixelData = rng.integers(0, 2000, (512, 512), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{index:04d}.dcm", enforce_file_format=True)


def _nifti_volume(path: Path, slices: int) -> None:
    data = np.random.default_rng(1).integers(-1000, 1000, (512, 512, slices), dtype=np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.7, 0.7, 2.5, 1.0])), path)


def build_cases(root: Path, slices: int) -> list[dict]:
    """Write every case's raw folder; returns name, folder, kind and decoded bytes."""
    cases = []

    def case(name: str, kind: str, decoded: int) -> Path:
        folder = root / name / "raw"
        folder.mkdir(parents=True)
        cases.append({"name": name, "raw": folder, "kind": kind, "decoded": decoded})
        return folder

    _frames_liar(case("dicom_999999999_frames", "hostile", 0) / "a.dcm", 999_999_999)
    _frames_liar(case("dicom_150000000_frames", "hostile", 0) / "a.dcm", 150_000_000)
    (case("nifti_416_bytes_declaring_4GiB", "hostile", 0) / "a.nii").write_bytes(
        _nifti_header((1024, 1024, 1024), np.int32) + bytes(64)
    )
    _gzip_zeros(case("gzip_bomb_1MB_to_1GiB", "hostile", 0) / "a.nii.gz", _nifti_header((1024, 1024, 1024), np.uint8), 2**30)
    _gzip_zeros(
        case("gzip_bomb_10MB_to_10GiB", "hostile", 0) / "a.nii.gz",
        _nifti_header((2048, 2048, 2560), np.uint8), 10 * 2**30, members=10,
    )
    _gzip_zeros(case("gzip_stream_1GiB_past_a_64x64x64_header", "hostile", 0) / "a.nii.gz",
                _nifti_header((64, 64, 64), np.int16), 64**3 * 2 + 2**30)
    series = case(f"legit_dicom_512x512x{slices}", "legit", 512 * 512 * slices * 2) / "series"
    series.mkdir()
    _ct_series(series, slices)
    _nifti_volume(case(f"legit_nifti_512x512x{slices}", "legit", 512 * 512 * slices * 2) / "a.nii.gz", slices)
    return cases


def measure(case: dict) -> dict:
    folder = case["raw"].parent
    target = next(case["raw"].iterdir()).name  # one file, or the one folder of a series
    (folder / "manifest.csv").write_text(f"patient_id,label,path\nP1,1,{target}\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"].update(pseudonym_key="benchmark-key-123", workers=1)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    argv = [sys.executable, "-m", "pipeline.stages.ingest", str(case["raw"]), str(folder / "manifest.csv"),
            str(folder / "out"), "--params", str(folder / "params.yaml")]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(ADDRESS_LIMIT), *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    facts = json.loads(done.stdout)
    ledger = folder / "out" / "ledger.csv"
    statuses, reasons = [], []
    if ledger.exists():
        with ledger.open(newline="") as handle:
            for row in csv.DictReader(handle):
                statuses.append(row["status"])
                reasons.append(row["reason"])
    result = {"case": case["name"], "kind": case["kind"], "exit": facts["rc"], "peak_mb": round(facts["peak"] / 1e6, 1),
              "seconds": round(seconds, 1), "statuses": sorted(set(statuses)), "reason": reasons[0][:150] if reasons else ""}
    if case["kind"] == "hostile":
        result["ok"] = facts["peak"] < HOSTILE_LIMIT and statuses == ["quarantined"] and facts["rc"] == 0
    else:
        bound = 1.5 * case["decoded"] + 300e6
        result.update(decoded_mb=round(case["decoded"] / 1e6, 1), bound_mb=round(bound / 1e6, 1))
        result["ok"] = facts["peak"] <= bound and set(statuses) == {"ingested"} and facts["rc"] == 0
    if facts["rc"] != 0:
        result["stderr"] = facts["stderr"][-500:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices of the legitimate 512x512 volumes")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for case in build_cases(Path(folder), args.slices):
            results.append(measure(case))
            r = results[-1]
            extra = f"decoded {r['decoded_mb']} MB, bound {r['bound_mb']} MB" if r["kind"] == "legit" else r["reason"]
            print(f"{r['case']:<42} peak {r['peak_mb']:>8.1f} MB  {r['seconds']:>5.1f} s  "
                  f"{'ok' if r['ok'] else 'FAIL'}  {','.join(r['statuses'])}  {extra}", flush=True)
    print(json.dumps({"results": results, "all_ok": all(r["ok"] for r in results)}))


if __name__ == "__main__":
    main()
