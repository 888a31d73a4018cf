"""What became of each tool call: its record (arguments used, result, error, timing) and the text a result is
sent back to the model as."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import pydantic
import pydantic_core

# error_type values of ToolCallRecord
UNKNOWN_TOOL = "unknown_tool"
INVALID_JSON = "invalid_json"
INVALID_ARGUMENTS = "invalid_arguments"
EXCEPTION = "exception"
TIMEOUT = "timeout"
DENIED = "denied"


def _json_default(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _finite(value: Any, open_containers: set[int]) -> Any:
    """``value`` with NaN and ±Infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, (dict, list, tuple)):
        return value
    if id(value) in open_containers:
        raise ValueError("Circular reference detected")
    open_containers.add(id(value))
    try:
        if isinstance(value, dict):
            return {key: _finite(item, open_containers) for key, item in value.items()}
        return [_finite(item, open_containers) for item in value]
    finally:
        open_containers.discard(id(value))


def _dumps(value: Any) -> str:
    """JSON text that every JSON parser reads: NaN and ±Infinity become ``null`` (as pydantic and JavaScript
    write them), never the bare ``NaN`` Python's json module would emit."""
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(
            _finite(value, set()),
            default=lambda item: _finite(_json_default(item), set()),
            ensure_ascii=False,
            allow_nan=False,
        )


def format_result(value: Any) -> str:
    """The text a tool's return value becomes in the tool message sent back to the model (always valid JSON for
    dicts, lists and numbers: NaN and ±Infinity become null)."""
    if isinstance(value, str):
        return str.__str__(value)  # a str-based Enum gives its value, not "Color.RED"
    if value is None:
        return ""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        return _dumps(value)
    return str(value)


@dataclass
class ToolCallRecord:
    """One tool call made during a run (what ``result.tool_calls`` lists).

    ``arguments`` are the arguments actually used (after ``on_tool_call`` replacements and ``overrides``; None
    when they could not be parsed); ``arguments_json`` is exactly what the model sent. ``started_at`` is
    ``time.perf_counter()`` when the tool began running (after the hook), ``duration`` how long it ran.
    """

    id: str
    name: str
    arguments: Optional[dict]
    arguments_json: str
    result: Any = None
    content: str = ""
    error: Optional[str] = None
    error_type: Optional[str] = None
    duration: float = 0.0
    started_at: float = 0.0
    variable: Optional[str] = None
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)  # for errors='raise'

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, error_type: str, message: str, exception: Optional[BaseException] = None) -> ToolCallRecord:
        self.error_type = error_type
        self.error = message
        self.content = message
        self.exception = exception
        return self

    def take_outcome(self, recorded: ToolCallRecord) -> ToolCallRecord:
        """This call ends as ``recorded`` did (result, content, error, duration): how a replayed call ends."""
        self.result, self.content, self.duration = recorded.result, recorded.content, recorded.duration
        self.error, self.error_type = recorded.error, recorded.error_type
        return self

    def to_dict(self) -> dict:
        """JSON-friendly form (the result converted with pydantic's JSON rules, ``str`` as a fallback)."""
        return {
            "id": self.id,
            "name": self.name,
            "arguments": pydantic_core.to_jsonable_python(self.arguments, fallback=str),
            "arguments_json": self.arguments_json,
            "result": pydantic_core.to_jsonable_python(self.result, fallback=str),
            "content": self.content,
            "error": self.error,
            "error_type": self.error_type,
            "duration": self.duration,
            "started_at": self.started_at,
            "variable": self.variable,
        }
