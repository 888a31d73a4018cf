"""The trace file of a recorded run: JSON Lines, one event per line, schema version 1.

Written by ``recorder.Recorder`` (``program(..., record="run.jsonl")``), read by ``gl.models.Replay`` and
``gl.Trace``. Every line is a JSON object with an ``"event"`` key; the first line is the header::

    {"event": "trace", "schema_version": 1, "library": "guidance_lite", "version": "0.1.0", "created": "2025-…Z"}

then, for each run (``"run"`` numbers the runs of the file from 1; a file may hold several, e.g. a batch):

- ``run_start``: ``name``, ``template`` (the source), ``inputs`` (the program's arguments, defaults included),
  ``options``, ``model`` (its name, or null when it was still to be chosen), ``time`` (seconds since the epoch)
- ``model_call_start``: ``call`` (1, 2, … within the run), ``model``, ``variable`` (the gen's name), ``request`` (the
  request as sent: ``messages`` or ``prompt``, ``prefill``, ``params``, ``tools`` — OpenAI tool definitions —,
  ``tool_choice``)
- ``model_call_end``: ``call``, ``duration``, ``chunks`` (the streamed pieces in order: ``{"text"}`` or
  ``{"tool_index", "tool_id", "tool_name", "tool_arguments"}``, with ``"choice"`` when not 0), and either ``response``
  (``choices``: ``text``, ``tool_calls`` [``id``, ``name``, ``arguments``], ``finish_reason``, ``stop_text``;
  ``usage``; ``model``; ``cached``) or ``error`` (``type``, ``message``)
- ``tool_call_start``: ``tool`` (1, 2, … within the run), ``id``, ``name``, ``arguments`` (the JSON text the model
  sent), ``variable``
- ``tool_call_end``: ``tool``, ``ran`` (the call got past its checks to the tool), and either ``record`` (``id``,
  ``name``, ``arguments`` used, ``arguments_json``, ``result``, ``content`` — what the model was sent —, ``error``,
  ``error_type``, ``duration``, ``started_at``, ``variable``) or ``error`` (``type``, ``message``)
- ``run_paused`` (``variable``) and ``run_resumed`` (``variables``) around an ``{{await}}``
- ``run_end``: ``completed``, ``paused_on``, ``error`` (null, or ``type`` and ``message``), ``duration``, and the
  outputs: ``variables``, ``messages``, ``text``, ``usage``, ``tool_calls`` (records as above)

Dataclasses and pydantic models are written as their JSON; other values JSON can't hold as
``{"__repr__": "<their repr>"}`` (a function also gets ``"__tool__"``: its tool definition, so a replay can offer it
again). Values under keys that name secrets (``api_key``, ``authorization``,
``password``, ``secret``) are written as ``"[redacted]"``; API keys never reach a trace, since backends hold them and
observers see only requests. Readers ignore event types and keys they don't know; a file with a higher
``schema_version`` is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import pydantic_core

from .errors import GuidanceLiteError
from .models.base import Choice, Completion, Delta, GenRequest, ModelError, ToolCall, Usage
from .tools.records import ToolCallRecord
from .tools.tool import make_tool
from .version import __version__

SCHEMA_VERSION = 1
REPR_KEY = "__repr__"
TOOL_KEY = "__tool__"
REDACTED = "[redacted]"
SECRET_KEY = re.compile(r"api[_-]?key|authorization|password|secret", re.IGNORECASE)
REQUEST_PARAMS_SKIPPED = ("tools", "tool_choice")  # written as ``tools`` / ``tool_choice`` of the request document


class TraceError(GuidanceLiteError, ValueError):
    """A trace file that can't be read (not a trace, corrupt, or written by a newer schema)."""


# ---- values -----------------------------------------------------------------------------------------------------
def repr_marker(value: Any) -> dict:
    """The marked repr a value JSON can't hold is written as; a function also carries its tool definition."""
    marker: dict[str, Any] = {REPR_KEY: _safe_repr(value)}
    if callable(value) and not isinstance(value, type):
        try:
            marker[TOOL_KEY] = make_tool(value).schema()
        except Exception:  # not every callable makes a tool (a builtin without a signature): the repr is enough
            pass
    return marker


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr failed: {type(exc).__name__}>"


def to_json(value: Any) -> Any:
    """``value`` as JSON data: containers, dataclasses and pydantic models as JSON; anything else as its marked repr;
    values under secret-looking keys redacted."""
    return _clean(_jsonable(value, set()))


def _jsonable(value: Any, open_containers: set[int]) -> Any:
    try:
        return pydantic_core.to_jsonable_python(value, fallback=repr_marker)
    except Exception:  # a circular structure, undecodable bytes, a failing serializer: convert part by part
        pass
    if id(value) in open_containers or not isinstance(value, (dict, list, tuple)):
        return repr_marker(value)
    open_containers.add(id(value))
    try:
        if isinstance(value, dict):
            return {str(key): _jsonable(item, open_containers) for key, item in value.items()}
        return [_jsonable(item, open_containers) for item in value]
    finally:
        open_containers.discard(id(value))


