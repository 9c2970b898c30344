"""The process pool shared by header reading and volume building, with the store around both.

Headers of files unchanged since the last run, and volumes of unchanged series, come
from the store (:mod:`pipeline.io.store`); the rest is read and built in the pool, in
batches sized so that every worker stays busy and progress is reported every few
seconds. Results come back in the order asked for, whatever order the workers finish in.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from pipeline.io.build_volume import BuildJob, BuildResult, build_volume
from pipeline.io.scan import FileRecord, ValueSharing, read_headers
from pipeline.io.series import Plane
from pipeline.io.store import IngestStore, file_state
from pipeline.io.volume_plan import VolumePlan

HEADER_BATCH = 64
"""Most files per header-reading task: enough to hide the pool's overhead, few enough
for a progress line every few seconds."""

POOL_MIN_FILES = 32
"""Fewer files to read, or planes to build, than this are done in the stage's own process.

Starting the workers (forked: nothing to import) and shipping headers and jobs to them
and back costs a few milliseconds whatever the amount of work; a second core saves half
of about 2.5 ms a file. Measured on a quiet 2-core AVX2 EPYC (header reads of 8-slice
CT series): 16 files 0.066 s in one process, 0.051-0.067 s with two workers; 32 files
0.080 s against 0.074-0.077 s; 80 files 0.28-0.30 s against 0.19-0.21 s. A re-ingest that
adds 10 such series (80 files) to 200 took a median 0.82 s with a threshold of 256 (all
in one process) and 0.61 s with the pool (5 runs each, alternated). On a machine whose
cores are busy with something else the pool gains less; an addition of a series or two
stays in one process."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, files_done, files_total)``."""


class WorkerPool:
    """A process pool started on first use and shared by header reading and volume building.

    Args:
        workers: processes (``ingest.workers``).
        stack: closes the pool with the run.
        min_files: less work than this many files is done in this process
            (:data:`POOL_MIN_FILES`).
    """

    def __init__(self, workers: int, stack: ExitStack, min_files: int = POOL_MIN_FILES) -> None:
        self.workers = workers
        self.min_files = min_files
        self._stack = stack
        self._executor: Executor | None = None

    def worth_it(self, files: int) -> bool:
        """Whether work on ``files`` files goes to the pool rather than this process."""
        return self.workers > 1 and files >= max(self.min_files, 2)

    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._stack.enter_context(ProcessPoolExecutor(max_workers=self.workers))
        return self._executor


