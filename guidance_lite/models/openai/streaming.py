"""Reading a Chat Completions answer: streamed chunks (text and tool-call fragments, accumulated by index) or a whole
response, into our Deltas and one Completion."""

from __future__ import annotations

from typing import Any, Optional

from ..base import Choice, Completion, Delta, ModelError, ToolCall, Usage, new_call_id
from .transport import usage_from_api


class ChatReader:
    """Reads a Chat Completions answer: streamed chunks into choices (each chunk into the Deltas to yield), or a
    whole non-streamed response."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.texts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict]] = {}  # choice -> tool index -> {"id","name","arguments":[...]}
        self.finish_reasons: dict[int, Optional[str]] = {}
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
            content = getattr(delta, "content", None) if delta is not None else None
            if content:
                self.texts.setdefault(i, []).append(content)
                self.characters += len(content)
                deltas.append(Delta(text=content, choice=i))
            for fragment in (getattr(delta, "tool_calls", None) or []) if delta is not None else []:
                deltas.append(self._feed_call(i, fragment))
            if choice.finish_reason:
                self.finish_reasons[i] = choice.finish_reason
        return deltas

    def _feed_call(self, choice: int, fragment: Any) -> Delta:
        calls = self.calls.setdefault(choice, {})
        function = getattr(fragment, "function", None)
        name = getattr(function, "name", None) if function is not None else None
        arguments = (getattr(function, "arguments", None) if function is not None else None) or ""
        frag_id = getattr(fragment, "id", None)
        index = getattr(fragment, "index", None)
        if index is None:  # some servers leave the index out: a fragment with an id or name starts a new call
            index = len(calls) if (frag_id or name or not calls) else max(calls)
        call = calls.get(index)
        announce_id = announce_name = None
        if call is None:
            call = calls[index] = {"id": frag_id or new_call_id(), "name": name or "", "arguments": []}
            announce_id = call["id"]
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
            choices.append(Choice("".join(self.texts.get(i, [])), calls, self.finish_reasons.get(i)))
        return Completion(choices, self.usage, self.model)

    def finish(self) -> list[Delta]:
        return []

    def read(self, response: Any) -> Completion:
        choices = []
        for choice in response.choices or []:
            message = choice.message
            calls = [
                ToolCall(
                    getattr(call, "id", None) or "", call.function.name, getattr(call.function, "arguments", None) or ""
                )
                for call in getattr(message, "tool_calls", None) or []
            ]
            choices.append(Choice(getattr(message, "content", None) or "", calls, choice.finish_reason))
        usage = usage_from_api(response.usage) if getattr(response, "usage", None) else None
        return Completion(choices or [Choice()], usage, getattr(response, "model", None))
