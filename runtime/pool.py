"""Many images through one predictor: files prepared in worker processes, inference in batches,
results in input order, an unreadable file one error text among the predictions.

Used by `mnist-edge predict` and the benchmarks; the decisions of when to use workers and how
to print are theirs. Workers are spawned (fresh interpreters, never a fork of a process with
inference threads) and prepare CHUNK_FILES files per task, at most CHUNKS_PER_JOB tasks per
worker in flight, so memory stays flat for a folder of any size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from mnist_edge.errors import MnistEdgeError

CHUNK_FILES = 32  # files a worker prepares per task: few round trips, and results come in steadily
CHUNKS_PER_JOB = 2  # tasks in flight per worker: it never waits for work, and memory stays bounded


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def prepare_or_error(prepare: Callable, path: Path):
    """The model input for one file, or the one-line reason it cannot be read."""
    from mnist_edge.runtime.errors import PreprocessError

    try:
        return prepare(path)
    except PreprocessError as exc:
        return str(exc)


_worker_prepare: Callable | None = None  # set in each worker process by _start_worker


def _start_worker(spec) -> None:
    import signal

    from mnist_edge.runtime.preprocess import preparer

    global _worker_prepare
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle: it stops the pool
    _worker_prepare = preparer(spec)


def _prepare_chunk(paths: list[Path]) -> list:
    return [prepare_or_error(_worker_prepare, path) for path in paths]


def prepared_in_workers(spec, paths: list[Path], jobs: int) -> Iterator[tuple[Path, object]]:
    """(path, model input or error text) for every path, in order, prepared by `jobs` processes
    by the manifest input `spec`'s preprocessing."""
    starts = range(0, len(paths), CHUNK_FILES)
    chunks = (paths[start : start + CHUNK_FILES] for start in starts)
    results = ordered_map(_prepare_chunk, chunks, jobs=jobs, initializer=_start_worker, initargs=(spec,))
    for start, prepared in zip(starts, results):
        yield from zip(paths[start : start + CHUNK_FILES], prepared)


def ordered_map(function: Callable, items: Iterable, *, jobs: int, initializer=None, initargs=()) -> Iterator:
    """function(item) for each item, run by `jobs` worker processes and yielded in input order.

    Items are drawn lazily, at most jobs * CHUNKS_PER_JOB ahead of the one being yielded, so
    neither the inputs nor the results pile up. The workers are spawned (fresh interpreters,
    never a fork of this process and its inference threads) and joined at the end, so their CPU
    time is counted as this process's children's. `function` must be importable by name."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=initializer, initargs=initargs)
    items = iter(items)
    try:
        in_flight = deque(pool.submit(function, item) for item in islice(items, jobs * CHUNKS_PER_JOB))
        while in_flight:
            try:
                result = in_flight.popleft().result()
            except BrokenProcessPool as exc:
                raise MnistEdgeError(
                    f"a worker process preparing the images stopped ({exc}); with --jobs 1 they are read in this process"
                ) from exc
            following = next(items, _NO_MORE)
            if following is not _NO_MORE:
                in_flight.append(pool.submit(function, following))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_NO_MORE = object()


def predicted(predictor, prepared: Iterable[tuple[Path, object]], batch: int) -> Iterator[tuple[Path, object]]:
    """(path, Prediction or error text), in input order, with inference in batches of `batch`."""
    import numpy as np

    pending: list[tuple[Path, object]] = []

    def finish() -> Iterator[tuple[Path, object]]:
        inputs = [item for _, item in pending if not isinstance(item, str)]
        rows = iter(predictor.predict_array(np.stack(inputs)) if inputs else ())
        for path, item in pending:
            yield path, item if isinstance(item, str) else predictor.to_prediction(next(rows))
        pending.clear()

    for path, item in prepared:
        pending.append((path, item))
        if len(pending) == batch:
            yield from finish()
    yield from finish()
