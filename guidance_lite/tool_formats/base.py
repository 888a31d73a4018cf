"""The shared interface of client-side tool-call formats, and the incremental parsing machinery they are built on.

Why client side: many open models run behind servers that only do text completion (or parse tool calls badly), so we
render tool definitions/calls/results into the prompt syntax the model family was trained on and parse calls back out
of the generated text ourselves.

How parsing works: every format is one character-driven state machine (a generator that is sent one character at a
time, ``None`` at the end of the output). ``ToolFormat.parse(text)`` is exactly "feed the whole text, then finish",
so streaming the same text in chunks of any size gives the same content and calls by construction.

Rules shared by every format:
- Plain text streams as ``Delta(text=…)``; text that might be the start of a trigger (e.g. ``"<tool"``) is held back
  until it is known not to be one, so call syntax never leaks into text deltas. Whitespace right before a call, after
  a call at the start or end of the output, and between calls is dropped (it only separates calls from text); all
  other text is kept verbatim (``"Checking <call> done"`` -> ``"Checking done"``).
- A call streams as ``Delta(tool_index, tool_id, tool_name)`` once its name is known, then argument fragments. The
  arguments are re-serialised while they stream into canonical JSON (``json.dumps(args, ensure_ascii=False)`` form),
  so the fragments concatenate to exactly the final ``ToolCall.arguments_json``. Arguments written as a JSON string
  holding an object are decoded; missing or ``null`` arguments become ``"{}"``.
- Malformed output (bad JSON, unknown shape, unterminated call) never raises: the attempted call is given back as
  plain text and a warning goes to ``logging.getLogger("guidance_lite")``. If the attempt had already produced calls
  or text (several calls in one array, a streamed ``response``) those are kept and the rest of the output is dropped,
  with a warning. Deltas already
  streamed for a call that turns out malformed are superseded by the final result (``finish()``), which is
  authoritative; tool indexes are never reused, so such fragments never mix with a later call's.
"""
from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Optional, Union

from ..models.base import Delta, ToolCall, new_call_id

logger = logging.getLogger("guidance_lite")

WHITESPACE = " \t\r\n"
ZERO_WIDTH_SPACE = "\u200b"

# A parsing coroutine: sent one character at a time (None = end of output); returns its result via StopIteration.
Reader = Generator[None, Optional[str], Any]


class Malformed(ValueError):
    """The text after a trigger is not a well-formed call; the attempt is given back as plain text."""


class NotACall(Malformed):
    """Text that only might have started a call (e.g. a JSON answer whose first key is not "name"): text, no warning."""


# ---------------------------------------------------------------------------------------------------------------------
# Incremental JSON reading. Convention: every reader is handed the current character ``ch`` (already read) and
# returns ``(result, ch)`` where the returned ``ch`` is the first character it did not consume (None at the end).
# ---------------------------------------------------------------------------------------------------------------------
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")
_NUMBER_CHARS = frozenset("+-0123456789.eE")
_HEX = frozenset("0123456789abcdefABCDEF")
TextSink = Callable[[str], None]


