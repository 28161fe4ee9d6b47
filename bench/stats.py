"""Percentiles, medians and a closed-loop load driver shared by the benchmarks."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class LoadResult:
    concurrency: int
    latencies_ms: list[float]
    wall_seconds: float
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def p(self, q: float) -> float:
        return pct(self.latencies_ms, q)


async def closed_loop(concurrency: int, total: int, one: Callable[[int], Awaitable[float]]) -> LoadResult:
    """``concurrency`` users each run ``one(i)`` back to back until ``total`` calls were made.

    ``one`` returns the latency of its call in milliseconds or raises; errors are counted, not timed.
    """
    counter = iter(range(total))
    latencies: list[float] = []
    errors: list[str] = []

    async def user() -> None:
        for i in counter:
            try:
                latencies.append(await one(i))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return LoadResult(concurrency, latencies, wall, len(errors), errors[:3])


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"
