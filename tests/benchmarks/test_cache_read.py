"""The cache-read benchmark checks both paths return the same batch, then times them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_times_both_read_paths_and_reports_their_ratio():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cache_read.py"), "--size", "8", "--batch", "4",
         "--cohort", "10", "--rounds", "1"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["size"], result["batch"], result["cohort"]) == (8, 4, 10)
    assert result["per_sample_sps"] > 0 and result["batch_read_sps"] > 0
    assert result["ratio"] == pytest.approx(result["batch_read_sps"] / result["per_sample_sps"], rel=1e-2)