def encode_string_body(text: str) -> str:
    """``text`` escaped the way ``json.dumps(..., ensure_ascii=False)`` escapes a string, without the quotes."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def skip_whitespace(ch: Optional[str]) -> Reader:
    while ch is not None and ch in WHITESPACE:
        ch = yield
    return ch


def expect_char(ch: Optional[str], wanted: str, what: str) -> Reader:
    """Consume exactly ``wanted``; returns the next character."""
    if ch != wanted:
        raise Malformed(f"expected {wanted!r} {what}, found {'end of output' if ch is None else repr(ch)}")
    return (yield)


def read_json_string(ch: Optional[str], on_text: Optional[TextSink] = None) -> Reader:
    """Read a JSON string starting at its opening quote; decoded pieces go to ``on_text`` as they arrive.

    Lenient like ``json.loads(strict=False)``: raw control characters inside the string are accepted.
    """
    if ch != '"':
        raise Malformed(f"expected a JSON string, found {ch!r}")
    parts: list[str] = []
    high: Optional[str] = None  # a high surrogate waiting for its pair

    def put(piece: str) -> None:
        nonlocal high
        if high is not None:
            if "\udc00" <= piece <= "\udfff":
                piece = chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(piece) - 0xDC00))
                high = None
            else:
                pending, high = high, None
                put(pending)
        if "\ud800" <= piece <= "\udbff":
            high = piece
            return
        parts.append(piece)
        if on_text is not None:
            on_text(piece)

    while True:
        ch = yield
        if ch is None:
            raise Malformed("unterminated JSON string")
        if ch == '"':
            break
        if ch != "\\":
            put(ch)
            continue
        ch = yield
        if ch is None:
            raise Malformed("unterminated JSON string")
        if ch in _SIMPLE_ESCAPES:
            put(_SIMPLE_ESCAPES[ch])
        elif ch == "u":
            digits = ""
            for _ in range(4):
                ch = yield
                if ch is None or ch not in _HEX:
                    raise Malformed("bad \\u escape in a JSON string")
                digits += ch
            put(chr(int(digits, 16)))
        else:
            raise Malformed(f"bad escape \\{ch} in a JSON string")
    if high is not None:
        pending, high = high, None
        parts.append(pending)
        if on_text is not None:
            on_text(pending)
    return "".join(parts), (yield)


def read_json_value(ch: Optional[str], sink: Optional[TextSink] = None) -> Reader:
    """Read any JSON value; if ``sink`` is given, its canonical serialisation is written there while it streams."""
    if ch == "{":
        return (yield from _read_object(sink))
    if ch == "[":
        return (yield from _read_array(sink))
    if ch == '"':
        if sink is not None:
            sink('"')
        value, ch = yield from read_json_string(ch, None if sink is None else lambda t: sink(encode_string_body(t)))
        if sink is not None:
            sink('"')
        return value, ch
    if ch is not None and ch in "tfn":
        for literal, value in (("true", True), ("false", False), ("null", None)):
            if ch == literal[0]:
                for wanted in literal[1:]:
                    ch = yield
                    if ch != wanted:
                        raise Malformed(f"bad JSON literal (expected {literal!r})")
                if sink is not None:
                    sink(literal)
                return value, (yield)
    if ch is not None and ch in _NUMBER_CHARS:
        text = ""
        while ch is not None and ch in _NUMBER_CHARS:
            text += ch
            ch = yield
        if not _NUMBER.match(text):
            raise Malformed(f"bad JSON number {text!r}")
        value = json.loads(text)
        if sink is not None:
            sink(json.dumps(value))
        return value, ch
    raise Malformed(f"expected a JSON value, found {'end of output' if ch is None else repr(ch)}")


def _read_object(sink: Optional[TextSink]) -> Reader:
    if sink is not None:
        sink("{")
    result: dict = {}
    ch = yield from skip_whitespace((yield))
    if ch == "}":
        if sink is not None:
            sink("}")
        return result, (yield)
    while True:
        key, ch = yield from read_json_string(ch)
        if sink is not None:
            sink(json.dumps(key, ensure_ascii=False) + ": ")
        ch = yield from skip_whitespace(ch)
        ch = yield from expect_char(ch, ":", "after an object key")
        ch = yield from skip_whitespace(ch)
        result[key], ch = yield from read_json_value(ch, sink)
        ch = yield from skip_whitespace(ch)
        if ch == "}":
            if sink is not None:
                sink("}")
            return result, (yield)
        ch = yield from expect_char(ch, ",", "or '}' in an object")
        if sink is not None:
            sink(", ")
        ch = yield from skip_whitespace(ch)


def _read_array(sink: Optional[TextSink]) -> Reader:
    if sink is not None:
        sink("[")
    result: list = []
    ch = yield from skip_whitespace((yield))
    if ch == "]":
        if sink is not None:
            sink("]")
        return result, (yield)
    while True:
        value, ch = yield from read_json_value(ch, sink)
        result.append(value)
        ch = yield from skip_whitespace(ch)
        if ch == "]":
            if sink is not None:
                sink("]")
            return result, (yield)
        ch = yield from expect_char(ch, ",", "or ']' in an array")
        if sink is not None:
            sink(", ")
        ch = yield from skip_whitespace(ch)


# ---------------------------------------------------------------------------------------------------------------------
# Calls while they stream
# ---------------------------------------------------------------------------------------------------------------------
NAME_KEYS = ("name",)
ARGUMENT_KEYS = ("arguments", "parameters")
_FIRST_CALL_KEYS = ("name", "type", "function")


class PendingCall:
    """A call being read: announces itself (one header delta) once its name is known, then streams arguments."""

    def __init__(self, parser: "ToolStreamParser") -> None:
        self._parser = parser
        self.name: Optional[str] = None
        self.index: Optional[int] = None
        self.id: Optional[str] = None
        self._arguments: list[str] = []
        self.has_arguments = False

    def set_name(self, name: str) -> None:
        if self.name is not None:
            raise Malformed("a tool call names its function twice")
        name = name.strip()
        if not name:
            raise Malformed("a tool call has an empty function name")
        self.name = name
        self.index, self.id = self._parser._announce(name)
        if self._arguments:
            self._parser._emit_arguments(self.index, "".join(self._arguments))

    def add_arguments(self, fragment: str) -> None:
        """A canonical fragment of the arguments JSON."""
        self._arguments.append(fragment)
        if self.index is not None:
            self._parser._emit_arguments(self.index, fragment)

    def set_arguments_text(self, text: Optional[str]) -> None:
        """Arguments that arrived whole: a JSON string holding an object, or None for ``null``."""
        if text is None:
            canonical = "{}"
        else:
            try:
                value = json.loads(text) if text.strip() else {}
            except ValueError as exc:
                raise Malformed(f"tool arguments are a string that is not JSON ({exc})") from None
            if not isinstance(value, dict):
                raise Malformed("tool arguments must be a JSON object")
            canonical = json.dumps(value, ensure_ascii=False)
        self.add_arguments(canonical)

    def to_call(self) -> ToolCall:
        if self.name is None or self.id is None:
            raise Malformed("a tool call has no function name")
        if not self.has_arguments:
            self.add_arguments("{}")
        return ToolCall(id=self.id, name=self.name, arguments_json="".join(self._arguments))


def read_call_object(ch: Optional[str], call: PendingCall, *, first_key_decides: bool = False,
                     argument_keys: Iterable[str] = ARGUMENT_KEYS) -> Reader:
    """Read ``{"name": …, "arguments": {…}}`` (key order free; also the OpenAI ``{"type": "function", "function":
    {…}}`` shape). Unknown keys are read and ignored. ``first_key_decides``: a first key other than name/type/function
    means this JSON was never a call (``NotACall``). Returns the next character (the call is not completed here)."""
    argument_keys = tuple(argument_keys)
    if ch != "{":
        raise Malformed(f"expected '{{' to start a tool call, found {ch!r}")
    ch = yield from skip_whitespace((yield))
    if ch == "}":
        raise (NotACall if first_key_decides else Malformed)("empty JSON object instead of a tool call")
    first = True
    while True:
        if ch != '"':
            raise (NotACall if first and first_key_decides else Malformed)(f"expected a JSON key, found {ch!r}")
        key, ch = yield from read_json_string(ch)
        if first and first_key_decides and key not in _FIRST_CALL_KEYS:
            raise NotACall(f"JSON object starting with key {key!r} is not a tool call")
        first = False
        ch = yield from skip_whitespace(ch)
        ch = yield from expect_char(ch, ":", "after a key in a tool call")
        ch = yield from skip_whitespace(ch)
        if key in NAME_KEYS:
            if ch != '"':
                raise Malformed("a tool call's name must be a JSON string")
            name, ch = yield from read_json_string(ch)
            call.set_name(name)
        elif key in argument_keys:
            if call.has_arguments:
                raise Malformed("a tool call has its arguments twice")
            call.has_arguments = True
            if ch == "{":
                _, ch = yield from read_json_value(ch, call.add_arguments)
            elif ch == '"':
                text, ch = yield from read_json_string(ch)
                call.set_arguments_text(text)
            elif ch == "n":
                _, ch = yield from read_json_value(ch)
                call.set_arguments_text(None)
            else:
                raise Malformed("tool arguments must be a JSON object")
        elif key == "function" and ch == "{":
            ch = yield from read_call_object(ch, call, argument_keys=argument_keys)
        else:
            _, ch = yield from read_json_value(ch)
        ch = yield from skip_whitespace(ch)
        if ch == "}":
            return (yield)
        ch = yield from expect_char(ch, ",", "or '}' in a tool call")
        ch = yield from skip_whitespace(ch)


def longest_partial_suffix(text: str, triggers: Iterable[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``triggers``."""
    best = 0
    for trigger in triggers:
        for size in range(min(len(trigger) - 1, len(text)), best, -1):
            if text.endswith(trigger[:size]):
                best = size
                break
    return best


