"""Handing a run's events to the code that consumes them (``program.astream()``, ``program.stream()``) as each one is
decided, not after a burst.

Why this is needed: the interpreter emits events synchronously, and a burst of stream chunks already in the socket
buffer is read without the run ever suspending. A consumer that is another task (``astream``) or another thread
(``stream``) would therefore see nothing until the whole burst was processed. So the run calls
``RunContext.deliver()`` after emitting a streaming event, and the channel below yields to its consumer then, and
only when that consumer is waiting for an event (a consumer still busy with the previous one needs no yield).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional

from .events import Event


class EventChannel:
    """The events of one run on their way to one async consumer: a queue, plus a wake-up for a consumer waiting on
    it. ``put`` is the run's listener; the consumer ``take``s events and ``wait``s for more."""

    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self.woken = False  # a waiting consumer was woken and has not run yet: the run should yield to it

    def put(self, event: Event) -> None:
        self._events.append(event)
        self._wake()

    async def hand_over(self) -> None:
        """Let a consumer that was waiting take what was just put (one loop turn), before the run goes on."""
        if self.woken:
            self.woken = False
            await asyncio.sleep(0)

    def take(self) -> Optional[Event]:
        """The oldest event not taken yet (None when there is none)."""
        return self._events.popleft() if self._events else None

    async def wait(self, run: asyncio.Future) -> None:
        """Until an event is put or ``run`` is done."""
        if self._events or run.done():
            return
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        run.add_done_callback(self._run_done)
        try:
            await waiter
        finally:
            self._waiter = None
            run.remove_done_callback(self._run_done)

    def _run_done(self, run: asyncio.Future) -> None:
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
            self.woken = True


__all__ = ["EventChannel"]
