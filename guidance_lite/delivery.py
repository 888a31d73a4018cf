"""Handing a run's events to the code that consumes them (``program.astream()``, ``program.stream()``) as each one is
decided, not after a burst.

Why this is needed: the interpreter emits events synchronously, and a burst of stream chunks already in the socket
buffer is read without the run ever suspending. A consumer that is another task (``astream``) or another thread
(``stream``) would therefore see nothing until the whole burst was processed. So the run calls
``RunContext.deliver()`` after emitting a streaming event, and when the channel asks for it (``needs_hand_over``)
the run lets the consumer take the event before going on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from typing import Any, Optional, Protocol

from .events import Event


class Channel(Protocol):
    """What a run needs of its consumer's channel: ``put`` (a listener) and ``hand_over`` (after a streaming event,
    when ``needs_hand_over``; ``first``: the first streaming event of a model reply)."""

    needs_hand_over: bool

    def put(self, event: Event) -> None: ...

    async def hand_over(self, first: bool) -> None: ...


class EventChannel:
    """The events of one run on their way to one async consumer (``astream``): a queue, plus a wake-up for a
    consumer waiting on it. ``put`` is the run's listener; the consumer ``take``s events and ``wait``s for more.
    The run yields one loop turn after an event that woke the consumer (a consumer still busy needs no yield)."""

    def __init__(self) -> None:
        self._events: deque[Event] = deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self.needs_hand_over = False  # a waiting consumer was woken and has not run yet

    def put(self, event: Event) -> None:
        self._events.append(event)
        self._wake()

    async def hand_over(self, first: bool) -> None:
        """One loop turn: the woken consumer takes what was put before the run goes on."""
        self.needs_hand_over = False
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
            self.needs_hand_over = True


class ThreadChannel:
    """The events of one run (on the background loop) on their way to a consumer in another thread (sync
    ``stream()``). The first streaming event of each model reply is handed over: the run waits until the consumer
    is done with it and asks for the next (a thread woken by a lock gets the GIL only after the switch interval,
    5 ms, while the run would process more of the burst). Later events of the reply are not waited for: a round
    trip between the threads per event would make reading a burst a third slower, and the consumer takes them at the
    next switch. A consumer that stops asking without closing the iterator holds the run at a reply's first event,
    as a generator would; closing it (or leaving its ``for`` loop) cancels the run."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._box: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the counters and _ack between the two threads
        self._put = 0  # events put so far
        self._taken = 0  # events the consumer is done with (it asked for the next item after them)
        self._holding = False  # the consumer holds an event it got (consumer thread only)
        self._awaited = 0  # the event number the run waits for the consumer to take
        self._ack: Optional[asyncio.Future[None]] = None
        self.needs_hand_over = False

    # ---- the run's side (on the loop) ---------------------------------------------------------------------------
    def put(self, event: Event) -> None:
        with self._lock:
            self._put += 1
        self._box.put(("event", event))
        self.needs_hand_over = True

    async def hand_over(self, first: bool) -> None:
        """For a reply's ``first`` event: wait until the consumer is done with it."""
        self.needs_hand_over = False
        if not first:
            return
        with self._lock:
            if self._taken >= self._put:
                return
            self._awaited = self._put
            self._ack = ack = self._loop.create_future()
        try:
            await ack
        finally:
            self._ack = None

    def end(self, error: Optional[BaseException] = None) -> None:
        """The run is over (``error``: what the consumer raises after the events)."""
        self._box.put(("error", error) if error is not None else ("end", None))

    # ---- the consumer's side (its own thread) --------------------------------------------------------------------
    def get(self) -> tuple[str, Any]:
        """The next item: ``("event", event)``, ``("error", exception)`` or ``("end", None)``; blocks until one.
        Asking for the next item is what says the consumer is done with the previous event."""
        if self._holding:
            self._holding = False
            with self._lock:
                self._taken += 1
                ack = self._ack if self._ack is not None and self._taken >= self._awaited else None
                if ack is not None:
                    self._ack = None
            if ack is not None:
                self._loop.call_soon_threadsafe(_resolve, ack)
        item = self._box.get()
        self._holding = item[0] == "event"
        return item


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["Channel", "EventChannel", "ThreadChannel"]