@dataclass
class _Attempt:
    start: int  # offset in the output where the attempted call syntax starts
    lead: str  # whitespace before it that was dropped (given back too if the attempt fails)
    calls_before: int
    text_before: int


class ToolStreamParser:
    """Parses one generation incrementally. ``feed`` returns the deltas that became certain; ``finish`` the result."""

    def __init__(self, fmt: "ToolFormat") -> None:
        self.format = fmt
        self._seen: list[str] = []
        self._deltas: list[Delta] = []
        self._content: list[str] = []
        self._calls: list[ToolCall] = []
        self._next_index = 0
        self._attempt: Optional[_Attempt] = None
        self._finished = False
        self._discarding = False  # a malformed attempt that had produced results: the rest of the output is dropped
        self._machine = fmt._machine(self)
        next(self._machine)

    # ---- driving ------------------------------------------------------------------------------------------------
    def feed(self, chunk: str) -> list[Delta]:
        if self._finished:
            raise RuntimeError("this tool stream parser is finished; make a new one with format.stream_parser()")
        for ch in chunk:
            self._seen.append(ch)
            if not self._discarding:
                self._machine.send(ch)
        return self._take()

    def finish(self) -> tuple[str, list[ToolCall], list[Delta]]:
        """End of output: returns (content, calls, last deltas)."""
        if not self._finished:
            self._finished = True
            if self._discarding:
                self._machine.close()
            else:
                try:
                    self._machine.send(None)
                except StopIteration:
                    pass
                else:  # pragma: no cover - every machine returns at the end of output
                    raise RuntimeError(f"{self.format.name}: parser did not stop at the end of output")
        return "".join(self._content), list(self._calls), self._take()

    @property
    def at_end(self) -> bool:
        return self._finished

    # ---- what machines call -------------------------------------------------------------------------------------
    def emit_text(self, text: str) -> None:
        if text:
            self._content.append(text)
            self._deltas.append(Delta(text=text))

    def begin_attempt(self, start: int, lead: str = "") -> None:
        """Call syntax starts at output offset ``start``; ``lead`` is whitespace dropped before it."""
        self._attempt = _Attempt(start, lead, len(self._calls), len(self._content))

    def offset(self, back: int = 0) -> int:
        """Output offset just after the current character, minus ``back`` characters."""
        return len(self._seen) - back

    def consumed_since(self, start: int, lookahead: bool) -> str:
        """Output read from offset ``start`` on, minus the current character if it is a lookahead still to be used."""
        end = len(self._seen) - (1 if lookahead else 0)
        return "".join(self._seen[start:end])

    def new_call(self) -> PendingCall:
        return PendingCall(self)

    def complete(self, call: PendingCall) -> None:
        self._calls.append(call.to_call())

    def end_attempt(self) -> None:
        self._attempt = None

    def give_back(self, error: Malformed) -> None:
        """The attempt failed: its text becomes plain text (or, if it already produced results, it and the rest of the
        output are dropped)."""
        attempt = self._attempt
        self._attempt = None
        if attempt is None:  # pragma: no cover - machines only fail inside an attempt
            raise RuntimeError(f"{self.format.name}: malformed call outside an attempt") from error
        raw = "".join(self._seen[attempt.start:])
        produced = len(self._calls) > attempt.calls_before or len(self._content) > attempt.text_before
        if produced:
            logger.warning("%s: dropping the rest of the output after a malformed part (%s): %r",
                           self.format.name, error, raw[-200:])
            self._discarding = True
            return
        if not isinstance(error, NotACall):
            logger.warning("%s: could not parse a tool call (%s); keeping it as text: %r",
                           self.format.name, error, raw[:200])
        self.emit_text(attempt.lead + raw)

    # ---- text with held-back trigger prefixes -------------------------------------------------------------------
    def after_call(self, ch: Optional[str]) -> Reader:
        """After a call: whitespace is dropped if no text came before; otherwise ``read_text`` decides (it keeps
        whitespace only if more text follows)."""
        if self._content:
            return ch
        return (yield from skip_whitespace(ch))

    def read_text(self, ch: Optional[str], triggers: tuple[str, ...], pending: str = "") -> Reader:
        """Emit plain text from ``ch`` on until a trigger has been read completely or the output ends.

        Returns ``(trigger, lead)``: the trigger (None at the end of output) and the whitespace right before it, which
        is not emitted. Text that could still turn into a trigger, and trailing whitespace, is held back meanwhile;
        at the end of an output that made calls, held-back whitespace alone is dropped.
        """
        while True:
            if ch is None:
                if pending.strip(WHITESPACE) or not self._calls:
                    self.emit_text(pending)
                return None, ""
            pending += ch
            for trigger in triggers:
                if pending.endswith(trigger):
                    before = pending[: len(pending) - len(trigger)]
                    text = before.rstrip(WHITESPACE)
                    self.emit_text(text)
                    return trigger, before[len(text):]
            keep = longest_partial_suffix(pending, triggers)
            text = pending[: len(pending) - keep].rstrip(WHITESPACE)
            self.emit_text(text)
            pending = pending[len(text):]
            ch = yield

    # ---- internals ------------------------------------------------------------------------------------------------
    def _announce(self, name: str) -> tuple[int, str]:
        index = self._next_index
        self._next_index += 1
        call_id = self.format.new_id()
        self._deltas.append(Delta(tool_index=index, tool_id=call_id, tool_name=name, tool_arguments=""))
        return index, call_id

    def _emit_arguments(self, index: int, fragment: str) -> None:
        if fragment:
            self._deltas.append(Delta(tool_index=index, tool_arguments=fragment))

    def _take(self) -> list[Delta]:
        """Pending deltas, with neighbouring text pieces and argument fragments of one call merged."""
        merged: list[Delta] = []
        for delta in self._deltas:
            last = merged[-1] if merged else None
            if last is not None and delta.tool_index is None and last.tool_index is None:
                last.text += delta.text
            elif (last is not None and delta.tool_index is not None and delta.tool_index == last.tool_index
                  and delta.tool_id is None and delta.tool_name is None):
                last.tool_arguments += delta.tool_arguments
            else:
                merged.append(Delta(text=delta.text, tool_index=delta.tool_index, tool_id=delta.tool_id,
                                    tool_name=delta.tool_name, tool_arguments=delta.tool_arguments))
        self._deltas = []
        return merged


