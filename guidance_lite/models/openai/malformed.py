"""Answers a misbehaving server sends, as ModelErrors that name the server and show the start of what it sent.

Why here and not in the readers: the readers turn well-formed answers into Deltas and Completions; whether an answer
is one at all (a JSON object with choices, an event stream that finished) is the same question for both endpoints,
asked by the transport before and after it hands the answer to a reader.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..base import Completion, ModelError

EXCERPT_CHARACTERS = 200  # how much of a bad answer an error shows


def excerpt(sent: Any) -> str:
    """The start of what the server sent, quoted, with its length when it is cut."""
    text = sent.decode("utf-8", "replace") if isinstance(sent, (bytes, bytearray)) else sent
    if not isinstance(text, str):
        text = repr(text)
    cut = f" … ({len(text)} characters)" if len(text) > EXCERPT_CHARACTERS else ""
    return repr(text[:EXCERPT_CHARACTERS]) + cut


def not_json(where: str, err: Exception, part: str = "a body") -> ModelError:
    """The SDK could not decode what the server sent (``json.JSONDecodeError``, ``UnicodeDecodeError``, or a
    ``RecursionError`` from JSON nested too deeply to decode)."""
    if isinstance(err, json.JSONDecodeError):
        return ModelError(f"{where} sent {part} that is not JSON ({err.msg}); it starts: {excerpt(err.doc)}")
    if isinstance(err, RecursionError):
        return ModelError(f"{where} sent {part} of JSON nested too deeply to decode")
    sent = getattr(err, "object", b"")
    return ModelError(f"{where} sent {part} that is not UTF-8 text ({err}); it starts: {excerpt(sent)}")


def check_body(where: str, response: Any, answer_key: str) -> None:
    """A whole (non-streamed) answer must be a JSON object with a non-empty list of choices, each holding its
    ``answer_key`` (chat: ``message``, an object; completions: ``text``, a string or null).

    The SDK hands back the text itself when the content type is not JSON (an HTML error page sent with status 200),
    and builds an object from any JSON it gets, so both are checked here."""
    if isinstance(response, str):
        raise ModelError(
            f"{where} answered with a body that is not a JSON completion (an error page from a proxy? a wrong "
            f"base_url?); it starts: {excerpt(response)}"
        )
    if response is None or isinstance(response, (list, int, float, bool)):
        raise ModelError(f"{where} sent JSON that is not a completion object; it starts: {excerpt(response)}")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ModelError(
            f"{where} sent an answer without choices (choices: {choices!r:.40}): the server failed to generate; "
            f"check its logs. The answer starts: {excerpt(response)}"
        )
    for position, choice in enumerate(choices):
        answer = getattr(choice, answer_key, None)
        if answer_key == "text":  # a completion's text: a string (null read as "")
            wrong = answer is not None and not isinstance(answer, str)
        else:  # a chat message: an object
            wrong = answer is None or isinstance(answer, (str, bytes, list, int, float, bool))
        if wrong:
            raise ModelError(
                f"{where} sent choice #{position} with a {answer_key!r} of the wrong kind ({type(answer).__name__}); "
                f"the answer starts: {excerpt(response)}"
            )


async def check_event_stream(where: str, stream: Any) -> None:
    """A streamed request must be answered with an event stream: anything else (an HTML error page, a JSON body from
    a server that ignored ``stream``) is shown instead of being read as an empty stream."""
    response = getattr(stream, "response", None)
    if response is None:
        return
    content_type = str(response.headers.get("content-type", ""))
    if not content_type or "event-stream" in content_type:
        return
    body = await response.aread()
    raise ModelError(
        f"{where} answered a streamed request with {content_type} instead of an event stream (a proxy's error "
        f"page? a server that can't stream? then pass stream=False to gen); it starts: {excerpt(body)}"
    )


def check_finished(where: str, completion: Completion, received: int) -> None:
    """A stream that ends before any choice has a finish_reason was cut off (no ``data: [DONE]`` either)."""
    if any(choice.finish_reason for choice in completion.choices):
        return
    raise ModelError(
        f"{where} ended the stream after {received} characters without finishing any choice (no finish_reason): "
        f"the answer is incomplete; run again or check the server's logs"
    )


def check_calls(where: str, completion: Completion) -> None:
    """Every choice read must be text and tool calls of the right kinds: a name, an id and arguments that are strings
    (the readers pass on what the SDK built, and the SDK builds objects from any JSON)."""
    for position, choice in enumerate(completion.choices):
        if not isinstance(choice.text, str):
            raise ModelError(
                f"{where} sent choice #{position} with content of the wrong kind ({type(choice.text).__name__})"
            )
        for index, call in enumerate(choice.tool_calls):
            for field, value in (("name", call.name), ("id", call.id), ("arguments", call.arguments_json)):
                if not isinstance(value, str) or (field == "name" and not value):
                    raise ModelError(
                        f"{where} sent tool call #{index} of choice #{position} with a {field} of the wrong kind: "
                        f"{excerpt(value)}"
                    )


def unreadable(where: str, err: Exception, part: str, sent: Optional[Any] = None) -> ModelError:
    """A reader failed on data of the wrong shape (a string where an object belongs, a bad index ...)."""
    shown = f"; it starts: {excerpt(sent)}" if sent is not None else ""
    return ModelError(f"{where} sent {part} guidance_lite can't read ({type(err).__name__}: {err}){shown}")


__all__ = ["check_body", "check_calls", "check_event_stream", "check_finished", "excerpt", "not_json", "unreadable"]
