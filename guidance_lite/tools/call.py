"""A tool call as the model asked for it (OpenAI's shape).

It lives below both the backends, which produce calls, and the tools, which run them, so neither has to import the
other to name one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

# arguments nested deeper are refused as invalid JSON: no tool needs them, and they would otherwise end a run with
# RecursionError where they are parsed, shown or validated
MAX_ARGUMENT_DEPTH = 100


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's shape, for calls whose id is empty or missing."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class ToolCall:
    """One call the model asked for. ``arguments_json`` is exactly what the model sent."""

    id: str
    name: str
    arguments_json: str = "{}"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = new_call_id()

    @property
    def arguments(self) -> dict:
        """Parsed arguments; raises ``ValueError`` when the model sent something that is not a JSON object
        (``json.JSONDecodeError`` for text that is not JSON or nests deeper than ``MAX_ARGUMENT_DEPTH``)."""
        text = self.arguments_json.strip() or "{}"
        try:
            value = json.loads(text)
        except RecursionError:
            raise json.JSONDecodeError(f"arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels", text, 0) from None
        if text.count("[") + text.count("{") > MAX_ARGUMENT_DEPTH and nesting_depth(value) > MAX_ARGUMENT_DEPTH:
            raise json.JSONDecodeError(f"arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels", text, 0)
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
        return value

    def to_openai(self) -> dict:
        """The assistant-message form OpenAI expects (arguments as a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json or "{}"},
        }


def unique_call_id(call_id: Optional[str], taken: set[str]) -> str:
    """``call_id`` if it is non-empty and not in ``taken``, else an id derived from it that is; added to ``taken``.

    Why: servers send duplicate ids in one message (llama.cpp with functionary uses the function name), reuse ids
    across turns (Command R7B writes "0" every time) or send none, while a strict server rejects a follow-up request
    whose ids are not unique or not each answered once. Ids are made unique here before any call runs, so each call is
    bound to exactly one result, and a server's own id is kept wherever it is usable. Derived ids depend only on the
    original id and how many ids were taken before it, so a conversation replays to the same request bodies (cache
    keys stay stable).
    """
    if call_id and call_id not in taken:
        taken.add(call_id)
        return call_id
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{call_id or ''}:{len(taken)}:{attempt}".encode()).hexdigest()
        candidate = "call_" + digest[:24]
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        attempt += 1


def make_call_ids_unique(calls: Iterable[ToolCall], taken: set[str]) -> None:
    """Give each call an id unique among ``calls`` and ``taken`` (kept where it already is), in call order."""
    for call in calls:
        call.id = unique_call_id(call.id, taken)


def nesting_depth(value: object) -> int:
    """How deeply lists and dicts nest in a parsed JSON value (walked without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
