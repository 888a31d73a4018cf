"""A non-streamed answer read straight from the HTTP response, without the SDK building models from it.

Why: for a plain (non-streamed) request the SDK transforms the request parameters and builds ~70 pydantic objects
from the answer; under concurrency that is a third of the client's CPU per request. The transport instead sends the
body as it is (``client.post`` keeps the SDK's retries, timeouts, status errors and our size cap) and decodes the
JSON here into :class:`Record` objects that the readers use exactly like the SDK's (attribute access, a missing field
reads as None). What a misbehaving server sends ends where the SDK's would: a body that is not JSON where JSON was
announced raises the decoding error, a body that is not JSON under another content type comes back as its text.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any


class Record(dict):
    """A JSON object whose fields read as attributes (``choice.message.content``); a missing field is None. Shown as
    the SDK shows its objects (``ChatCompletion(id='c1', choices=[...])``), which is how errors quote an answer."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends look for dunders: don't pretend to have them
            raise AttributeError(name)
        return self.get(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{key}={value!r}' for key, value in self.items())})"


@functools.cache
def record_class(name: str) -> type[Record]:
    """A Record named as the SDK names the answer of an endpoint (``ChatCompletion``, ``Completion``)."""
    return type(name, (Record,), {"__slots__": ()})


def http_library() -> Any:
    """The HTTP library the SDK is built on (httpx, or its successor here): its exceptions and models are what the
    SDK's errors carry."""
    import openai as openai_sdk

    return sys.modules[type(openai_sdk.DEFAULT_CONNECTION_LIMITS).__module__.split(".")[0]]


def http_response_class() -> type:
    """The HTTP library's Response class: ``client.post(cast_to=…)`` of it returns the raw response after the SDK's
    retries and status checks."""
    response_class: type = http_library().Response
    return response_class


class EventStream(list):
    """The chunks of an event stream sent whole as the answer to a plain request (servers and proxies that always
    stream do that): read like a stream."""


def events_of(text: str, chunk_type: str) -> EventStream:
    """The ``data:`` events of an SSE body, up to ``[DONE]``, as Records named ``chunk_type``."""
    chunks = EventStream()
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue  # comments, event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            break
        if data:
            event = json.loads(data, object_hook=Record)
            chunks.append(record_class(chunk_type)(event) if isinstance(event, Record) else event)
    return chunks


def decode(response: Any, answer_type: str) -> Any:
    """The answer in ``response`` as Records, the top one named ``answer_type``; an event stream as an
    :class:`EventStream` of its chunks; a body that is not JSON and not announced as JSON as its text (what the SDK
    returns then, and what ``malformed.check_body`` explains)."""
    return decode_body(str(response.headers.get("content-type", "*")), response.content, answer_type)


def text_of(content: bytes, content_type: str) -> str:
    """A body as text, in the charset its content type names (UTF-8 when none or an unknown one)."""
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return content.decode(charset, errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def decode_body(content_type: str, content: bytes, answer_type: str) -> Any:
    """``decode`` of a body and its content type (``content-type`` header, ``*`` when there was none)."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "text/event-stream":
        return events_of(text_of(content, content_type), answer_type + "Chunk")
    if media_type.endswith("json"):
        answer = json.loads(content, object_hook=Record)
    else:
        try:
            answer = json.loads(content, object_hook=Record)
        except (ValueError, RecursionError):
            return text_of(content, content_type)
    return record_class(answer_type)(answer) if isinstance(answer, Record) else answer


__all__ = [
    "EventStream",
    "Record",
    "decode",
    "decode_body",
    "events_of",
    "http_library",
    "http_response_class",
    "record_class",
    "text_of",
]
