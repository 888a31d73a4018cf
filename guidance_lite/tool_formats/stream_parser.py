"""Parsing one generation's output into text and tool calls while it streams (the machinery every format shares).

How: a format is one character-driven state machine (``ToolFormat.read_output``, a generator sent one character at a
time, ``None`` at the end). :class:`ToolStreamParser` drives it and collects what it finds; ``parse(text)`` is exactly
"feed the whole text, then finish", so streaming the same text in chunks of any size gives the same content and calls
by construction.

Rules shared by every format:
- Plain text streams as ``Delta(text=…)``; text that might be the start of a trigger (e.g. ``"<tool"``) is held back
  until it is known not to be one, so call syntax never leaks into text deltas. Whitespace right before a call, after
  a call at the start or end of the output, and between calls is dropped (it only separates calls from text); all
  other text is kept verbatim (``"Checking <call> done"`` -> ``"Checking done"``).
- A call streams as ``Delta(tool_index, tool_id, tool_name)`` once its name is known, then argument fragments. The
  arguments are re-serialised while they stream into canonical JSON (``json.dumps(args, ensure_ascii=False)`` form),
  so the fragments concatenate to exactly the final ``ToolCall.arguments_json``. Arguments written as a JSON string
  holding an object are decoded; missing or ``null`` arguments become ``"{}"``.
- Offered tools only: a parser made with ``tools=`` (names, or objects with a ``name``) turns text into a call only
  when it names one of them; a call to any other name is given back as text, with a warning. Without ``tools`` any
  name is accepted, and the forms that are only unambiguous when the offered tools are known (a bare JSON object in
  the middle of prose, built-in call syntax, raw code) stay text.
- Malformed output (bad JSON, unknown shape, unterminated call) never raises: the attempted call is given back as
  plain text and a warning goes to ``logging.getLogger("guidance_lite")``. If the attempt had already produced calls
  or text (several calls in one array, a streamed ``response``) those are kept and the rest of the output is dropped,
  with a warning. Deltas already streamed for a call that turns out malformed are superseded by the final result
  (``finish()``), which is authoritative; tool indexes are never reused, so such fragments never mix with a later
  call's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from ..models.base import Delta
from ..tools import ToolCall
from .json_reader import (
    WHITESPACE,
    Malformed,
    NotACall,
    NotOffered,
    Reader,
    expect_char,
    read_json_string,
    read_json_value,
    skip_whitespace,
)

logger = logging.getLogger("guidance_lite")


class OutputSyntax(Protocol):
    """What the parser needs from a format (``ToolFormat`` provides it)."""

    name: str

    def new_id(self) -> str: ...

    def read_output(self, parser: ToolStreamParser) -> Reader: ...


NAME_KEYS = ("name",)
ARGUMENT_KEYS = ("arguments", "parameters")
_FIRST_CALL_KEYS = ("name", "type", "function", *ARGUMENT_KEYS)


def offered_names(tools: Optional[Iterable[Any]]) -> Optional[frozenset[str]]:
    """The names of the offered tools (strings, or objects with a ``name``: ToolSpec, Tool); None when not known."""
    if tools is None:
        return None
    return frozenset(tool if isinstance(tool, str) else str(getattr(tool, "name", tool)) for tool in tools)


class PendingCall:
    """A call being read: announces itself (one header delta) once its name is known, then streams arguments."""

    def __init__(self, parser: ToolStreamParser) -> None:
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
        self._parser.check_offered(name)
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

    def set_arguments_value(self, value: dict) -> None:
        """Arguments built by the format itself (built-in call syntax, raw code)."""
        self.has_arguments = True
        self.add_arguments(json.dumps(value, ensure_ascii=False))

    def to_call(self) -> ToolCall:
        if self.name is None or self.id is None:
            raise Malformed("a tool call has no function name")
        if not self.has_arguments:
            self.add_arguments("{}")
        return ToolCall(id=self.id, name=self.name, arguments_json="".join(self._arguments))


def read_call_object(
    ch: Optional[str],
    call: PendingCall,
    *,
    first_key_decides: bool = False,
    argument_keys: Iterable[str] = ARGUMENT_KEYS,
) -> Reader:
    """Read ``{"name": …, "arguments": {…}}`` (key order free; also the OpenAI ``{"type": "function", "function":
    {…}}`` shape). Unknown keys are read and ignored. ``first_key_decides``: a first key other than name, type,
    function or the arguments, or an object without a name, means this JSON was never a call (``NotACall``).
    Returns the next character (the call is not completed here)."""
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
            if first_key_decides and call.name is None:
                raise NotACall("a JSON object without a function name is not a tool call")
            return (yield)
        ch = yield from expect_char(ch, ",", "or '}' in a tool call")
        ch = yield from skip_whitespace(ch)


def read_named_call(parser: ToolStreamParser, ch: Optional[str], name: str, where: str) -> Reader:
    """A call whose name is written outside its arguments (``name{…}``, ``<function=name>{…}``, ``>>>name\n{…}``):
    the arguments object from ``ch`` on. ``where`` names the syntax for the error. Returns ``(call, next
    character)``; the caller completes the call once any closing syntax has been read."""
    if ch != "{":
        raise Malformed(f"expected a JSON object of arguments after {where}")
    call = parser.new_call()
    call.set_name(name)
    call.has_arguments = True
    _, ch = yield from read_json_value(ch, call.add_arguments)
    return call, ch


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

    def __init__(self, fmt: OutputSyntax, tools: Optional[Iterable[Any]] = None) -> None:
        self.format = fmt
        self.offered = offered_names(tools)  # None: any name is accepted
        self._seen: list[str] = []
        self._deltas: list[Delta] = []
        self._content: list[str] = []
        self._calls: list[ToolCall] = []
        self._next_index = 0
        self._attempt: Optional[_Attempt] = None
        self._finished = False
        self._discarding = False  # a malformed attempt that had produced results: the rest of the output is dropped
        self._machine = fmt.read_output(self)
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

    def accepts(self, name: str) -> bool:
        """Whether a call to ``name`` may become a call (it was offered, or the offered tools are not known)."""
        return self.offered is None or name in self.offered

    def check_offered(self, name: str) -> None:
        """Raise NotOffered unless a call to ``name`` may become a call."""
        if not self.accepts(name):
            offered = ", ".join(sorted(self.offered or ())) or "none"
            raise NotOffered(f"a call to {name!r}, which was not offered to this gen (offered: {offered})")

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
        raw = "".join(self._seen[attempt.start :])
        produced = len(self._calls) > attempt.calls_before or len(self._content) > attempt.text_before
        if produced:
            logger.warning(
                "%s: dropping the rest of the output after a malformed part (%s): %r",
                self.format.name,
                error,
                raw[-200:],
            )
            self._discarding = True
            return
        if not isinstance(error, NotACall):
            logger.warning(
                "%s: could not parse a tool call (%s); keeping it as text: %r", self.format.name, error, raw[:200]
            )
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
                    return trigger, before[len(text) :]
            keep = longest_partial_suffix(pending, triggers)
            text = pending[: len(pending) - keep].rstrip(WHITESPACE)
            self.emit_text(text)
            pending = pending[len(text) :]
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
            elif (
                last is not None
                and delta.tool_index is not None
                and delta.tool_index == last.tool_index
                and delta.tool_id is None
                and delta.tool_name is None
            ):
                last.tool_arguments += delta.tool_arguments
            else:
                merged.append(
                    Delta(
                        text=delta.text,
                        tool_index=delta.tool_index,
                        tool_id=delta.tool_id,
                        tool_name=delta.tool_name,
                        tool_arguments=delta.tool_arguments,
                    )
                )
        self._deltas = []
        return merged
