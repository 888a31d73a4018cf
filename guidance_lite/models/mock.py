"""A deterministic model for users' own tests: scripted replies, recorded requests, tool calls."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any, Optional, Union

from ..stopping import apply_stops, as_list
from .base import Choice, Completion, Delta, GenRequest, Model, ModelError, ToolCall, Usage, new_call_id

Reply = Union[str, dict]
_ROLE_MARKERS = re.compile(r"<\|im_start\|>[^\n]*\n|<\|im_end\|>")  # how ``Result.text`` writes role blocks


def reading_text(prompt: str) -> str:
    """The text before the generation point as a user reads it: without the role markers of the transcript and
    without trailing whitespace (a chat prompt ends with the open assistant block's marker)."""
    return _ROLE_MARKERS.sub("", prompt).rstrip()


class Mock(Model):
    """``Mock()`` -> "mock output 0", "mock output 1", … (one number per choice, counting across calls);
    ``Mock("x")`` -> always "x"; ``Mock([a, b])`` -> the next item per call, then the last again;
    ``Mock({suffix: [...]})`` -> replies from the first key the text before the generation point ends with (as a
    user reads it: role markers and trailing whitespace don't count, so in a chat the key can end the last message).

    An item may be a dict ``{"text", "finish_reason", "stop_text"}`` or a tool-call reply
    ``{"tool_calls": [{"name": …, "arguments": {…}}], "content": …}``. Every request is kept in ``requests``.
    A choice (``select``, a ``geneach`` deciding whether to go on) gets the option the reply names, else the first
    option; an unscripted ``Mock()`` picks the first option the first time a choice is asked and the last option
    when the same choice comes again, so a ``geneach`` without ``num_iterations`` makes one item, not 100.
    """

    name = "mock"
    chat = True
    text = True
    supports_prefill = True
    can_constrain = True  # select: picks an option; pattern: checked by the interpreter

    def __init__(self, replies: Union[str, list, dict, None] = None, *, chunk_size: int = 8) -> None:
        self.replies = replies
        self.requests: list[GenRequest] = []
        self.chunk_size = max(1, chunk_size)
        self._counter = itertools.count()
        self._positions: dict[Any, int] = {}
        self._choices_seen: set[tuple[str, ...]] = set()

    # -- choosing a reply ------------------------------------------------------------------------------------------
    def _next_from(self, key: Any, items: list) -> Reply:
        if not items:
            return ""
        i = self._positions.get(key, 0)
        self._positions[key] = i + 1
        return items[min(i, len(items) - 1)]

    def _reply(self, request: GenRequest) -> Reply:
        replies = self.replies
        if replies is None:
            return f"mock output {next(self._counter)}"
        if isinstance(replies, str):
            return replies
        if isinstance(replies, (list, tuple)):
            return self._next_from("__list__", list(replies))
        if isinstance(replies, dict):
            prompt = request.prompt
            readable = reading_text(prompt)
            for suffix, items in replies.items():
                if prompt.endswith(suffix) or (suffix.strip() and readable.endswith(suffix.rstrip())):
                    items = items if isinstance(items, (list, tuple)) else [items]
                    return self._next_from(suffix, list(items))
            raise ModelError(
                f"Mock has no reply for this prompt: no key of Mock({{…}}) ends the text before the generation "
                f"point, which ends with {readable[-60:]!r} (keys: {', '.join(repr(k) for k in replies)})"
            )
        if isinstance(replies, dict) is False and isinstance(replies, object):
            raise TypeError(f"Mock replies must be None, a str, a list or a dict, not {type(replies).__name__}")
        return ""  # pragma: no cover

    def _choice(self, request: GenRequest) -> Choice:
        reply = self._reply(request)
        if isinstance(reply, dict) and ("tool_calls" in reply or ("content" in reply and "text" not in reply)):
            calls = [
                ToolCall(
                    c.get("id") or new_call_id(),
                    c["name"],
                    c["arguments"]
                    if isinstance(c.get("arguments"), str)
                    else json.dumps(c.get("arguments", {}), ensure_ascii=False),
                )
                for c in reply.get("tool_calls") or []
            ]
            if calls and request.choice.mode == "none":
                calls = []  # like a real model told not to call tools (calls of unknown tools stay: they become
                # error results in dispatch, as with real models)
            return Choice(reply.get("content") or "", calls, "tool_calls" if calls else "stop")
        if isinstance(reply, dict):
            text = str(reply.get("text", ""))
            finish = reply.get("finish_reason", "stop")
            stop_text = reply.get("stop_text")
        else:
            text, finish, stop_text = str(reply), "stop", None
        if request.options:
            text = self._pick(text, request.options)
        kept, hit = apply_stops(text, as_list(request.stop), as_list(request.stop_regex), request.regex_timeout)
        if hit is not None:
            text, stop_text, finish = kept, hit, "stop"
        if request.max_tokens is not None and request.max_tokens >= 0:
            words = text.split(" ")
            if len(words) > request.max_tokens > 0:
                text, finish = " ".join(words[: request.max_tokens]), "length"
        return Choice(text, [], finish, stop_text)

    def _pick(self, text: str, options: list[str]) -> str:
        """The option a reply names; an unscripted Mock picks the last option of a choice it was asked before."""
        key = tuple(options)
        again = key in self._choices_seen
        self._choices_seen.add(key)
        if self.replies is None and again:
            return options[-1]
        return _pick_option(text, options)

    # -- the Model interface -----------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        self.requests.append(request)
        choices = [self._choice(request) for _ in range(max(1, request.n))]
        for i, choice in enumerate(choices):
            for start in range(0, len(choice.text), self.chunk_size):
                yield Delta(text=choice.text[start : start + self.chunk_size], choice=i)
            for index, call in enumerate(choice.tool_calls):
                yield Delta(
                    choice=i, tool_index=index, tool_id=call.id, tool_name=call.name, tool_arguments=call.arguments_json
                )
        completion_tokens = sum(len(c.text.split()) for c in choices)
        yield Completion(choices, Usage(0, completion_tokens, completion_tokens, estimated=True), model="mock")

    @property
    def last_request(self) -> Optional[GenRequest]:
        return self.requests[-1] if self.requests else None


def _pick_option(text: str, options: list[str]) -> str:
    """The option the scripted text names (exact, then prefix), else the first option."""
    if text in options:
        return text
    for option in sorted(options, key=len, reverse=True):
        if option and text.startswith(option):
            return option
    return options[0]
