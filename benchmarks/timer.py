"""Shared by the benchmark scripts (run as ``python benchmarks/<script>.py``: this folder is on sys.path)."""
import time
from typing import Callable


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` timed calls after one untimed warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
