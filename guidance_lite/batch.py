"""Batch runs: many program instances concurrently on one event loop, results in input order.

Why a fixed pool of workers (not one task per input behind a semaphore): at most ``concurrency`` programs exist at
once, so a batch of 100,000 inputs costs ``concurrency`` tasks, and the first failure with
``return_exceptions=False`` stops the batch without having to cancel thousands of waiting tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Optional, Protocol

from .result import Result
from .results import Results


class Runnable(Protocol):
    """What a batch runs: a ``Program`` (typed as a protocol so that this module sits below ``program``)."""

    defaults: dict  # shown in a batch's table only when a run changed them

    async def arun(self, **kwargs: Any) -> Result: ...


def _progress_bar(total: int) -> Any:
    """A tqdm bar: a widget in notebooks when ipywidgets is installed, text on stderr otherwise (tqdm.auto would
    warn "IProgress not found" in a notebook without ipywidgets)."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(total=total, desc="programs", unit="program")


def _check_inputs(inputs: Iterable[Any]) -> list[dict]:
    if isinstance(inputs, (str, bytes)) or hasattr(inputs, "keys"):
        raise TypeError(
            f"map takes a list of dicts of program arguments (one dict per run), not a single {type(inputs).__name__}"
        )
    items = list(inputs)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TypeError(f"map takes a list of dicts of program arguments; item {i} is a {type(item).__name__}")
    return items


async def amap(
    program: Runnable,
    inputs: Iterable[dict],
    *,
    concurrency: int = 16,
    progress: bool = False,
    return_exceptions: bool = True,
) -> Results:
    """Run ``program(**kwargs)`` for each dict in ``inputs``, at most ``concurrency`` at a time.

    Results come back in input order, as ``Results`` (a list that shows as a table). A failed item is its exception
    object in its slot; with ``return_exceptions=False`` the first failure cancels the runs in progress and is raised.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer of at least 1, got {concurrency!r}")
    items = _check_inputs(inputs)
    results: list[Any] = [None] * len(items)
    seconds: list[Optional[float]] = [None] * len(items)
    started = time.perf_counter()
    if not items:
        return Results(inputs=items, defaults=program.defaults, wall_time=0.0)
    bar: Optional[Any] = _progress_bar(len(items)) if progress else None
    pending = iter(range(len(items)))  # shared by the workers: each index is taken exactly once

    async def worker() -> None:
        for i in pending:
            run_started = time.perf_counter()
            try:
                results[i] = await program.arun(**{"silent": True, "stream": False, **items[i]})
            except Exception as exc:
                if not return_exceptions:
                    raise
                results[i] = exc
            finally:
                seconds[i] = time.perf_counter() - run_started
                if bar is not None:
                    bar.update(1)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)  # let cancelled runs clean up before raising
        raise
    finally:
        if bar is not None:
            bar.close()
    wall_time = time.perf_counter() - started
    return Results(results, inputs=items, seconds=seconds, wall_time=wall_time, defaults=program.defaults)
