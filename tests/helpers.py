"""Helpers shared by several test modules (imported as ``from helpers import …``; tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Optional

from guidance_lite.models.base import Completion, Delta, GenRequest

# The explicit tool loop, verbatim, and the automatic loop written the same way.
EXPLICIT_LOOP = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(10)~}}
  {{#assistant~}}{{gen 'answer' tools=tools tool_choice='auto'}}{{~/assistant}}
  {{~#if not callable(answer)}}{{break}}{{/if~}}
  {{#function~}}{{answer()}}{{~/function}}
{{~/each}}
"""

AUTO_LOOP = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}{{gen 'answer' tools=tools max_rounds=5}}{{~/assistant}}"""


async def collect(model: Any, request: GenRequest) -> tuple[list[Delta], Completion]:
    """Drain a backend's stream: the deltas, and the final Completion (which must come)."""
    deltas: list[Delta] = []
    final: Optional[Completion] = None
    async for item in model.stream(request):
        if isinstance(item, Completion):
            assert final is None, "exactly one Completion"
            final = item
        else:
            assert final is None, "Deltas come before the Completion"
            deltas.append(item)
    assert final is not None
    return deltas, final


def assert_every_call_answered(messages: list[dict]) -> None:
    """Each assistant tool call is answered by exactly one following tool message, in call order."""
    waiting: list[str] = []
    for message in messages:
        if message["role"] == "tool":
            assert waiting, f"tool message {message} answers no call"
            assert message["tool_call_id"] == waiting.pop(0)
        else:
            assert not waiting, f"calls {waiting} have no result before a {message['role']} message"
            waiting = [c["id"] for c in message.get("tool_calls") or []]
    assert not waiting, f"calls {waiting} were never answered"


class Overlap:
    """Proof of concurrency by overlap, not by speed: every participant waits inside until ``parties`` of them are
    inside at the same time. Calls made one after the other never get there, so the first one fails after
    ``timeout`` (TimeoutError) instead of a wall-clock ratio deciding. ``peak`` is the most that were inside at once.

    ``wait()`` is for threads (sync tools, server handlers), ``await arrive()`` for coroutines on an event loop.
    """

    def __init__(self, parties: int, timeout: float = 30.0) -> None:
        self.parties = parties
        self.timeout = timeout
        self.inside = 0
        self.peak = 0
        self._cond = threading.Condition()

    def _enter(self) -> None:
        with self._cond:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self._cond.notify_all()

    def _leave(self) -> None:
        with self._cond:
            self.inside -= 1

    def _fail(self) -> TimeoutError:
        return TimeoutError(f"only {self.peak} of {self.parties} ran at the same time within {self.timeout}s")

    def wait(self) -> None:
        self._enter()
        try:
            with self._cond:
                if not self._cond.wait_for(lambda: self.peak >= self.parties, self.timeout):
                    raise self._fail()
        finally:
            self._leave()

    async def arrive(self) -> None:
        self._enter()
        try:
            deadline = time.monotonic() + self.timeout
            while self.peak < self.parties:
                if time.monotonic() > deadline:
                    raise self._fail()
                await asyncio.sleep(0.005)
        finally:
            self._leave()