# ---------------------------------------------------------------------------------------------------------------------
# Prompt side: normalised history and tool schemas
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class HistoryItem:
    """One OpenAI-format message, normalised: text content, calls as ToolCall, results tied to their call."""

    role: str  # system | user | assistant | tool
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    call_id: Optional[str] = None  # tool results: the call answered
    name: Optional[str] = None  # tool results: the function that produced it


def message_text(message: dict) -> str:
    """A message's content as text (OpenAI content parts of type text are joined)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                texts.append(part)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"message content part of type {kind!r} can't be rendered into a text prompt; "
                                 f"send only text parts to completion models")
        return "".join(texts)
    if isinstance(content, (dict, int, float, bool)):
        return json.dumps(content, ensure_ascii=False)
    raise ValueError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


def _call_from_openai(raw: Any, fallback_id: str) -> ToolCall:
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
            calls = [_call_from_openai(c, f"call_{number}_{i}") for i, c in enumerate(message.get("tool_calls") or [])]
            legacy = message.get("function_call")
            if legacy:
                calls.append(_call_from_openai(legacy, f"call_{number}_legacy"))
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


def normalize_tools(tools: Optional[list[dict]]) -> list[dict]:
    """Tool schemas in OpenAI form ``{"type": "function", "function": {name, description?, parameters}}``."""
    result = []
    for tool in tools or []:
        if hasattr(tool, "schema") and callable(tool.schema):
            tool = tool.schema()
        if not isinstance(tool, dict):
            raise ValueError(f"tools must be OpenAI tool dicts (or objects with .schema()), got {type(tool).__name__}")
        function = tool.get("function", tool) if tool.get("type", "function") == "function" else None
        if not function or not function.get("name"):
            raise ValueError(f"tool schema {tool!r:.120} has no function name; expected "
                             f'{{"type": "function", "function": {{"name": …, "parameters": {{…}}}}}}')
        function = dict(function)
        function.setdefault("parameters", {"type": "object", "properties": {}})
        result.append({"type": "function", "function": function})
    return result


def tool_choice_mode(tool_choice: Union[str, dict, None], tools: list[dict]) -> str:
    """'auto' | 'none' | 'required' | a tool name (checked against ``tools``)."""
    if tool_choice is None:
        return "auto"
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if not name:
            raise ValueError(f"tool_choice {tool_choice!r} names no function")
        tool_choice = name
    if tool_choice in ("auto", "none", "required"):
        return tool_choice
    names = [t["function"]["name"] for t in tools]
    if tool_choice not in names:
        offered = ", ".join(names) or "no tools"
        raise ValueError(f"tool_choice {tool_choice!r} is not one of the offered tools ({offered}); "
                         f"use 'auto', 'required', 'none' or one of those names")
    return tool_choice


def tool_choice_instruction(mode: str) -> str:
    """The sentence that tells the model it must call (a particular) tool now ('' for auto)."""
    if mode == "required":
        return "You must call at least one of the tools in your next reply."
    if mode not in ("auto", "none"):
        return f"You must call the tool `{mode}` in your next reply."
    return ""


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


class ToolFormat(ABC):
    """One model family's tool-call syntax: prompt rendering (``prepare_messages``) and output parsing."""

    name: str = "base"
    trigger: Optional[str] = None  # text that starts a tool call in free text (None: the whole output is the protocol)
    value_markers: tuple[str, ...] = ()  # this format's markers, neutralised inside values rendered into prompts

    # ---- prompt side --------------------------------------------------------------------------------------------
    def prepare_messages(self, messages: list[dict], tools: Optional[list[dict]],
                         tool_choice: Union[str, dict, None] = None) -> list[dict]:
        """OpenAI-format messages + tool schemas -> plain ``{role, content}`` messages for a chat template.

        ``tool_choice`` 'none' leaves the tools out; 'required' or a name adds an instruction to call (that) tool.
        """
        schemas = normalize_tools(tools)
        mode = tool_choice_mode(tool_choice, schemas)
        if mode == "none":
            schemas = []
        return self._render(normalize_history(messages), schemas, mode)

    @abstractmethod
    def _render(self, history: list[HistoryItem], tools: list[dict], mode: str) -> list[dict]:
        """Implemented by each format module."""

    def escape(self, text: str) -> str:
        """Neutralise this format's markers inside a value (U+200B after the first character) so a value can't forge
        a call or a result."""
        for marker in self.value_markers:
            if marker in text:
                text = text.replace(marker, marker[0] + ZERO_WIDTH_SPACE + marker[1:])
        return text

    # ---- output side --------------------------------------------------------------------------------------------
    def parse(self, text: str) -> tuple[str, list[ToolCall]]:
        """One-shot: (content text, calls with generated ids)."""
        parser = self.stream_parser()
        parser.feed(text)
        content, calls, _ = parser.finish()
        return content, calls

    def stream_parser(self) -> ToolStreamParser:
        return ToolStreamParser(self)

    @abstractmethod
    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        """The literal text a forced call starts with (with ``tool_name``: up to where its arguments object starts)."""

    @abstractmethod
    def call_grammar_suffix(self) -> str:
        """The literal text that closes a single call after its arguments object."""

    def new_id(self) -> str:
        return new_call_id()

    @abstractmethod
    def _machine(self, parser: ToolStreamParser) -> Reader:
        """Implemented by each format module."""

    def __repr__(self) -> str:
        return f"<ToolFormat {self.name}>"
