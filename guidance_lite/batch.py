"""Batch runs: many program instances concurrently on one event loop, results in input order.

Why a fixed pool of workers (not one task per input behind a semaphore): at most ``concurrency`` programs exist at
once, so a batch of 100,000 inputs costs ``concurrency`` tasks, and the first failure with
``return_exceptions=False`` stops the batch without having to cancel thousands of waiting tasks.

Why ``processes=``: one event loop uses one core, and a batch against a fast server is bound by the client's CPU (the
template, the request, reading the answer). With ``processes=N`` the inputs are shared out to N forked worker
processes, each running its part on its own loop at ``concurrency // N``; results come back in input order, failed
items as their exceptions (pickled: a failed run's ``partial`` result stays in its worker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from .errors import GuidanceLiteError
from .result import Result
from .results import Results
from .state import ProgramState

PROCESS_CHUNKS = 4  # parts per worker process: a slow part does not leave the other workers idle at the end


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


class BatchError(GuidanceLiteError, RuntimeError):
    """A batch that can't run as asked (worker processes where they can't be forked, a paused run from a worker)."""


def _check_count(name: str, value: Any, allowed: str = "an integer of at least 1") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


async def amap(
    program: Runnable,
    inputs: Iterable[dict],
    *,
    concurrency: int = 16,
    progress: bool = False,
    return_exceptions: bool = True,
    processes: Optional[int] = None,
) -> Results:
    """Run ``program(**kwargs)`` for each dict in ``inputs``, at most ``concurrency`` at a time.

    Results come back in input order, as ``Results`` (a list that shows as a table). A failed item is its exception
    object in its slot; with ``return_exceptions=False`` the first failure cancels the runs in progress and is raised.
    ``processes=N`` (N >= 2) runs the batch in N worker processes (see the module docstring).
    """
    _check_count("concurrency", concurrency)
    if processes is not None:
        _check_count("processes", processes, "None or an integer of at least 1")
    items = _check_inputs(inputs)
    if processes is not None and processes > 1 and len(items) > 1:
        return await _amap_in_processes(program, items, concurrency, progress, return_exceptions, processes)
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


# ---- worker processes ---------------------------------------------------------------------------------------------
_FORKED: dict[int, tuple[Runnable, list[dict]]] = {}  # batches being run in processes: forked children read them here
_batch_numbers = itertools.count()


@dataclass
class FinishedRun:
    """The run behind a Result that came back from a worker process: its state, pickled; it can't be resumed."""

    state: ProgramState
    paused_on: Optional[str] = None
    pauses: int = 0

    async def drive(self, new_variables: Optional[dict] = None) -> Result:
        raise BatchError(
            f"this run paused at {{{{await {self.paused_on!r}}}}} in a worker process of map(processes=…), where it "
            "can't be resumed: run programs that pause without processes="
        )

    def cancel(self) -> None:
        """Nothing to stop: the run ended in its worker."""

    def cancel_if_paused_at(self, pause: int) -> None:
        """Nothing to stop: the run ended in its worker."""


def _portable(outcome: Any) -> Any:
    """A worker's result, made to cross to the parent process: the Result over a FinishedRun (the live run and its
    model stay behind); exceptions pickle themselves (``errors``)."""
    if not isinstance(outcome, Result):
        return outcome
    run = FinishedRun(outcome.state, outcome.paused_on)
    return Result(run, completed=outcome.completed, snapshot=not outcome.completed, error=outcome.error)


def _run_part(batch: int, indices: list[int], concurrency: int) -> tuple[list[Any], list[Optional[float]]]:
    """In a worker process: run the inputs at ``indices`` of a forked batch on a loop of its own (results and
    seconds)."""
    program, items = _FORKED[batch]
    outcomes = asyncio.run(amap(program, [items[i] for i in indices], concurrency=concurrency))
    return [_portable(outcome) for outcome in outcomes], outcomes.seconds


def _parts(count: int, processes: int) -> Iterator[list[int]]:
    size = max(1, -(-count // (processes * PROCESS_CHUNKS)))
    for start in range(0, count, size):
        yield list(range(start, min(start + size, count)))


async def _amap_in_processes(
    program: Runnable, items: list[dict], concurrency: int, progress: bool, return_exceptions: bool, processes: int
) -> Results:
    if "fork" not in multiprocessing.get_all_start_methods():
        raise BatchError("map(processes=…) forks worker processes, which this platform can't do: leave processes= out")
    batch = next(_batch_numbers)
    _FORKED[batch] = (program, items)
    results: list[Any] = [None] * len(items)
    seconds: list[Optional[float]] = [None] * len(items)
    started = time.perf_counter()
    bar: Optional[Any] = _progress_bar(len(items)) if progress else None
    loop = asyncio.get_running_loop()
    per_process = max(1, concurrency // processes)
    pool = concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))

    async def part(indices: list[int]) -> tuple[list[int], tuple[list[Any], list[Optional[float]]]]:
        return indices, await loop.run_in_executor(pool, _run_part, batch, indices, per_process)

    finished_all = False
    try:
        for finished in asyncio.as_completed([part(indices) for indices in _parts(len(items), processes)]):
            indices, (outcomes, durations) = await finished
            for index, outcome, duration in zip(indices, outcomes, durations):
                if isinstance(outcome, BaseException) and not return_exceptions:
                    raise outcome
                results[index], seconds[index] = outcome, duration
            if bar is not None:
                bar.update(len(outcomes))
        finished_all = True
    finally:
        # done: the workers are idle and exit at once (and are reaped); after a failure parts not started are dropped
        pool.shutdown(wait=finished_all, cancel_futures=True)
        del _FORKED[batch]
        if bar is not None:
            bar.close()
    wall_time = time.perf_counter() - started
    return Results(results, inputs=items, seconds=seconds, wall_time=wall_time, defaults=program.defaults)
