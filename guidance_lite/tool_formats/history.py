"""The prompt side every format shares: OpenAI-format messages normalised into a history a format renders.

Normalising once (text content, calls as ToolCall, each result tied to the call it answers, legacy ``function_call`` /
``function`` role understood) lets each format's ``render_history`` be about its own syntax only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..chat_templates import message_text
from ..tools import ToolCall


@dataclass
class HistoryItem:
    """One OpenAI-format message, normalised: text content, calls as ToolCall, results tied to their call."""

    role: str  # system | user | assistant | tool
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    call_id: Optional[str] = None  # tool results: the call answered
    name: Optional[str] = None  # tool results: the function that produced it


def call_from_openai(raw: Any, fallback_id: str) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, dict):
        raise ValueError(f"assistant tool_calls entries must be dicts in OpenAI format, got {type(raw).__name__}")
    function = raw.get("function", raw)
    name = function.get("name")
    if not name:
        raise ValueError("an assistant tool call has no function name")
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(id=raw.get("id") or fallback_id, name=name, arguments_json=arguments)


def normalize_history(messages: list[dict]) -> list[HistoryItem]:
    """OpenAI messages (incl. legacy ``function_call`` / ``function`` role) -> HistoryItems with consistent call ids."""
    items: list[HistoryItem] = []
    unanswered: list[ToolCall] = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError(f"message {number} must be a dict with a 'role' key, got {message!r:.80}")
        role = message["role"]
        text = message_text(message)
        if role == "assistant":
            calls = [call_from_openai(c, f"call_{number}_{i}") for i, c in enumerate(message.get("tool_calls") or [])]
            legacy = message.get("function_call")
            if legacy:
                calls.append(call_from_openai(legacy, f"call_{number}_legacy"))
            unanswered.extend(calls)
            items.append(HistoryItem("assistant", text, calls))
        elif role in ("tool", "function", "ipython"):
            call_id = message.get("tool_call_id")
            name = message.get("name")
            match = None
            for call in unanswered:
                if (call_id and call.id == call_id) or (not call_id and name and call.name == name):
                    match = call
                    break
            if match is None and not call_id and unanswered:
                match = unanswered[0]
            if match is not None:
                unanswered.remove(match)
                call_id, name = match.id, name or match.name
            items.append(HistoryItem("tool", text, call_id=call_id or f"call_{number}_result", name=name))
        else:
            items.append(HistoryItem(role, text))
    return items


def arguments_value(call: ToolCall) -> Any:
    """A call's arguments as a JSON value for rendering (the raw string if the model sent invalid JSON)."""
    try:
        return json.loads(call.arguments_json or "{}")
    except ValueError:
        return call.arguments_json


def result_value(text: str) -> Any:
    """A tool result for embedding in JSON: parsed if it is JSON, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text
