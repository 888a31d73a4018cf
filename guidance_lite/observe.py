"""Observers: the one way to watch a run from outside — its start and end, every model call (the request as sent,
the streamed pieces, the response) and every tool call (arguments, result or error, duration).

Why one mechanism: recording a trace (``recorder.py``) and exporting OpenTelemetry spans (``otel.py``) need the same
moments of a run, so the program, ``generation.run_model`` and tool dispatch each report them at exactly one place,
through a :class:`RunWatch`. A run nobody observes has no watch at all (``interp.watch is None``): every hook site
is one ``is None`` test, so observing costs nothing until an observer is attached.

Attach an observer to every run with :func:`add_observer` (what ``gl.otel.instrument()`` does), or to one run
through the ``record=`` option. Subclass :class:`Observer` and override the hooks you need; hooks run on the run's
event loop and must not block.

This module sits low in the import graph (tools dispatch reports here): it imports nothing of the package at run time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, TypeVar, Union

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import Completion, Delta, GenRequest, Usage
    from .tools.call import ToolCall
    from .tools.records import ToolCallRecord

__all__ = [
    "Observer",
    "RunInfo",
    "RunOutput",
    "ModelCallInfo",
    "ToolCallInfo",
    "RunWatch",
    "ToolWatch",
    "add_observer",
    "remove_observer",
    "observers",
    "observed",
]


@dataclass
class RunInfo:
    """One program run as observers see it. ``inputs`` are the program's arguments (defaults included), ``options``
    its options; ``model`` is the model's name when it was known at the start (None while ``gl.models.default()`` is
    still to be looked up). ``data`` is scratch space for observers (key it by the observer)."""

    id: str
    name: Optional[str]
    template: str
    inputs: dict
    options: dict
    model: Optional[str]
    started: float = field(default_factory=time.time)  # seconds since the epoch
    data: dict = field(default_factory=dict, repr=False)


@dataclass
class RunOutput:
    """What a run produced when it ended: the same fields as a ``Result``, and the error message if it failed."""

    completed: bool
    variables: dict
    messages: list
    text: str
    usage: Usage
    tool_calls: list
    paused_on: Optional[str] = None
    error: Optional[str] = None
    error_type: Optional[str] = None
    duration: float = 0.0


@dataclass
class ModelCallInfo:
    """One model call: ``request`` as the backend got it, ``chunks`` the stream's pieces as they came, and at the end
    ``completion`` (the response the program used, client-side stops applied) or ``error``."""

    run: RunInfo
    index: int  # 1, 2, … within the run
    request: GenRequest
    model: str
    variable: Optional[str]
    started: float = field(default_factory=time.time)
    chunks: list[Delta] = field(default_factory=list)
    completion: Optional[Completion] = None
    error: Optional[BaseException] = None
    duration: float = 0.0
    data: dict = field(default_factory=dict, repr=False)


@dataclass
class ToolCallInfo:
    """One tool call: the ``call`` the model asked for and, at the end, its ``record`` (arguments used, result or error,
    duration) or the ``error`` that stopped dispatch. ``ran`` is True once the call got past its checks (known tool,
    JSON arguments, approval) to the point where the tool runs, or its recorded outcome is replayed."""

    run: RunInfo
    index: int  # 1, 2, … within the run
    call: ToolCall
    variable: Optional[str]
    started: float = field(default_factory=time.time)
    record: Optional[ToolCallRecord] = None
    error: Optional[BaseException] = None
    ran: bool = False
    data: dict = field(default_factory=dict, repr=False)


class Observer:
    """The hooks an observer may override (each does nothing here). They are called in order on the run's loop:
    ``run_started``; per model call ``model_call_started``, ``model_chunk``…, ``model_call_finished``; per tool call
    ``tool_call_started``, ``tool_call_finished`` (calls of one batch overlap); ``run_paused``/``run_resumed`` around an
    ``{{await}}``; ``run_finished`` last (also when the run failed, or was abandoned while paused)."""

    def run_started(self, run: RunInfo) -> None:
        """A run began."""

    def run_paused(self, run: RunInfo, variable: str) -> None:
        """The run stopped at an ``{{await}}`` waiting for ``variable``."""

    def run_resumed(self, run: RunInfo, variables: dict) -> None:
        """A paused run goes on with ``variables``."""

    def run_finished(self, run: RunInfo, output: RunOutput) -> None:
        """The run ended (``output.completed`` False when it failed or was abandoned)."""

    def model_call_started(self, call: ModelCallInfo) -> None:
        """A request is about to be sent."""

    def model_chunk(self, call: ModelCallInfo, chunk: Delta) -> None:
        """A piece of the streamed response arrived (already appended to ``call.chunks``)."""

    def model_call_finished(self, call: ModelCallInfo) -> None:
        """The call ended: ``call.completion`` or ``call.error`` is set."""

    def tool_call_started(self, call: ToolCallInfo) -> None:
        """Dispatch took up a call the model asked for."""

    def tool_call_finished(self, call: ToolCallInfo) -> None:
        """The call ended: ``call.record`` (which may hold a tool error) or ``call.error`` is set."""


Info = TypeVar("Info")
Outcome = TypeVar("Outcome")


async def observed(
    info: Info,
    work: Awaitable[Outcome],
    finished: Callable[[Info, Optional[Outcome], Optional[BaseException]], None],
) -> Outcome:
    """Await ``work`` and report how it ended: ``finished(info, outcome, None)``, or ``(info, None, error)`` before the
    error propagates (cancellation included)."""
    try:
        outcome = await work
    except BaseException as exc:
        finished(info, None, exc)
        raise
    finished(info, outcome, None)
    return outcome


_lock = threading.Lock()
_observers: tuple[Observer, ...] = ()  # attached to every run; replaced whole, so runs read it without the lock
_run_ids = itertools.count(1)


def add_observer(observer: Observer) -> None:
    """Observe every run started from now on (a no-op if it is already attached)."""
    global _observers
    with _lock:
        if observer not in _observers:
            _observers = (*_observers, observer)


def remove_observer(observer: Observer) -> None:
    """Stop observing runs started from now on (runs in progress keep the observers they started with)."""
    global _observers
    with _lock:
        _observers = tuple(o for o in _observers if o is not observer)


def observers() -> tuple[Observer, ...]:
    """The observers attached to every run."""
    return _observers


class RunWatch:
    """The observers of one run and the run they watch: what the program, generation and dispatch report to.

    Built by :meth:`for_run`, which returns None when nobody observes (the hook sites then skip all of this)."""

    __slots__ = ("_model_calls", "_tool_calls", "info", "observers")

    def __init__(self, observers: Sequence[Observer], info: RunInfo) -> None:
        self.observers = tuple(observers)
        self.info = info
        self._model_calls = itertools.count(1)
        self._tool_calls = itertools.count(1)

    @classmethod
    def for_run(
        cls,
        extra: Sequence[Observer],
        *,
        name: Optional[str],
        template: str,
        inputs: dict,
        options: dict,
        model: Optional[str],
    ) -> Optional[RunWatch]:
        """A watch with the global observers plus ``extra``; None when there are none."""
        attached = (*_observers, *extra)
        if not attached:
            return None
        info = RunInfo(f"run-{next(_run_ids)}", name, template, inputs, options, model)
        return cls(attached, info)

    # ---- the run ---------------------------------------------------------------------------------------------------
    def run_started(self) -> None:
        for observer in self.observers:
            observer.run_started(self.info)

    def run_paused(self, variable: str) -> None:
        for observer in self.observers:
            observer.run_paused(self.info, variable)

    def run_resumed(self, variables: dict) -> None:
        for observer in self.observers:
            observer.run_resumed(self.info, variables)

    def run_finished(self, output: RunOutput) -> None:
        output.duration = time.time() - self.info.started
        for observer in self.observers:
            observer.run_finished(self.info, output)

    # ---- model calls -----------------------------------------------------------------------------------------------
    def model_call_started(self, request: GenRequest, model: str, variable: Optional[str]) -> ModelCallInfo:
        call = ModelCallInfo(self.info, next(self._model_calls), request, model, variable)
        for observer in self.observers:
            observer.model_call_started(call)
        return call

    async def chunks(
        self, call: ModelCallInfo, stream: AsyncIterator[Union[Delta, Completion]]
    ) -> AsyncIterator[Union[Delta, Completion]]:
        """``stream`` passed through, each Delta reported on the way (closing this closes ``stream``)."""
        from .models.base import Delta  # here, not at the top: dispatch imports this module while models load

        try:
            async for item in stream:
                if isinstance(item, Delta):
                    call.chunks.append(item)
                    for observer in self.observers:
                        observer.model_chunk(call, item)
                yield item
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    def model_call_finished(
        self, call: ModelCallInfo, completion: Optional[Completion], error: Optional[BaseException]
    ) -> None:
        call.completion, call.error = completion, error
        call.duration = time.time() - call.started
        for observer in self.observers:
            observer.model_call_finished(call)

    # ---- tool calls ------------------------------------------------------------------------------------------------
    def tools(self, variable: Optional[str]) -> ToolWatch:
        """What dispatch reports to for the calls of one gen (captured into ``variable``)."""
        return ToolWatch(self, variable)


class ToolWatch:
    """A run's watch as tool dispatch sees it, for the calls of one gen."""

    __slots__ = ("_run", "variable")

    def __init__(self, run: RunWatch, variable: Optional[str]) -> None:
        self._run = run
        self.variable = variable

    def tool_call_started(self, call: ToolCall) -> ToolCallInfo:
        run = self._run
        info = ToolCallInfo(run.info, next(run._tool_calls), call, self.variable)
        for observer in run.observers:
            observer.tool_call_started(info)
        return info

    def tool_call_finished(
        self, info: ToolCallInfo, record: Optional[ToolCallRecord], error: Optional[BaseException]
    ) -> None:
        info.record, info.error = record, error
        for observer in self._run.observers:
            observer.tool_call_finished(info)
