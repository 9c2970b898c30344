"""Ingest run on mutated real files: every file ledgered, no traceback, bounded memory.

Mutants (see :mod:`tests.fuzz.mutants`) are ingested in batches, one stage subprocess
per batch as DVC runs it, because starting Python costs more than a mutant. Each batch
must exit 0 or 2, print no traceback, write one ledger row per file, ledger no file as
a MemoryError (the address-space cap would hide a balloon that way) and peak below
:data:`PEAK_BYTES`. ``make test`` runs a few hundred mutants; ``make fuzz`` thousands
(``FUZZ_CASES``, ``FUZZ_SEED``). A failure names its batch's ``(seed, index)`` pairs;
once fixed, the offending pair joins :data:`REGRESSIONS`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.mutants import make
from tests.io.peak_rss import run_measured
from tests.params import write_params

BATCH = 50
"""Mutants per ingest run."""

PEAK_BYTES = 2**30
"""Peak RSS one ingest run may reach on hostile files (issue 11: under 1 GB)."""

BATCH_TIMEOUT_S = 180
"""A batch still running after this is a hang."""

QUICK_SEED, QUICK_CASES = 11, 250
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "2024"))
FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "5000"))
WORKERS = int(os.environ.get("FUZZ_WORKERS", "1"))

REGRESSIONS: tuple[tuple[int, int], ...] = (
    (11, 203),  # SC_rgb_gdcm_KY.dcm, a sequence item length flipped to ~4 GB: pydicom's read() allocated it
    (2024, 730),  # examples_jpeg2k.dcm, the same in the pixel read: the header scan defers the element
    (2024, 3375),  # SC_rgb_small_odd_big_endian.dcm, the same in a deferred element read back with open()
    (2024, 3969),  # rtdose.dcm, likewise
    (2024, 4754),  # MR_small_RLE.dcm with Columns=15: the Rust RLE decoder panics (a BaseException)
)
"""``(seed, index)`` of mutants that once broke ingest, kept as fixed cases."""

_ROOT = Path(__file__).resolve().parents[2]


def run_batch(folder: Path, cases: list[tuple[int, int]]) -> dict:
    """Ingest the mutants ``cases`` in one stage run and check what issue 11 requires."""
    raw = folder / "raw"
    raw.mkdir(parents=True)
    what: dict[str, str] = {}
    lines = ["patient_id,label,path"]
    for number, (seed, index) in enumerate(cases):
        mutant = make(seed, index)
        name = f"s{seed}_i{index}{mutant.suffix}"
        (raw / name).write_bytes(mutant.data)
        what[name] = mutant.what
        lines.append(f"P{number},{number % 2},{name}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    params = folder / "params.yaml"
    write_params(params, ingest={"pseudonym_key": "fuzz-key-not-secret", "workers": WORKERS})
    out = folder / "out"
    argv = [sys.executable, "-m", "pipeline.stages.ingest", str(raw), str(manifest), str(out), "--params", str(params)]
    where = f"mutants {cases[0]}..{cases[-1]} ({len(cases)})"
    try:
        done = run_measured(argv, timeout=BATCH_TIMEOUT_S, cwd=_ROOT)
    except subprocess.TimeoutExpired:
        _report(cases, {"exit": "hang"})
        pytest.fail(f"hang: ingest of {where} ran past {BATCH_TIMEOUT_S} s")
    assert done.returncode in (0, 2), f"{where}: exit {done.returncode}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, f"{where}: traceback\n{done.stderr[-3000:]}"
    assert done.peak_bytes < PEAK_BYTES, f"{where}: peak RSS {done.peak_mib:.0f} MiB"
    if done.returncode == 2:
        assert done.stderr.startswith("ingest failed:"), done.stderr[-3000:]
        facts = {"exit": 2, "peak_bytes": done.peak_bytes, "rows": 0}
        _report(cases, facts)
        return facts
    with (out / "ledger.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(cases), f"{where}: {len(rows)} ledger rows for {len(cases)} files"
    ballooned = [(r["path"], what.get(r["path"], "?"), r["reason"]) for r in rows if "MemoryError" in r["reason"]]
    assert not ballooned, f"{where}: {ballooned[:3]}"
    summary = re.search(r"ingest: (\d+) files = ([^;]+);", done.stdout)
    assert summary is not None, done.stdout
    parts = [int(n) for n in re.findall(r"(\d+) \w+", summary.group(2))]
    assert int(summary.group(1)) == len(cases) == sum(parts), done.stdout
    facts = {"exit": 0, "peak_bytes": done.peak_bytes, "rows": len(rows), "counts": summary.group(2).strip()}
    _report(cases, facts)
    return facts


def _report(cases: list[tuple[int, int]], facts: dict) -> None:
    """Append one JSON line per batch to ``$FUZZ_REPORT`` (for benchmarks/README.md figures)."""
    target = os.environ.get("FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"first": cases[0], "n": len(cases), **facts}) + "\n")


def _batches(seed: int, cases: int) -> list[list[tuple[int, int]]]:
    pairs = [(seed, index) for index in range(cases)]
    return [pairs[i : i + BATCH] for i in range(0, len(pairs), BATCH)]


@pytest.mark.parametrize("batch", _batches(QUICK_SEED, QUICK_CASES), ids=lambda b: f"{b[0][1]}-{b[-1][1]}")
def test_mutated_real_files_never_crash_ingest(tmp_path: Path, batch: list[tuple[int, int]]) -> None:
    run_batch(tmp_path, batch)


def test_mutants_that_once_broke_ingest_stay_fixed(tmp_path: Path) -> None:
    run_batch(tmp_path, list(REGRESSIONS))


@pytest.mark.fuzz
@pytest.mark.parametrize("batch", _batches(FUZZ_SEED, FUZZ_CASES), ids=lambda b: f"{b[0][1]}-{b[-1][1]}")
def test_many_mutants_never_crash_ingest(tmp_path: Path, batch: list[tuple[int, int]]) -> None:
    run_batch(tmp_path, batch)
