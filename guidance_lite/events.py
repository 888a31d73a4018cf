"""Typed events a running program emits, in order (``program.stream()`` / ``astream()`` and the live view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import ToolCall
    from .result import Result
    from .tools import ToolCallRecord


@dataclass
class Event:
    """Base class of every event."""


@dataclass
class TextDelta(Event):
    """Generated text as it arrives; ``variable`` is the ``gen`` name it is captured into (None for unnamed)."""

    text: str
    variable: Optional[str] = None
    choice: int = 0


@dataclass
class TemplateText(Event):
    """Literal template text or an inserted value appended to the transcript (not model output)."""

    text: str


@dataclass
class ToolCallDelta(Event):
    """A fragment of a tool call while it streams; fragments with the same ``index`` belong together."""

    index: int
    id: Optional[str] = None
    name: Optional[str] = None
    arguments_delta: str = ""
    variable: Optional[str] = None


@dataclass
class ToolCallReady(Event):
    """A tool call the model finished asking for (complete arguments, final id)."""

    call: ToolCall
    variable: Optional[str] = None


@dataclass
class ToolResult(Event):
    """A tool finished (or failed: ``record.error`` is set); ``record`` is what ``result.tool_calls`` lists."""

    record: ToolCallRecord


@dataclass
class VariableSet(Event):
    name: str
    value: Any


@dataclass
class MessageAdded(Event):
    """A role block closed and became a message (``hidden`` messages stay out of later context)."""

    message: dict
    hidden: bool = False


@dataclass
class Paused(Event):
    """Execution stopped at an ``await`` for a missing variable."""

    variable: str


@dataclass
class Finished(Event):
    """Always the last event: the run's result (``result.completed`` is False when paused)."""

    result: Result