def _clean(data: Any) -> Any:
    """Redact secrets and mark the floats JSON has no spelling for (NaN, infinities)."""
    if isinstance(data, dict):
        if is_marker(data):
            return data
        return {key: REDACTED if SECRET_KEY.search(str(key)) else _clean(item) for key, item in data.items()}
    if isinstance(data, list):
        return [_clean(item) for item in data]
    if isinstance(data, float) and not math.isfinite(data):
        return {REPR_KEY: repr(data)}
    return data


def is_marker(value: Any) -> bool:
    """Whether ``value`` is a marked repr (a value the trace could not hold)."""
    return isinstance(value, dict) and REPR_KEY in value and set(value) <= {REPR_KEY, TOOL_KEY}


def dumps(event: dict) -> str:
    """One line of the file."""
    return json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def header() -> dict:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "event": "trace",
        "schema_version": SCHEMA_VERSION,
        "library": "guidance_lite",
        "version": __version__,
        "created": created,
    }


# ---- requests and responses --------------------------------------------------------------------------------------
def request_document(request: GenRequest) -> dict:
    """A request as sent, in the form replays match on: the conversation, the parameters, the offered tools."""
    document: dict[str, Any] = {}
    if request.chat:
        document["messages"] = to_json(request.messages)
    else:
        document["prompt"] = request.prompt
    document["prefill"] = request.prefill
    settings = request.settings()
    document["params"] = {key: to_json(value) for key, value in settings.items() if key not in REQUEST_PARAMS_SKIPPED}
    document["tools"] = [to_json(spec.definition) for spec in request.tools] if request.tools else None
    try:
        choice: Any = request.choice.value
    except ModelError:  # a hand-built request whose tool_choice fits no tool: written as given
        choice = to_json(request.tool_choice)
    document["tool_choice"] = choice
    return document


def chunk_document(delta: Delta) -> dict:
    """A streamed piece with only the fields it sets."""
    document: dict[str, Any] = {}
    if delta.choice:
        document["choice"] = delta.choice
    if delta.tool_index is not None:
        document["tool_index"] = delta.tool_index
        if delta.tool_id is not None:
            document["tool_id"] = delta.tool_id
        if delta.tool_name is not None:
            document["tool_name"] = delta.tool_name
        document["tool_arguments"] = delta.tool_arguments
    if delta.text or delta.tool_index is None:
        document["text"] = delta.text
    return document


def chunk_from(document: dict) -> Delta:
    return Delta(
        text=document.get("text", ""),
        choice=document.get("choice", 0),
        tool_index=document.get("tool_index"),
        tool_id=document.get("tool_id"),
        tool_name=document.get("tool_name"),
        tool_arguments=document.get("tool_arguments", ""),
    )


def usage_document(usage: Optional[Usage]) -> Optional[dict]:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "estimated": usage.estimated,
    }


def usage_from(document: Optional[dict]) -> Optional[Usage]:
    if document is None:
        return None
    return Usage(
        int(document.get("prompt_tokens", 0)),
        int(document.get("completion_tokens", 0)),
        int(document.get("total_tokens", 0)),
        bool(document.get("estimated", False)),
    )


def completion_document(completion: Completion) -> dict:
    return {
        "choices": [
            {
                "text": choice.text,
                "tool_calls": [
                    {"id": call.id, "name": call.name, "arguments": call.arguments_json} for call in choice.tool_calls
                ],
                "finish_reason": choice.finish_reason,
                "stop_text": choice.stop_text,
            }
            for choice in completion.choices
        ],
        "usage": usage_document(completion.usage),
        "model": completion.model,
        "cached": completion.cached,
    }


def completion_from(document: dict) -> Completion:
    choices = [
        Choice(
            choice.get("text", ""),
            [ToolCall(c["id"], c["name"], c.get("arguments", "{}")) for c in choice.get("tool_calls") or []],
            choice.get("finish_reason"),
            choice.get("stop_text"),
        )
        for choice in document.get("choices") or []
    ]
    return Completion(
        choices, usage_from(document.get("usage")), document.get("model"), bool(document.get("cached", False))
    )


def error_document(error: BaseException) -> dict:
    return {"type": type(error).__name__, "message": str(error)}


def record_document(record: ToolCallRecord) -> dict:
    """A tool call's record (``ToolCallRecord.to_dict``'s fields; values JSON can't hold as marked reprs)."""
    document = record.to_dict()
    document["arguments"] = to_json(record.arguments)
    document["result"] = to_json(record.result)
    return document


