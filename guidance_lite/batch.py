"""Batch runs: many program instances concurrently on one event loop, results in input order."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .program import Program


async def amap(program: "Program", inputs: list, *, concurrency: int = 16, progress: bool = False,
               return_exceptions: bool = True) -> list:
    """Run ``program(**kwargs)`` for each dict in ``inputs``; a failed item is its exception object (or raises with
    ``return_exceptions=False``)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    items = list(inputs)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"map takes a list of dicts of program arguments; item {i} is a {type(item).__name__}")
    results: list[Any] = [None] * len(items)
    bar: Optional[Any] = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), desc="programs")
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int, kwargs: dict) -> None:
        async with semaphore:
            try:
                results[i] = await program.arun(silent=True, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported in its slot
                if not return_exceptions:
                    raise
                results[i] = exc
            finally:
                if bar is not None:
                    bar.update(1)

    tasks = [asyncio.ensure_future(one(i, kw)) for i, kw in enumerate(items)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
    return results
