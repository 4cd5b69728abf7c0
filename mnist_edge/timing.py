"""Timing helpers shared by the benchmarks and the training comparison: percentiles of repeated
calls and throughput. A base module, so training code never imports the benchmark command."""

from __future__ import annotations

import time

import numpy as np

LATENCY_RUNS = 1000
WARMUP_RUNS = 50
THROUGHPUT_SECONDS = 2.0


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn, runs: int = LATENCY_RUNS, warmup: int = WARMUP_RUNS) -> tuple[float, float]:
    """p50 and p99 of `fn()` in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


def throughput(fn, batch: int, seconds: float = THROUGHPUT_SECONDS) -> float:
    """Images per second of `fn()` processing `batch` images per call."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * batch / (time.perf_counter() - start)
