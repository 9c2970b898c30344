"""The shared pool: headers read in parallel batches come back complete and in the order asked; small work stays in process."""

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
        pool = WorkerPool(2, stack, min_files=8)
        pooled = cached_headers(tmp_path, wanted, pool, MAX_VOXELS, None, lambda *c: calls.append(c))
        assert pool._executor is not None  # read in the workers
    serial = read_headers(tmp_path, wanted, workers=1, max_voxels=MAX_VOXELS)
    assert list(pooled) == wanted
    assert [(r.path, r.kind, r.reason, r.dicom) for r in pooled.values()] == [
        (r.path, r.kind, r.reason, r.dicom) for r in serial
    ]
    assert calls[0] == ("headers", 0, 18) and calls[-1] == ("headers", 18, 18)
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)


def test_work_below_the_pool_threshold_stays_in_this_process_and_equals_the_pooled_result(tmp_path: Path) -> None:
    from pipeline.io.build_volume import BuildJob
    from pipeline.io.series import group_series
    from pipeline.io.volume_plan import plan_volume
    from pipeline.io.worker_pool import POOL_MIN_FILES, run_jobs

    for index in range(3):
        write_ct_series(tmp_path / "raw" / f"s{index}", 4, seed=index)
    wanted = walk(tmp_path / "raw")
    assert len(wanted) < POOL_MIN_FILES
    results = {}
    for name, threshold in (("in process", POOL_MIN_FILES), ("pool", 1)):
        with ExitStack() as stack:
            pool = WorkerPool(2, stack, min_files=threshold)
            records = cached_headers(tmp_path / "raw", wanted, pool, MAX_VOXELS, None, lambda *c: None)
            headers = {p: r.dicom for p, r in records.items() if r.dicom is not None}
            jobs = []
            for candidate in group_series(headers)[0]:
                plan = plan_volume(candidate, "reject").plan
                out = tmp_path / name / f"{len(jobs)}.nii"
                jobs.append(BuildJob(str(len(jobs)), str(tmp_path / "raw"), str(out), plan, candidate.headers))
            (tmp_path / name).mkdir()
            built = run_jobs(jobs, pool, None, ".nii", lambda *c: None)
            assert (pool._executor is not None) == (name == "pool")
        results[name] = (records, [(b.shape, b.spacing, b.minimum) for b in built],
                         [(tmp_path / name / f"{i}.nii").read_bytes() for i in range(len(jobs))])
    assert len(results["pool"][2]) == 3
    assert results["in process"] == results["pool"]
