"""``gl.models.Replay``: a backend that answers from a recorded trace, so yesterday's run re-runs without a server,
a key or side effects.

Each request is matched by content (the conversation or prompt, the parameters, the offered tools) against the
recorded requests not yet answered, earliest first, and answered with the recorded stream (the same pieces, so a
replayed stream emits the same events) and response. A request the trace does not hold means the run diverged
(template or inputs changed): :class:`ReplayMismatch` names it and shows how it differs from the next recorded one.
Tool calls get their recorded outcomes (the tools are not called) unless ``tools="live"``.
"""

from __future__ import annotations

import difflib
import json
import os
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Optional, Union

from .. import tracefile
from ..tools.call import ToolCall
from ..tools.records import ToolCallRecord
from ..tracefile import RecordedModelCall, Recording
from .base import Completion, Delta, GenRequest, Model, ModelError

TOOL_MODES = ("recorded", "live")


class ReplayMismatch(ModelError):
    """A replayed run asked for something its trace does not hold: it diverged from the recorded run.

    ``number`` is the request's position in this replay (1 for the first), ``request`` its document, ``recorded`` the
    recorded request it was compared with (None when every recorded one was used) and ``diff`` their unified diff."""

    def __init__(
        self, message: str, *, number: int = 0, request: Optional[dict] = None, recorded: Optional[dict] = None
    ) -> None:
        diff = "" if request is None or recorded is None else request_diff(recorded, request, number)
        super().__init__(f"{message}\n{diff}" if diff else message)  # the diff is part of the message people see
        self.number = number
        self.request = request
        self.recorded = recorded
        self.diff = diff


def _pretty(document: Any) -> list[str]:
    return json.dumps(document, indent=2, ensure_ascii=False).splitlines()


def request_diff(recorded: dict, request: dict, number: int) -> str:
    """The unified diff of two request documents, recorded first."""
    lines = difflib.unified_diff(
        _pretty(recorded), _pretty(request), "recorded request", f"request {number}", lineterm="", n=2
    )
    return "\n".join(lines)


def _key(document: Any) -> str:
    return json.dumps(document, sort_keys=True, ensure_ascii=False)


def _request_key(document: dict) -> str:
    """What a request is matched on: the document without ``params.stream`` (whether the answer was streamed depends
    on who watched the run — a silent recording replayed with ``--stream`` is the same conversation)."""
    params = document.get("params")
    if isinstance(params, dict) and "stream" in params:
        document = {**document, "params": {k: v for k, v in params.items() if k != "stream"}}
    return _key(document)


class Replay(Model):
    """Answers requests from the trace at ``trace`` (a path, or a ``tracefile.Recording``).

    ``tools="recorded"`` (the default) gives each tool call its recorded outcome without calling the tool;
    ``tools="live"`` runs the tools. ``requests`` keeps every request this replay answered (as ``Mock.requests``).
    """

    chat = True
    text = True
    supports_prefill = True
    can_constrain = True

    def __init__(self, trace: Union[str, os.PathLike, Recording], *, tools: str = "recorded") -> None:
        if tools not in TOOL_MODES:
            raise ValueError(f"Replay(tools=…) must be 'recorded' or 'live', not {tools!r}")
        self.recording = trace if isinstance(trace, Recording) else tracefile.read(trace)
        self.tools = tools
        self.requests: list[GenRequest] = []
        self._calls = [c for c in self.recording.model_calls if c.response is not None or c.error is not None]
        self._unused: dict[str, deque[int]] = {}  # request document (canonical JSON) -> recorded calls, in order
        for index, call in enumerate(self._calls):
            self._unused.setdefault(_request_key(call.request), deque()).append(index)
        self._answered = [False] * len(self._calls)
        self._next = 0  # the earliest recorded call not yet answered
        self._outcomes: dict[str, deque[dict]] = {}  # (id, name, arguments) -> recorded records of calls that ran
        for tool in self.recording.tool_calls:
            if tool.ran and tool.record is not None:
                key = _key([tool.id, tool.name, tool.record.get("arguments")])
                self._outcomes.setdefault(key, deque()).append(tool.record)
        self.name = self._calls[0].model if self._calls and self._calls[0].model else "replay"

    def __repr__(self) -> str:
        return f"Replay({self.recording.path!r}, tools={self.tools!r})"

    # ---- model calls -----------------------------------------------------------------------------------------------
    def _answer(self, request: GenRequest) -> RecordedModelCall:
        self.requests.append(request)
        number = len(self.requests)
        document = json.loads(tracefile.dumps(tracefile.request_document(request)))
        waiting = self._unused.get(_request_key(document))
        if waiting:
            index = waiting.popleft()
            self._answered[index] = True
            while self._next < len(self._calls) and self._answered[self._next]:
                self._next += 1
            return self._calls[index]
        where = f"replay of {self.recording.path}: request {number} sent to this Replay matches no recorded request"
        if self._next >= len(self._calls):
            raise ReplayMismatch(
                f"{where}: the trace's {len(self._calls)} recorded request(s) were all answered already "
                "(the run asks the model more than the recorded one did)",
                number=number,
                request=document,
            )
        expected = self._calls[self._next]
        gen = f", gen {expected.variable!r}" if expected.variable else ""
        raise ReplayMismatch(
            f"{where}; it differs from the next recorded request (run {expected.run}, model call "
            f"{expected.index}{gen}):",
            number=number,
            request=document,
            recorded=expected.request,
        )

    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        recorded = self._answer(request)
        for chunk in recorded.chunks:
            yield tracefile.chunk_from(chunk)
        if recorded.response is None:
            raise ModelError((recorded.error or {}).get("message") or "the recorded call failed")
        yield tracefile.completion_from(recorded.response)

    # ---- tool calls ------------------------------------------------------------------------------------------------
    def tool_outcome(self, call: ToolCall, arguments: dict) -> Optional[ToolCallRecord]:
        if self.tools == "live":
            return None
        waiting = self._outcomes.get(_key([call.id, call.name, tracefile.to_json(arguments)]))
        if not waiting:
            raise ReplayMismatch(
                f"replay of {self.recording.path}: the tool call {call.name}({call.arguments_json}) (id {call.id}, "
                f"arguments used {json.dumps(tracefile.to_json(arguments), ensure_ascii=False)}) has no recorded "
                "outcome: the run diverged, or replay with tools='live' to run the tools"
            )
        return tracefile.record_from(waiting.popleft())


__all__ = ["Replay", "ReplayMismatch", "request_diff"]
