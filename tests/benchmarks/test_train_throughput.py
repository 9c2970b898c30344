"""The throughput benchmark runs every part and ends with the JSON line others read.

A tiny setting (16^3, batch 2, two timed steps) checks the wiring, not the speed: the
figures are whatever this machine gives, so only their consistency is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = ("device", "compute_limit_sps", "pipeline_sps", "monai_tutorial_sps", "pipeline_vs_compute",
        "pipeline_vs_tutorial", "peak_rss_mb")


def test_prints_every_part_and_a_consistent_summary_with_the_cohort_held_in_memory():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "train_throughput.py"), "--device", "cpu", "--size", "16",
         "--batch", "2", "--steps", "2", "--warmup", "1", "--cohort", "8", "--rounds", "1",
         "--device-cache", "true"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert all(key in summary for key in KEYS)
    assert summary["device"].startswith("CPU")
    a, b, c = summary["compute_limit_sps"], summary["pipeline_sps"], summary["monai_tutorial_sps"]
    assert min(a, b, c) > 0 and summary["peak_rss_mb"] > 0
    # the ratios a reader quotes are the ones printed, measured in this run
    ratios = next(line for line in lines if line.startswith("b/a = "))
    assert ratios.split() == ["b/a", "=", f"{summary['pipeline_vs_compute']:.3f}",
                              "b/c", "=", f"{summary['pipeline_vs_tutorial']:.3f}"]
    # the precision is auto's for this CPU and a 3D model (the default --dims), and the run says why
    native = summary["cpu_native_bf16"]
    assert summary["setup"]["precision"] == ("bf16-mixed" if native and summary["setup"]["dims"] == 2 else "32")
    assert summary["cpu_capability"] in summary["precision_reason"]
    assert f"precision {summary['setup']['precision']}: {summary['precision_reason']}" in lines
    # forced into (CPU) memory, (b) is also timed streamed, and both are printed
    assert summary["cache_placement"] == "device" and summary["pipeline_streamed_sps"] > 0
    assert any(line.startswith("(b) project path") and "(cache device)" in line for line in lines)
    assert any("(b) with the cache streamed" in line for line in lines)
    assert any(line.startswith("(d) data path alone, 8 volumes") and "cache device" in line for line in lines)
