"""Reading a Chat Completions answer: streamed chunks (text and tool-call fragments, accumulated by index) or a whole
response, into our Deltas and one Completion.

Servers differ in how they send the same answer, and every shape below ends in the same Completion:
- ``content`` null or ``""`` next to tool calls (both are no text);
- calls streamed as a header (id, name) then argument fragments (OpenAI, vLLM), or each call whole in one chunk, with
  or without ``index`` (Ollama);
- the legacy ``function_call`` field (the functions API) instead of ``tool_calls``, with
  ``finish_reason: "function_call"`` (beside ``tool_calls``, as llama-cpp-python sends it, it is the same call);
- ``arguments`` sent as a JSON object instead of a JSON string (pass-through proxies);
- a final usage-only chunk (``choices: []``), or usage on the finish chunk;
- duplicate, reused, empty or missing call ids: each call gets an id unique in the conversation, the server's own
  where it is usable (``tools.unique_call_id``).
``finish_reason`` is ``"tool_calls"`` whenever there are calls (Ollama says ``"stop"``, the functions API
``"function_call"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Optional

from ...tools.call import unique_call_id
from ..base import Choice, Completion, Delta, ModelError, ToolCall, Usage
from .transport import usage_from_api


def arguments_text(arguments: Any) -> str:
    """A call's ``arguments`` as JSON text: a string as sent, an object (some proxies send one) serialised."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def finish_reason(reason: Optional[str], has_calls: bool) -> Optional[str]:
    """``"tool_calls"`` whenever there are calls; a call-ish reason without calls is a plain ``"stop"``."""
    if has_calls:
        return "tool_calls"
    return "stop" if reason in ("tool_calls", "function_call") else reason


def _field(obj: Any, name: str) -> Any:
    """An attribute of an SDK object (or a key of a plain dict, as in extra fields the SDK leaves untyped)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


class ChatReader:
    """Reads a Chat Completions answer: streamed chunks into choices (each chunk into the Deltas to yield), or a
    whole non-streamed response. ``taken``: call ids already used in the conversation (new calls get other ids)."""

    def __init__(self, n: int, taken: Iterable[str] = ()) -> None:
        self.n = n
        self.taken = set(taken)
        self.texts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict]] = {}  # choice -> tool index -> {"id","server_id","name","arguments"}
        self.finish_reasons: dict[int, Optional[str]] = {}
        self.native: set[int] = set()  # choices that sent tool_calls: a function_call beside them is the same call
        self.usage: Optional[Usage] = None
        self.model: Optional[str] = None
        self.characters = 0  # text + argument characters yielded so far

    def feed(self, chunk: Any) -> list[Delta]:
        self.model = getattr(chunk, "model", None) or self.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage_from_api(usage)
        deltas: list[Delta] = []
        for choice in getattr(chunk, "choices", None) or []:
            i = choice.index or 0
            if not isinstance(i, int) or not 0 <= i < max(self.n, 1):
                raise ValueError(f"choice index {i!r} is outside the {self.n} choice(s) asked for")
            delta = choice.delta
            content = _field(delta, "content") if delta is not None else None
            if content:
                self.texts.setdefault(i, []).append(content)
                self.characters += len(content)
                deltas.append(Delta(text=content, choice=i))
            for fragment in (_field(delta, "tool_calls") or []) if delta is not None else []:
                self.native.add(i)
                function = _field(fragment, "function")
                deltas.append(
                    self._feed_call(
                        i,
                        _field(fragment, "index"),
                        _field(fragment, "id"),
                        _field(function, "name") if function is not None else None,
                        _field(function, "arguments") if function is not None else None,
                    )
                )
            legacy = _field(delta, "function_call") if delta is not None else None
            if legacy is not None and i not in self.native:  # the functions API: one call, no id, no index
                deltas.append(self._feed_call(i, None, None, _field(legacy, "name"), _field(legacy, "arguments")))
            if choice.finish_reason:
                self.finish_reasons[i] = choice.finish_reason
        return deltas

    def _feed_call(
        self, choice: int, index: Optional[int], server_id: Optional[str], name: Optional[str], raw_arguments: Any
    ) -> Delta:
        calls = self.calls.setdefault(choice, {})
        arguments = arguments_text(raw_arguments)
        if index is None:  # no index: a fragment that names a call (or a new id) starts one, others continue the last
            last = calls[max(calls)] if calls else None
            continues = last is not None and not name and (not server_id or server_id == last["server_id"])
            index = max(calls) if continues else len(calls)
        call = calls.get(index)
        announce_id = announce_name = None
        if call is None:
            call_id = unique_call_id(server_id, self.taken)
            call = calls[index] = {"id": call_id, "server_id": server_id, "name": name or "", "arguments": []}
            announce_id = call_id
            announce_name = name or None
        elif name and not call["name"]:
            call["name"] = announce_name = name
        call["arguments"].append(arguments)
        self.characters += len(arguments)
        return Delta(
            choice=choice, tool_index=index, tool_id=announce_id, tool_name=announce_name, tool_arguments=arguments
        )

    def completion(self) -> Completion:
        count = max([self.n - 1, *self.texts, *self.calls, *self.finish_reasons]) + 1
        choices = []
        for i in range(count):
            calls = []
            for index in sorted(self.calls.get(i, {})):
                call = self.calls[i][index]
                if not call["name"]:
                    raise ModelError(f"the server streamed tool call #{index} without a function name")
                calls.append(ToolCall(call["id"], call["name"], "".join(call["arguments"])))
            reason = finish_reason(self.finish_reasons.get(i), bool(calls))
            choices.append(Choice("".join(self.texts.get(i, [])), calls, reason))
        return Completion(choices, self.usage, self.model)

    def finish(self) -> list[Delta]:
        return []

    def read(self, response: Any) -> Completion:
        choices = []
        for choice in response.choices or []:
            message = choice.message
            raw_calls = [(_field(call, "id"), _field(call, "function")) for call in _field(message, "tool_calls") or []]
            legacy = _field(message, "function_call")
            if legacy is not None and not raw_calls:  # some servers send both shapes of the same call
                raw_calls.append((None, legacy))
            calls = []
            for server_id, function in raw_calls:
                name = _field(function, "name")
                if not name:
                    raise ModelError("the server sent a tool call without a function name")
                arguments = arguments_text(_field(function, "arguments"))
                calls.append(ToolCall(unique_call_id(server_id, self.taken), name, arguments))
            reason = finish_reason(choice.finish_reason, bool(calls))
            choices.append(Choice(_field(message, "content") or "", calls, reason))
        usage = usage_from_api(response.usage) if getattr(response, "usage", None) else None
        return Completion(choices or [Choice()], usage, getattr(response, "model", None))
