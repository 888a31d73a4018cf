"""What the client modules (``runs_*``) share: the batch-client shape, the worker pool that drives a batch, the
first-text stopwatch, warm-up-then-sample, and the error that says a client can't run in this environment.

Every client library is driven the same way (a fixed pool of ``concurrency`` coroutines taking the next index, as
``program.amap`` does), so the figures differ by what the library does per request, not by how the batch is driven.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional, Protocol


class Unavailable(RuntimeError):
    """The client can't run here (its package is not installed in this environment): a skip, not a failure."""


class BatchClient(Protocol):
    """One client configuration for the batch: answers for the programs ``indices`` (``scenarios.question(i)``),
    in order, at most ``concurrency`` in flight."""

    async def run(self, indices: list[int], concurrency: int) -> list[str]: ...

    async def close(self) -> None: ...


async def pool(indices: Iterable[int], concurrency: int, one: Callable[[int], Awaitable[str]]) -> list[str]:
    """``one(i)`` for every index with ``concurrency`` workers; results in input order (the first error raises)."""
    items = list(indices)
    results: list[str] = [""] * len(items)
    pending = iter(range(len(items)))

    async def worker() -> None:
        for position in pending:
            results[position] = await one(items[position])

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)))))
    return results


class PooledBatch:
    """A batch client that answers one program at a time (``one``), driven by ``pool``."""

    async def one(self, i: int) -> str:
        raise NotImplementedError

    async def run(self, indices: list[int], concurrency: int) -> list[str]:
        return await pool(indices, concurrency, self.one)


class FirstText:
    """Times the first non-empty piece of text since it was made, and keeps every piece to check the whole answer."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: Optional[float] = None
        self.parts: list[str] = []

    def add(self, text: Optional[str]) -> None:
        if text:
            if self.first is None:
                self.first = time.perf_counter() - self.started
            self.parts.append(text)

    def seconds(self, expected: str, who: str) -> float:
        """Seconds to the first text, once the whole text is checked against ``expected``."""
        text = "".join(self.parts)
        if text != expected or self.first is None:
            raise AssertionError(f"{who} streamed {text[:60]!r}…, not the expected text")
        return self.first


async def warm_samples(once: Callable[[], Awaitable[float]], repeats: int) -> list[float]:
    """One untimed warm-up (client, connection, caches), then ``repeats`` samples."""
    await once()
    return [await once() for _ in range(repeats)]


def server_cpu(stats_url: str) -> float:
    """The server process's CPU seconds so far (``GET /_stats``)."""
    with urllib.request.urlopen(stats_url, timeout=10) as response:
        return float(json.loads(response.read())["cpu"])


@dataclass
class BatchTiming:
    answers: list[str]
    seconds: float  # wall
    cpu: float  # this process, every thread
    server_cpu: float  # the server process over the same window


def _cpu_with_children() -> float:
    """This process's CPU seconds plus those of its ended worker processes (``map(processes=…)`` reaps its workers)."""
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


async def timed_batch(
    client: BatchClient, programs: int, concurrency: int, server_cpu: Callable[[], float], profiler: Any = None
) -> BatchTiming:
    """One round of ``concurrency`` programs to warm up (connection pool, imports, caches), then programs
    ``0..programs-1`` timed (and profiled, when a ``cProfile.Profile`` is given)."""
    await client.run(list(range(programs, programs + concurrency)), concurrency)
    gc.collect()
    server_before = server_cpu()
    cpu_before, started = _cpu_with_children(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    answers = await client.run(list(range(programs)), concurrency)
    if profiler is not None:
        profiler.disable()
    seconds, cpu = time.perf_counter() - started, _cpu_with_children() - cpu_before
    return BatchTiming(answers, seconds, cpu, server_cpu() - server_before)