def cached_headers(
    raw: Path, wanted: list[str], pool: WorkerPool, max_voxels: int, store: IngestStore | None, progress: Progress
) -> dict[str, FileRecord]:
    """Header records of ``wanted``, in order: from the store where the file is unchanged, else read.

    Each file is stat'ed once, here, before it is read; the store keeps that state for
    the volume entries too (:attr:`IngestStore.states`), so a file changed after this
    point misses both next time instead of matching either.
    """
    root = str(raw)
    states = {path: file_state(os.path.join(root, path)) for path in wanted} if store is not None else {}
    if store is not None:
        store.states.update(states)
    kept = store.load_headers() if store is not None else {}
    records: dict[str, FileRecord] = {}
    for path in wanted:
        record = kept.get((path, states.get(path)))
        if record is not None:
            records[path] = record  # type: ignore[assignment]
    missing = [path for path in wanted if path not in records]
    fresh: dict[str, FileRecord] = {}
    progress("headers", len(records), len(wanted))
    if not pool.worth_it(len(missing)):
        fresh = {r.path: r for r in read_headers(raw, missing, workers=1, max_voxels=max_voxels)}
    else:
        # At least 8 tasks per worker: with few large ones, one worker is left with the last.
        size = max(1, min(HEADER_BATCH, -(-len(missing) // (pool.workers * 8))))
        batches = [missing[i : i + size] for i in range(0, len(missing), size)]
        submit = pool.executor().submit
        futures = [submit(read_headers, raw, batch, workers=1, max_voxels=max_voxels) for batch in batches]
        for future in as_completed(futures):
            fresh.update((r.path, r) for r in future.result())
            progress("headers", len(records) + len(fresh), len(wanted))
    ValueSharing().share(list(fresh.values()))
    records.update(fresh)
    if store is not None:
        keep = {(p, states[p]): records[p] for p in wanted if states[p] is not None}
        if fresh or len(keep) != len(kept):  # unchanged: every kept key was a hit, and no other
            store.save_headers(keep)
    progress("headers", len(wanted), len(wanted))
    return {path: records[path] for path in wanted}


def run_jobs(
    jobs: list[BuildJob], pool: WorkerPool, store: IngestStore | None, suffix: str, progress: Progress
) -> list[BuildResult]:
    """Build every job, or link its volume from the store; results in the order of ``jobs``."""
    results: list[BuildResult | None] = [None] * len(jobs)
    names: dict[int, str] = {}
    sizes = [len(job.headers) or 1 for job in jobs]
    total, done = sum(sizes), 0
    for i, job in enumerate(jobs):
        name = _entry_name(job, store)
        report = store.fetch(name, suffix, job.out_path) if store is not None and name else None
        if report is not None:
            results[i] = BuildResult(job.series_key, tuple(report["shape"]), tuple(report["spacing"]),
                                     list(report["notes"]), report["minimum"], channels=report["channels"])
            done += sizes[i]
        elif name:
            names[i] = name
    todo = [i for i, result in enumerate(results) if result is None]
    parallel = min(pool.workers, len(todo)) if pool.worth_it(sum(sizes[i] for i in todo)) else 1
    for i in todo:
        # Cores left over by the processes go to a .nii.gz's deflate threads.
        jobs[i].threads = max(1, _cores() // max(1, parallel))
    progress("volumes", done, total)
    if parallel <= 1:
        finished = ((i, build_volume(jobs[i])) for i in todo)
    else:
        futures = {pool.executor().submit(build_volume, jobs[i]): i for i in todo}
        finished = ((futures[f], f.result()) for f in as_completed(futures))
    for i, built in finished:
        results[i] = built
        done += sizes[i]
        progress("volumes", done, total)
        if store is not None and i in names and not built.failure:
            report = {"shape": built.shape, "spacing": built.spacing, "notes": built.notes, "minimum": built.minimum,
                      "channels": built.channels}
            store.keep(names[i], suffix, jobs[i].out_path, report)
    return results  # type: ignore[return-value]


def _entry_name(job: BuildJob, store: IngestStore | None) -> str:
    """The store name of ``job``'s result: a hash of all it reads; ``""`` without a store or a file.

    What it reads is its plan and its files: the ``lstat`` of each stands for its bytes,
    and for its header, which the store's header records key by that same state (and
    the code and params that read it, in the store's settings).
    """
    if store is None:
        return ""
    paths = [job.source_file] if job.source_file is not None else sorted(job.headers)
    seen = store.states
    states = [(path, seen[path] if path in seen else file_state(os.path.join(job.raw_dir, path))) for path in paths]
    if any(state is None for _, state in states):
        return ""
    return store.name(repr((job.series_key, job.nifti, job.raster, job.raster_header, _plan_fields(job.plan), states)))


_PLAN_NAMES = [f.name for f in dataclasses.fields(VolumePlan)]
_PLAN_FIELDS = operator.attrgetter(*_PLAN_NAMES)
_PLANES, _AFFINE = _PLAN_NAMES.index("planes"), _PLAN_NAMES.index("affine_lps")
_PLANE_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Plane)))


def _plan_fields(plan: VolumePlan | None) -> tuple | None:
    """Every field of ``plan`` as plain tuples, for the entry name.

    Plain tuples because a dataclass's generated repr costs several times a tuple's, once
    per plane of every series on every run. The fields are read from the dataclasses, so
    a field added to either is part of the name without a change here. The affine is
    written exactly, as bytes: numpy's printed form rounds.
    """
    if plan is None:
        return None
    fields = list(_PLAN_FIELDS(plan))
    fields[_PLANES] = [_PLANE_FIELDS(plane) for plane in plan.planes]
    fields[_AFFINE] = plan.affine_lps.astype("<f8").tobytes().hex()
    return tuple(fields)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
