"""What the client modules (``runs_*``) share: the batch-client shape, the worker pool that drives a batch and the
error that says a client can't run in this environment.

Every client library is driven the same way (a fixed pool of ``concurrency`` coroutines taking the next index, as
``program.amap`` does), so the figures differ by what the library does per request, not by how the batch is driven.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Iterable, Protocol

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
