"""Model servers that misbehave and tools that do (issue 9, items 9 and 11-17): every case of
tests/security/cases_servers.py, through the real openai SDK against a ScriptedServer on 127.0.0.1.

A misbehaving server ends the run with a ModelError that names it and shows what it sent, within the configured
timeouts and size cap, with the API key nowhere in the exception chain; a misbehaving tool becomes a record the model
reads, and the run goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Optional

import openai as openai_sdk
import pytest
from helpers import collect
from security.cases_servers import CASES, NAMES

import guidance_lite as gl
from guidance_lite import tokens
from guidance_lite.models.base import Completion, GenRequest, ModelError
from guidance_lite.models.openai import OpenAI
from guidance_lite.models.openai.http import DEFAULT_MAX_RESPONSE_BYTES
from guidance_lite.models.timeouts import Timeout
from guidance_lite.testing import ScriptedServer

tool_dispatch = importlib.import_module("guidance_lite.tools.dispatch")  # the module (the package exports the function)

SECRET_KEY = "sk-test-5e4d3c2b1a0f9e8d7c6b"
GUARD_SECONDS = 30  # a test that would hang on a server without timeouts fails after this instead
COVERED: set[str] = set()


def case(*names: str) -> Callable:
    """Mark a test as the one for these cases of cases_servers.CASES."""

    def mark(test: Callable) -> Callable:
        COVERED.update(names)
        return test

    return mark


def chunk(delta: Optional[dict] = None, finish: Optional[str] = None, index: Any = 0) -> str:
    """One chat-completion SSE event, as servers write it."""
    event = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(event)}\n\n"


DONE = "data: [DONE]\n\n"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body>"


def user(stream: bool = True) -> GenRequest:
    return GenRequest(messages_fn=lambda: [{"role": "user", "content": "hi"}], stream=stream)


def model_for(server: ScriptedServer, **kwargs: Any) -> OpenAI:
    return OpenAI("scripted-model", base_url=server.base_url, **{"max_retries": 0, **kwargs})


async def failure(model: Any, request: GenRequest) -> ModelError:
    """The ModelError the request ends in (within GUARD_SECONDS)."""
    with pytest.raises(ModelError) as info:
        await asyncio.wait_for(collect(model, request), GUARD_SECONDS)
    return info.value


def test_every_case_has_a_test() -> None:
    assert len(NAMES) == len(set(NAMES))
    assert all(set(c) == {"name", "category", "what", "expect"} for c in CASES)
    assert set(NAMES) == COVERED | set(BAD_ANSWERS)


# ---- answers that are not answers ---------------------------------------------------------------------------------
# case name -> (reply, streamed request?, what the error says, the start of what the server sent as the error shows it)
BAD_ANSWERS: dict[str, tuple[dict, bool, str, str]] = {
    "no_choices": (
        {"raw_body": json.dumps({"id": "cmpl-1", "object": "chat.completion", "model": "m"})},
        False,
        "sent an answer without choices (choices: None)",
        "ChatCompletion(id='cmpl-1'",
    ),
    "choices_null": (
        {"raw_body": json.dumps({"id": "cmpl-2", "choices": None})},
        False,
        "sent an answer without choices (choices: None)",
        "id='cmpl-2'",
    ),
    "choices_empty": (
        {"raw_body": json.dumps({"id": "cmpl-3", "choices": []})},
        False,
        "sent an answer without choices (choices: [])",
        "id='cmpl-3'",
    ),
    "not_json": (
        {"raw_body": "upstream connect error or disconnect/reset before headers"},
        False,
        "sent a body that is not JSON",
        "'upstream connect error",
    ),
    "html_502_with_status_200": (
        {"raw_body": HTML_502, "content_type": "text/html"},
        False,
        "answered with a body that is not a JSON completion",
        "'<html><head><title>502 Bad Gateway",
    ),
    "json_not_an_object": ({"raw_body": "[1, 2]"}, False, "sent JSON that is not a completion object", "'[1, 2]'"),
    "not_utf8": ({"raw_body": b'{"choices": "\xff\xfe\xfd"}'}, False, "that is not UTF-8", '{"choices": "'),
    "message_of_wrong_type": (
        {"raw_body": json.dumps({"id": "c", "choices": [{"index": 0, "message": "hi", "finish_reason": "stop"}]})},
        False,
        "sent choice #0 with a 'message' of the wrong kind (str)",
        "message='hi'",
    ),
    "truncated_sse": (
        {"raw_stream": [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk()[:40]]},
        True,
        "ended the stream after 3 characters without finishing any choice",
        "",
    ),
    "stream_without_finish": (
        {"raw_stream": [chunk({"content": "Hello"}), DONE]},
        True,
        "ended the stream after 5 characters without finishing any choice",
        "",
    ),
    "garbage_sse_line": (
        {"raw_stream": [chunk({"content": "a"}), "data: {not json at all\n\n", DONE]},
        True,
        "sent a stream event that is not JSON",
        "'{not json at all'",
    ),
    "html_for_a_stream": (
        {"raw_body": HTML_502, "content_type": "text/html"},
        True,
        "answered a streamed request with text/html instead of an event stream",
        "'<html><head><title>502 Bad Gateway",
    ),
    "error_event_in_stream": (
        {"raw_stream": [chunk({"content": "a"}), 'data: {"error": {"message": "model overloaded"}}\n\n']},
        True,
        "reported an error: model overloaded",
        "",
    ),
    "choice_index_out_of_range": (
        {"raw_stream": [chunk({"content": "a"}, index=10**9), chunk(finish="stop"), DONE]},
        True,
        "choice index 1000000000 is outside the 1 choice(s) asked for",
        "ChatCompletionChunk(",
    ),
    "tool_call_fragment_of_wrong_type": (
        {"raw_stream": [chunk({"tool_calls": [{"index": "zero", "function": ["x"]}]}), chunk(finish="stop"), DONE]},
        True,
        "the server streamed tool call #zero without a function name",
        "",
    ),
}


@pytest.mark.parametrize("name", list(BAD_ANSWERS))
async def test_a_bad_answer_is_a_model_error_naming_the_server(scripted_server: ScriptedServer, name: str) -> None:
    reply, stream, says, shows = BAD_ANSWERS[name]
    scripted_server.push(reply)
    error = await failure(model_for(scripted_server), user(stream))
    message = str(error)
    assert says in message
    assert f"{scripted_server.base_url} (model 'scripted-model')" in message or scripted_server.base_url in message
    assert shows in message
    assert len(message) < 1000  # the start of the body, not all of it


async def test_a_bad_answer_fails_the_program_with_the_model_error(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"raw_body": json.dumps({"id": "x", "choices": None})})
    template = "{{#user}}hi{{/user}}{{#assistant}}{{gen 'a' stream=False}}{{/assistant}}"
    program = gl.Program(template, model=model_for(scripted_server))
    with pytest.raises(gl.TemplateRuntimeError, match="without choices") as info:
        program(silent=True)
    assert isinstance(info.value.__cause__, ModelError)


# ---- slow or silent servers ---------------------------------------------------------------------------------------
@case("never_answers")
async def test_a_server_that_never_answers_ends_at_the_read_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"hang": True}, {"hang": True}, {"hang": True})
    model = model_for(scripted_server, timeout=Timeout(connect=5, read=0.4, total=20), max_retries=2)
    start = time.monotonic()
    error = await failure(model, user())
    assert time.monotonic() - start < 20
    assert "sent nothing for 0.4s (the read timeout, 3 attempts)" in str(error)
    assert "Timeout(read=...)" in str(error)


async def test_a_program_on_a_silent_server_ends_within_its_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.script = lambda body: {"hang": True}
    model = model_for(scripted_server, timeout=1.5, max_retries=5)
    # stream=True: some cases break a stream (a silent run would otherwise ask for a plain answer)
    program = gl.Program(
        "{{#user}}hi{{/user}}{{#assistant}}{{gen 'a' stream=True}}{{/assistant}}", model=model, silent=True
    )
    start = time.monotonic()
    with pytest.raises(gl.TemplateRuntimeError, match=r"longer than its total timeout \(1.5s"):
        await asyncio.wait_for(program.arun(), GUARD_SECONDS)
    assert time.monotonic() - start < 1.5 + 2  # the total covers the SDK's retries


@case("stalls_mid_stream")
async def test_a_stream_that_stalls_ends_at_the_read_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "one two three four", "stall_after_chunks": 3})
    error = await failure(model_for(scripted_server, timeout=Timeout(read=0.4, total=20)), user())
    assert "sent nothing for 0.4s after 7 characters of the answer (the read timeout)" in str(error)


@case("trickles_forever")
async def test_a_stream_that_never_ends_stops_at_the_total_timeout(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "word " * 10_000, "chunk_delay": 0.05})
    received: list[str] = []
    start = time.monotonic()
    with pytest.raises(ModelError, match=r"took longer than its total timeout \(1s, retries and streaming included\)"):
        async for item in model_for(scripted_server, timeout=Timeout(read=5, total=1)).stream(user()):
            received.append(getattr(item, "text", ""))
    assert time.monotonic() - start < 1 + 2
    assert 0 < len(received) < 10_000  # it was streaming, and was stopped


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A listening port whose backlog is full: new connections are never accepted (SYNs are dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


@case("connection_never_accepted")
async def test_an_unreachable_server_ends_at_the_connect_timeout(unaccepting_port: int) -> None:
    model = OpenAI("m", base_url=f"http://127.0.0.1:{unaccepting_port}/v1", max_retries=0, timeout=Timeout(connect=0.4))
    error = await failure(model, user())
    assert "could not connect to" in str(error) and "within the connect timeout (0.4s)" in str(error)


@case("default_timeouts_are_finite")
async def test_default_timeouts_are_finite_and_reach_the_sdk(scripted_server: ScriptedServer) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url)
    assert model.timeout == Timeout(connect=10, read=120, total=600) == Timeout()
    assert model.transport.client().timeout == openai_sdk.Timeout(connect=10, read=120, write=120, pool=120)
    assert OpenAI("m", base_url=scripted_server.base_url, timeout=5).timeout == Timeout(5, 5, 5)
    unlimited = OpenAI("m", base_url=scripted_server.base_url, timeout=Timeout(total=math.inf))
    assert unlimited.transport.client().timeout.read == 120 and unlimited.timeout.total == math.inf
    completion = gl.models.OpenAICompletion("m", base_url=scripted_server.base_url, timeout=Timeout(read=30))
    assert completion.timeout.read == 30 and completion.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    with pytest.raises(ValueError, match="read= must be a positive number of seconds"):
        Timeout(read=0)
    with pytest.raises(TypeError, match="timeout= must be a number of seconds or gl.models.Timeout"):
        OpenAI("m", base_url=scripted_server.base_url, timeout="10")


# ---- size -----------------------------------------------------------------------------------------------------------
@case("body_over_the_cap")
async def test_a_body_over_the_cap_is_refused_before_it_is_read(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "word " * 20_000, "usage": False})
    error = await failure(model_for(scripted_server, max_response_bytes=50_000), user(stream=False))
    assert "larger than max_response_bytes=50000 (it announced a larger body)" in str(error)
    assert "pass a larger max_response_bytes=" in str(error)


@case("stream_over_the_cap")
async def test_a_stream_over_the_cap_stops_when_it_passes_it(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "word " * 20_000, "chunk_size": 100, "usage": False})
    received: list[str] = []
    with pytest.raises(ModelError, match=r"larger than max_response_bytes=50000 \(it sent 5\d{4} bytes\)"):
        async for item in model_for(scripted_server, max_response_bytes=50_000).stream(user()):
            received.append(getattr(item, "text", ""))
    assert 0 < len("".join(received)) < 50_000


@case("one_huge_sse_line")
async def test_one_huge_sse_line_is_never_held_whole(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"raw_stream": ["data: " + "x" * 10_000] * 30})
    error = await failure(model_for(scripted_server, max_response_bytes=50_000), user())
    assert "larger than max_response_bytes=50000" in str(error)


@case("long_answer_without_usage")
async def test_usage_of_a_long_answer_is_estimated_from_its_length(
    scripted_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encoding = tokens.get_encoding

    class ShortTextsOnly:
        def __init__(self, model: Optional[str]) -> None:
            self.encoding = real_encoding(model)

        def encode(self, text: str, **kwargs: Any) -> list[int]:
            assert len(text) <= tokens.EXACT_COUNT_LIMIT, "a long text was tokenized"
            return self.encoding.encode(text, **kwargs)

    monkeypatch.setattr(tokens, "get_encoding", ShortTextsOnly)
    content = "lorem ipsum dolor sit amet " * 10_000  # 270,000 characters
    for stream in (False, True):
        scripted_server.push({"content": content, "usage": False, "chunk_size": 5_000})
        _, final = await collect(model_for(scripted_server), user(stream))
        assert final.choices[0].text == content
        assert final.usage is not None and final.usage.estimated
        assert final.usage.completion_tokens == math.ceil(len(content) / tokens.CHARS_PER_TOKEN)


# ---- secrets --------------------------------------------------------------------------------------------------------
def exceptions_in(err: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    pending: list[Optional[BaseException]] = [err]
    while pending:
        exc = pending.pop()
        if exc is not None and not any(exc is seen for seen in found):
            found.append(exc)
            pending += [exc.__cause__, exc.__context__]
    return found


def assert_key_nowhere(err: BaseException) -> None:
    """The key is in no traceback line, no attribute of any exception in the chain, no header they carry."""
    assert SECRET_KEY not in "".join(traceback.format_exception(err))
    for exc in exceptions_in(err):
        assert SECRET_KEY not in repr(exc.args)
        for name, value in vars(exc).items():
            assert SECRET_KEY not in repr(value), f"{type(exc).__name__}.{name}"
            for holder in (value, vars(value).get("_request") if hasattr(value, "__dict__") else None):
                headers = getattr(holder, "headers", None)
                if headers is not None:
                    assert SECRET_KEY not in repr(list(headers.items())), f"headers of {type(exc).__name__}.{name}"


def run_failing_program(server: ScriptedServer) -> gl.TemplateRuntimeError:
    model = model_for(server, api_key=SECRET_KEY)
    # stream=True: some cases break a stream (a silent run would otherwise ask for a plain answer)
    program = gl.Program(
        "{{#user}}hi{{/user}}{{#assistant}}{{gen 'a' stream=True}}{{/assistant}}", model=model, silent=True
    )
    with pytest.raises(gl.TemplateRuntimeError) as info:
        program()
    return info.value


@case("key_echoed_in_error")
def test_a_key_echoed_in_an_error_is_nowhere_in_the_chain(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"status": 401, "error_message": f"Incorrect API key provided: {SECRET_KEY}."})
    error = run_failing_program(scripted_server)
    assert any(isinstance(exc, openai_sdk.AuthenticationError) for exc in exceptions_in(error))  # chained, scrubbed
    assert "rejected the API key (401)" in str(error) and "Incorrect API key provided: ***" in str(error)
    assert_key_nowhere(error)


@case("key_echoed_in_body")
def test_a_key_quoted_in_a_bad_body_is_scrubbed(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"raw_body": f"<html>bad key {SECRET_KEY}</html>", "content_type": "text/html"})
    error = run_failing_program(scripted_server)
    assert "'<html>bad key ***</html>'" in str(error)
    assert_key_nowhere(error)


@case("key_in_chained_request")
def test_the_requests_kept_by_chained_errors_lose_their_authorization(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "partial answer here", "drop_after_chunks": 3})
    error = run_failing_program(scripted_server)
    assert "closed the stream after" in str(error)
    requests = [vars(exc).get("request") for exc in exceptions_in(error)]
    assert any(request is not None and request.headers.get("authorization") == "***" for request in requests)
    assert_key_nowhere(error)


# ---- tools ----------------------------------------------------------------------------------------------------------
TOOL_LOOP = "{{#user}}go{{/user}}{{#assistant}}{{gen 'answer' tools=tools max_rounds=2}}{{/assistant}}"


def calling(name: str, arguments: Any) -> gl.models.Mock:
    return gl.models.Mock([{"tool_calls": [{"name": name, "arguments": arguments}]}, "done"])


def nap(seconds: float = 3600.0) -> str:
    """Sleeps (a tool that hangs)."""
    time.sleep(seconds)
    return "rested"


async def async_nap(seconds: float = 3600.0) -> str:
    """Sleeps without a thread."""
    await asyncio.sleep(seconds)
    return "rested"


@case("tool_sleeps_an_hour")
@pytest.mark.parametrize("tool", [nap, async_nap], ids=["sync", "async"])
def test_a_tool_that_sleeps_an_hour_times_out_by_default(monkeypatch: pytest.MonkeyPatch, tool: Callable) -> None:
    assert tool_dispatch.DEFAULT_TOOL_TIMEOUT == 120  # documented in the README
    monkeypatch.setattr(tool_dispatch, "DEFAULT_TOOL_TIMEOUT", 0.3)
    program = gl.Program(TOOL_LOOP, model=calling(tool.__name__, {}), silent=True)
    result = program(tools=[tool])
    (record,) = result.tool_calls
    assert record.error_type == "timeout"
    assert record.error == "timed out after 0.3s (the default tool_timeout; pass tool_timeout=seconds to allow more)"
    assert result["answer"] == "done"  # the model read the timeout and the run went on


def test_tool_timeout_of_the_program_and_the_gen_override_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool_dispatch, "DEFAULT_TOOL_TIMEOUT", 3600.0)
    result = gl.Program(TOOL_LOOP, model=calling("async_nap", {}), silent=True, tool_timeout=0.2)(tools=[async_nap])
    assert [r.error for r in result.tool_calls] == ["timed out after 0.2s"]
    per_gen = TOOL_LOOP.replace("max_rounds=2", "max_rounds=2 tool_timeout=0.1")
    result = gl.Program(per_gen, model=calling("async_nap", {}), silent=True, tool_timeout=0.2)(tools=[async_nap])
    assert [r.error for r in result.tool_calls] == ["timed out after 0.1s"]
    fast = gl.Program(TOOL_LOOP, model=calling("async_nap", {"seconds": 0.01}), silent=True, tool_timeout=math.inf)
    assert [r.result for r in fast(tools=[async_nap]).tool_calls] == ["rested"]


def echo(x: Any = None) -> str:
    """Returns what it got."""
    return "got it"


@case("deeply_nested_arguments")
@pytest.mark.parametrize(
    "arguments",
    ["[" * 100_000, '{"x": ' * 500 + "1" + "}" * 500, '{"x": ' + "[" * 101 + "]" * 101 + "}"],
    ids=["100000-unclosed-brackets", "500-nested-objects", "101-nested-lists"],
)
def test_deeply_nested_arguments_are_an_invalid_json_record(arguments: str) -> None:
    result = gl.Program(TOOL_LOOP, model=calling("echo", arguments), silent=True)(tools=[echo])
    (record,) = result.tool_calls
    assert record.error_type == "invalid_json"
    assert "nest deeper than 100 levels" in record.error
    assert result["answer"] == "done" and "<tool_call" in result.text


def test_arguments_nested_100_deep_still_run() -> None:
    arguments = '{"x": ' + "[" * 99 + "]" * 99 + "}"
    result = gl.Program(TOOL_LOOP, model=calling("echo", arguments), silent=True)(tools=[echo])
    assert [r.result for r in result.tool_calls] == ["got it"]


def readings() -> dict:
    """Sensor readings, some missing."""
    return {"temperature": float("nan"), "range": [float("-inf"), float("inf")], "humidity": 0.5}


@case("nan_in_tool_result")
def test_nan_and_infinity_in_a_tool_result_become_null_in_valid_json() -> None:
    result = gl.Program(TOOL_LOOP, model=calling("readings", {}), silent=True)(tools=[readings])
    (message,) = [m for m in result.messages if m["role"] == "tool"]

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    assert json.loads(message["content"], parse_constant=refuse) == {
        "temperature": None,
        "range": [None, None],
        "humidity": 0.5,
    }
    assert math.isnan(result.tool_calls[0].result["temperature"])  # the record keeps what the tool returned


def test_a_completion_from_the_reference_shapes_still_reads(scripted_server: ScriptedServer) -> None:
    """The checks refuse broken answers only: a real OpenAI body and stream read as before."""
    from pathlib import Path

    shapes = Path(__file__).parent / "data" / "server_shapes"
    expected = json.loads((shapes / "openai_parallel_tools_stream.expected.json").read_text())["expected"]
    scripted_server.push(
        {"raw_body": (shapes / "openai_text.json").read_text()},
        {"raw_stream": [(shapes / "openai_parallel_tools_stream.sse").read_text()]},
    )
    model = model_for(scripted_server)
    _, plain = asyncio.run(collect(model, user(stream=False)))
    _, streamed = asyncio.run(collect(model, user()))
    assert isinstance(plain, Completion) and plain.choices[0].text.startswith("I'm unable to provide")
    assert [call.name for call in streamed.choices[0].tool_calls] == [call["name"] for call in expected["tool_calls"]]
