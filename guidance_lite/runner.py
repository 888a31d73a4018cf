"""Running async programs from sync code: one background event-loop thread, shared by every sync call.

Why a thread instead of ``asyncio.run``: the sync API must work inside a running notebook loop (no nesting), and a
paused program keeps its suspended task alive on this loop until it is resumed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable
from typing import Optional, TypeVar

T = TypeVar("T")

CANCEL_GRACE = 2.0  # seconds an interrupted sync call waits for its run to finish cancelling
_lock = threading.Lock()
_loop: Optional[asyncio.AbstractEventLoop] = None


def background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                ready.set()
                loop.run_forever()

            threading.Thread(target=serve, name="guidance_lite-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


def run_sync(coro: Awaitable[T]) -> T:
    """Run ``coro`` on the background loop and wait for it (works with or without a running loop here)."""
    loop = background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError(
            "a synchronous guidance_lite call was made from inside a running program "
            "(e.g. from an async helper): await program.arun(...) instead"
        )
    __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
    finished = threading.Event()

    async def tracked() -> T:
        try:
            return await coro
        finally:
            finished.set()

    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(tracked(), loop)
    try:
        return future.result()
    except KeyboardInterrupt:
        # Kernel > Interrupt: cancel the run and let it finish cancelling (its live view then says "Interrupted"
        # and its connections close) before the cell ends, so nothing of it lands in the next cell.
        future.cancel()
        finished.wait(timeout=CANCEL_GRACE)
        raise


def _shutdown() -> None:
    """At exit, cancel programs still paused on the background loop (instead of "Task was destroyed" noise)."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return

    async def cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=2)
    loop.call_soon_threadsafe(loop.stop)


atexit.register(_shutdown)


__all__ = ["run_sync", "background_loop"]