def record_from(document: dict) -> ToolCallRecord:
    return ToolCallRecord(
        id=document["id"],
        name=document["name"],
        arguments=document.get("arguments"),
        arguments_json=document.get("arguments_json", "{}"),
        result=document.get("result"),
        content=document.get("content", ""),
        error=document.get("error"),
        error_type=document.get("error_type"),
        duration=float(document.get("duration") or 0.0),
        started_at=float(document.get("started_at") or 0.0),
        variable=document.get("variable"),
    )


# ---- reading --------------------------------------------------------------------------------------------------------
@dataclass
class RecordedModelCall:
    """A model call of the file: its request document and what came back (``response`` or ``error``)."""

    run: int
    index: int
    order: int  # position among all the file's model calls, by start
    model: str
    variable: Optional[str]
    request: dict
    chunks: list[dict] = field(default_factory=list)
    response: Optional[dict] = None
    error: Optional[dict] = None
    duration: float = 0.0


@dataclass
class RecordedToolCall:
    """A tool call of the file: what the model asked for and its record (None if dispatch stopped first)."""

    run: int
    index: int
    id: str
    name: str
    arguments: str
    variable: Optional[str]
    ran: bool = False
    record: Optional[dict] = None
    error: Optional[dict] = None


@dataclass
class RecordedRun:
    """A run of the file: its ``run_start`` event, what it was resumed with, and its ``run_end`` (None if the file
    stops first, e.g. a run still paused)."""

    number: int
    start: dict
    resumes: list[dict] = field(default_factory=list)
    end: Optional[dict] = None
    model_calls: list[RecordedModelCall] = field(default_factory=list)
    tool_calls: list[RecordedToolCall] = field(default_factory=list)


@dataclass
class Recording:
    """A whole trace file, read: the header, every event, and the runs with their model and tool calls."""

    path: str
    header: dict
    events: list[dict]
    runs: list[RecordedRun]

    @property
    def model_calls(self) -> list[RecordedModelCall]:
        """Every model call of the file, in the order the calls started."""
        return sorted((c for r in self.runs for c in r.model_calls), key=lambda c: c.order)

    @property
    def tool_calls(self) -> list[RecordedToolCall]:
        return [c for r in self.runs for c in r.tool_calls]


def read(path: Union[str, os.PathLike]) -> Recording:
    """Read a trace file; a TraceError names the file and line of any problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"{name}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{name}: cannot read the trace: {exc}") from None
    events = list(_events(name, text))
    if not events or events[0].get("event") != "trace":
        raise TraceError(f"{name}: not a guidance_lite trace (the first line must be the 'trace' header)")
    head = events[0]
    version = head.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise TraceError(
            f"{name}: trace schema version {version!r} is newer than this guidance_lite reads ({SCHEMA_VERSION}): "
            "upgrade guidance_lite"
        )
    return Recording(name, head, events, _runs(name, events[1:]))


def _events(name: str, text: str) -> Iterator[dict]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise TraceError(f"{name}:{number}: not a JSON line: {exc}") from None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise TraceError(f"{name}:{number}: an event must be a JSON object with an 'event' key")
        yield event


def _runs(name: str, events: list[dict]) -> list[RecordedRun]:
    runs: dict[int, RecordedRun] = {}
    model_calls: dict[tuple[int, int], RecordedModelCall] = {}
    tool_calls: dict[tuple[int, int], RecordedToolCall] = {}
    order = 0
    try:
        for event in events:
            kind = event["event"]
            if kind == "run_start":
                runs[event["run"]] = RecordedRun(event["run"], event)
                continue
            run = runs.get(event.get("run", -1))
            if run is None:
                continue  # an event type of a later schema, or of a run whose start is not in the file
            if kind == "model_call_start":
                order += 1
                call = RecordedModelCall(
                    run.number, event["call"], order, event.get("model", ""), event.get("variable"), event["request"]
                )
                model_calls[(run.number, call.index)] = call
                run.model_calls.append(call)
            elif kind == "model_call_end":
                found = model_calls.get((run.number, event["call"]))
                if found is not None:
                    found.chunks = list(event.get("chunks") or [])
                    found.response, found.error = event.get("response"), event.get("error")
                    found.duration = float(event.get("duration") or 0.0)
            elif kind == "tool_call_start":
                tool = RecordedToolCall(
                    run.number,
                    event["tool"],
                    event["id"],
                    event["name"],
                    event.get("arguments", ""),
                    event.get("variable"),
                )
                tool_calls[(run.number, tool.index)] = tool
                run.tool_calls.append(tool)
            elif kind == "tool_call_end":
                found_tool = tool_calls.get((run.number, event["tool"]))
                if found_tool is not None:
                    found_tool.ran = bool(event.get("ran"))
                    found_tool.record, found_tool.error = event.get("record"), event.get("error")
            elif kind == "run_resumed":
                run.resumes.append(event.get("variables") or {})
            elif kind == "run_end":
                run.end = event
    except (KeyError, TypeError) as exc:
        raise TraceError(f"{name}: an event lacks a field of schema {SCHEMA_VERSION}: {exc}") from None
    return list(runs.values())
