"""Run a command in a fresh process and measure its peak resident memory.

``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the largest peak of any child a
process has waited for, so a test runner that started a big child earlier would read
that one. A small wrapper process runs the command as its only child (with its pool
workers as grandchildren, which Linux counts once they are waited for) and reports that
child's peak alone. An address-space limit keeps code that would balloon from taking
the machine down: it fails with MemoryError instead, which the test then sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ADDRESS_LIMIT_BYTES = 3 * 2**30
"""Virtual memory the measured process may map: far above any bound a test asserts
(imports alone map several hundred MB), far below what a runaway allocation asks for."""

_WRAPPER = """
import json, resource, subprocess, sys
report, limit, argv = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
code = subprocess.call(argv, preexec_fn=cap)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(report, "w") as handle:
    json.dump({"returncode": code, "peak_bytes": peak_kib * 1024}, handle)
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def run_measured(
    argv: list[str],
    *,
    timeout: float = 120,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    address_limit: int = ADDRESS_LIMIT_BYTES,
) -> Measured:
    """Run ``argv`` under an address-space limit; return its output and peak RSS."""
    environment = dict(os.environ if env is None else env)
    # One BLAS thread: thread arenas inflate virtual memory, not what is measured.
    environment.setdefault("OPENBLAS_NUM_THREADS", "1")
    environment.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(report), str(address_limit), json.dumps(argv)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=environment,
        )
        facts = json.loads(report.read_text()) if report.exists() else {"returncode": done.returncode, "peak_bytes": -1}
    return Measured(facts["returncode"], done.stdout, done.stderr, facts["peak_bytes"])


def run_python(code: str, **kwargs) -> Measured:  # noqa: ANN003
    """:func:`run_measured` for a Python snippet run from the repository root."""
    root = Path(__file__).resolve().parents[2]
    return run_measured([sys.executable, "-c", code], cwd=kwargs.pop("cwd", root), **kwargs)


HOSTILE_PEAK_BYTES = 400 * 2**20
"""Peak RSS allowed while one hostile header is classified (imports take about 150 MB)."""


def classify_in_subprocess(path: Path, *, max_voxels: int) -> tuple[str, str, float]:
    """``(kind, reason, peak bytes)`` of :func:`pipeline.io.scan.read_header` on ``path``, in a fresh process."""
    code = (
        "import json; from pipeline.io.scan import read_header; "
        f"r = read_header({str(path)!r}, 'f', max_voxels={max_voxels}); print(json.dumps([r.kind, r.reason]))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    kind, reason = json.loads(done.stdout.strip().splitlines()[-1])
    return kind, reason, done.peak_bytes
