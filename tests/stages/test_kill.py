"""A stage killed with SIGKILL at a random moment leaves no partial output, and a rerun matches an uninterrupted run.

The stages run as real subprocesses (``python -m pipeline.stages.<stage>``) on a cohort
big enough to be caught mid-way. Each moment is drawn from a fixed seed among points
spread over the run (how many volumes the stage has written, which cache split it is
filling) and the kill lands while the stage is still running. After each kill the output
path must be absent or still the previous complete output (the same folder, unchanged),
and the next run must clean up and produce byte-identical files.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.stages import split
from tests.io.dicom_builders import write_ct_series
from tests.params import params_text

REPO = Path(__file__).resolve().parents[2]
SEED = 20251128
N_PATIENTS = 12
PARAMS = params_text(
    base={"seed": 5},
    ingest={"pseudonym_key": "params-key-123", "series_choice": "most_slices", "spacing_policy": "reject", "workers": 1},
    split={"val_fraction": 0.25, "test_fraction": 0.25},
    preprocess={"spatial_dims": 3, "roi": [48, 48, 16], "pixdim": [2.5, 2.5, 2.5], "hu_window": [-1000, 400]},
)


def _start(stage: str, *args: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"pipeline.stages.{stage}", *map(str, args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def _kill_when(proc: subprocess.Popen, moment: Callable[[], bool], delay_s: float) -> None:
    """SIGKILL ``proc`` ``delay_s`` after ``moment()`` first holds; it must still be running."""
    deadline = time.monotonic() + 300
    while not moment():
        assert proc.poll() is None, f"the stage ended before the chosen moment: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay_s)
    assert proc.poll() is None, "the stage ended before the kill: the cohort is too small to catch it mid-way"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _kill_and_rerun(stage: str, args: tuple[Path, ...], out: Path, reference: dict[str, bytes],
                    moments: list[tuple[Callable[[Path], bool], float]], *, last_rerun: bool = True) -> None:
    """Kill at each of three moments in turn: twice with no output yet, then over a complete one.

    A rerun follows the second kill (it must clean what both left) and, with
    ``last_rerun``, the third.
    """
    for turn, (moment, delay) in enumerate(moments):
        previous = out.stat().st_ino if out.exists() else None
        proc = _start(stage, *args)
        temp = out.parent / f".{out.name}.tmp-{proc.pid}"
        _kill_when(proc, lambda: moment(temp), delay)
        if previous is None:
            assert not os.path.lexists(out), f"kill {turn}: a partial output is in place"
            assert _siblings(out) == [temp.name]  # what the killed run left, hidden beside the output
        else:
            # Over a previous output the kill can land after the run published its own
            # (the process still exiting): either way the path holds a complete output.
            assert _files(out) == reference, f"kill {turn}: the output is not a complete one"
            published = out.stat().st_ino != previous
            left = _siblings(out)
            assert left == [temp.name] or (published and left in ([], [f".{out.name}.old-{proc.pid}"])), left
        if turn == 0 or (turn == 2 and not last_rerun):
            continue
        _finish(_start(stage, *args))
        assert _files(out) == reference, f"rerun after kill {turn} differs from an uninterrupted run"
        assert _siblings(out) == []


@pytest.fixture(scope="module")
def workspace(module_tmp) -> dict[str, Path]:
    root = module_tmp("kill")
    rows = []
    for i in range(N_PATIENTS):
        write_ct_series(root / "raw" / f"p{i:02d}", 6, seed=i)
        rows.append(f"P{i:02d},{i % 2},p{i:02d}\n")
    (root / "manifest.csv").write_text("patient_id,label,path\n" + "".join(rows))
    (root / "params.yaml").write_text(PARAMS)
    return {"root": root, "raw": root / "raw", "manifest": root / "manifest.csv", "params": root / "params.yaml"}


def _ingest_args(ws: dict[str, Path], out: Path) -> tuple[Path, ...]:
    return ws["raw"], ws["manifest"], out, Path("--params"), ws["params"]


@pytest.fixture(scope="module")
def ingested(workspace) -> Path:
    """An uninterrupted ingest, and its split: the reference and the input of preprocess."""
    out = workspace["root"] / "reference" / "ingested"
    _finish(_start("ingest", *_ingest_args(workspace, out)))
    assert split.main([str(out / "index.csv"), str(out.parent / "split.csv"), "--params", str(workspace["params"])]) == 0
    return out


def test_a_killed_ingest_leaves_no_partial_output_and_a_rerun_is_identical(workspace, ingested):
    raw_before = _files(workspace["raw"])
    rng = random.Random(SEED)
    # Moments: after k of the 12 volumes are written (0: while headers are read).
    counts = sorted(rng.sample(range(N_PATIENTS), 3))

    def written(k: int) -> Callable[[Path], bool]:
        return lambda temp: (temp / "volumes").is_dir() and len(list((temp / "volumes").iterdir())) > k

    moments = [(written(k - 1) if k else (lambda temp: temp.is_dir()), rng.uniform(0, 0.02)) for k in counts]
    out = workspace["root"] / "run" / "ingested"
    _kill_and_rerun("ingest", _ingest_args(workspace, out), out, _files(ingested), moments)
    assert _files(workspace["raw"]) == raw_before


def test_a_killed_preprocess_leaves_no_partial_cache_and_a_rerun_is_identical(workspace, ingested):
    from pipeline.stages import preprocess  # torch: imported only when this test runs

    args = (ingested / "index.csv", ingested.parent / "split.csv")
    reference = workspace["root"] / "reference" / "cache"
    assert preprocess.main([*map(str, args), str(reference), "--params", str(workspace["params"])]) == 0
    assert {"train.npy", "val.npy", "test.npy", "meta.json", "excluded.csv"} <= set(_files(reference))
    rng = random.Random(SEED)
    # Moments: as the cache folder appears (index not read yet), and while each split is filled.
    markers = rng.sample(["", "train.npy", "val.npy", "test.npy"], 3)
    moments = [((lambda temp, m=m: (temp / m).exists()), rng.uniform(0, 0.02)) for m in markers]
    out = workspace["root"] / "run" / "cache"
    # Each run imports torch and MONAI (seconds): the rerun over a previous output is left to ingest's test.
    _kill_and_rerun("preprocess", (*args, out, Path("--params"), workspace["params"]), out, _files(reference), moments,
                    last_rerun=False)
