"""Incremental JSON reading for the call parsers: one character at a time, values re-serialised canonically while
they stream.

Convention: every reader is a generator that is sent one character at a time (``None`` at the end of the output).
It is handed the current character ``ch`` (already read) and returns ``(result, ch)`` where the returned ``ch`` is the
first character it did not consume (None at the end). Malformed input raises :class:`Malformed`, never anything
deeper: a call parser gives the attempt back as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from typing import Any, Optional

from ..errors import GuidanceLiteError

WHITESPACE = " \t\r\n"

# A parsing coroutine: sent one character at a time (None = end of output); returns its result via StopIteration.
Reader = Generator[None, Optional[str], Any]


class Malformed(GuidanceLiteError, ValueError):
    """The text after a trigger is not a well-formed call; the attempt is given back as plain text."""


class NotACall(Malformed):
    """Text that only might have started a call (e.g. a JSON answer whose first key is not "name"): text, no warning."""


class NotOffered(Malformed):
    """A well-formed call to a tool that was not offered to this generation: given back as text, with a warning."""


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
