"""Timing for benchmarks: the best of repeated calls after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["best_seconds"]


def best_seconds(fn: Callable[[], Any], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Shortest ``clock`` interval (seconds) of ``repeats`` calls of ``fn``, after one untimed warm-up call.

    ``clock``: ``time.perf_counter`` (wall) or ``time.process_time`` (this process's CPU time, which
    other processes on the machine disturb less).
    """
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best
