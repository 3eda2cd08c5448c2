"""How fast a model predicts: its first call on its own, then warm calls timed, as statistics.

Every call returns NumPy arrays, so a GPU's asynchronous work is finished inside the time."""

import statistics
import time

import numpy as np


def time_calls(call, warmup: int, repeats: int) -> list:
    """The seconds of `repeats` calls, after `warmup` untimed ones; no call at all when
    `repeats` is 0 (timing off)."""
    if repeats == 0:
        return []
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def speed_metrics(first: float, seconds: list, sequences: int, timesteps: int) -> dict:
    """predict.* and throughput.* metrics: throughput is sequences (and timesteps) over the
    median call."""
    metrics = {"predict.first_seconds": first}
    if not seconds:
        return metrics
    median = statistics.median(seconds)
    low, high = np.percentile(seconds, [25, 75])
    metrics.update({
        "predict.median_seconds": median,
        "predict.min_seconds": min(seconds),
        "predict.iqr_seconds": float(high - low),
        "throughput.sequences_per_second": sequences / median,
        "throughput.timesteps_per_second": sequences * timesteps / median,
    })
    return metrics
