"""What the chat backend sends: our messages and tools translated into Chat Completions parameters.

Messages are normalised the way OpenAI accepts them (stable ids for calls that came without one); the offered tools
and the tool choice are translated in one function, ``tool_params``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..base import GenRequest, ModelError, ToolCall

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")  # these take max_completion_tokens instead of max_tokens


def stable_call_id(position: int, index: int, name: str, arguments: str) -> str:
    """An id for a tool call that arrived without one, in ``new_call_id()``'s shape but derived from the call.

    Why not random: the same conversation must produce the same request body on every request of a run (and across
    runs), so cache keys stay stable and the matching ``tool`` messages get the same id every time.
    """
    digest = hashlib.sha256(f"{position}:{index}:{name}:{arguments}".encode()).hexdigest()
    return "call_" + digest[:24]


def _arguments_json(arguments: Any) -> str:
    if arguments is None or arguments == "":
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Messages as OpenAI accepts them: no internal ``_`` keys, no ``content: None``, arguments as JSON strings,
    every tool-call id non-empty and every ``tool`` message pointing at one."""
    out: list[dict] = []
    generated: list[str] = []  # ids made up for calls without one, waiting for their tool messages (in order)
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ModelError(f"message #{position} is not a chat message with a 'role': {message!r}")
        clean = {key: value for key, value in message.items() if not key.startswith("_")}
        if clean.get("content") is None:
            clean["content"] = ""
        if clean.get("tool_calls"):
            calls = []
            for index, call in enumerate(clean["tool_calls"]):
                if isinstance(call, ToolCall):
                    call = call.to_openai()
                function = call.get("function") or {}
                name = str(function.get("name") or "")
                arguments = _arguments_json(function.get("arguments"))
                call_id = call.get("id") or ""
                if not call_id:
                    call_id = stable_call_id(position, index, name, arguments)
                    generated.append(call_id)
                calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
            clean["tool_calls"] = calls
        elif "tool_calls" in clean:
            del clean["tool_calls"]  # an empty list is rejected by OpenAI
        if clean["role"] == "tool" and not clean.get("tool_call_id"):
            if not generated:
                raise ModelError(
                    f"tool message #{position} has no tool_call_id and no earlier tool call lacks an "
                    f"id: give the result the id of the call it answers"
                )
            clean["tool_call_id"] = generated.pop(0)
        out.append(clean)
    return out


def call_ids_in(messages: list[dict]) -> set[str]:
    """The tool-call ids the conversation already uses (a new call must not reuse one)."""
    return {call["id"] for message in messages for call in message.get("tool_calls") or () if call.get("id")}


def tool_params(request: GenRequest) -> dict:
    """The offered tools, the tool choice and ``parallel_tool_calls`` as Chat Completions parameters ({} without
    tools). 'required' with a single tool is sent as that tool's name, which every server understands (llama.cpp's
    ignores 'required'). Raises ModelError for a choice that does not fit the tools."""
    choice = request.choice
    if not request.tools:
        return {}
    params: dict[str, Any] = {"tools": [spec.definition for spec in request.tools]}
    if choice.explicit:
        params["tool_choice"] = {"type": "function", "function": {"name": choice.name}} if choice.name else choice.mode
    if request.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = request.parallel_tool_calls
    return params


def max_tokens_key(model: str) -> str:
    """``max_completion_tokens`` for reasoning models (o1, o3, o4, gpt-5), ``max_tokens`` for the others."""
    name = model.lower().rsplit("/", 1)[-1]
    reasoning = any(name == p or name.startswith(p + "-") for p in REASONING_PREFIXES)
    return "max_completion_tokens" if reasoning else "max_tokens"
