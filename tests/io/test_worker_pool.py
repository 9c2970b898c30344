"""The shared pool: headers read in parallel batches come back complete and in the order asked."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from pipeline.io.scan import read_headers
from pipeline.io.tree import walk
from pipeline.io.worker_pool import WorkerPool, cached_headers
from tests.io.dicom_builders import write_ct_series
from tests.io.shipped import MAX_VOXELS


def test_headers_read_in_the_pool_equal_a_serial_read_in_the_order_asked(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "a", 9, seed=1)
    write_ct_series(tmp_path / "b", 9, seed=2)
    wanted = list(reversed(walk(tmp_path)))  # not the order the workers finish in
    calls: list[tuple[str, int, int]] = []
    with ExitStack() as stack:
        pooled = cached_headers(tmp_path, wanted, WorkerPool(2, stack), MAX_VOXELS, None, lambda *c: calls.append(c))
    serial = read_headers(tmp_path, wanted, workers=1, max_voxels=MAX_VOXELS)
    assert list(pooled) == wanted
    assert [(r.path, r.kind, r.reason, r.dicom) for r in pooled.values()] == [
        (r.path, r.kind, r.reason, r.dicom) for r in serial
    ]
    assert calls[0] == ("headers", 0, 18) and calls[-1] == ("headers", 18, 18)
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)
