"""Whole programs on the real SmolLM2-135M model, through three backends: in-process ``LlamaCpp()``, and
``python -m llama_cpp.server`` on 127.0.0.1 driven by ``gl.models.OpenAI`` (chat) and ``gl.models.OpenAICompletion``
(legacy completions with a client-side chat template and tool format).

Every test runs a template with role blocks and checks structure — variables set, message shapes, valid and
answered tool calls, termination, events — never the small model's wording. Decoding is greedy (gen's temperature
0), so each run sees the same output. The prompts are written so that a 135M model can follow them (the system
prompt shows one call); what is asserted is what the library promises, whatever the model writes.

What each request carried is recorded by wrapping the backend's ``stream``, and what the model actually received is
read back from the backend (the rendered prompt tokens, or the exact JSON body sent to the server).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from helpers import assert_every_call_answered

import guidance_lite as gl
from guidance_lite import events as ev
from guidance_lite.models.base import GenRequest, Model
from guidance_lite.models.llamacpp import LlamaCpp
from guidance_lite.runner import run_sync
from guidance_lite.tools import make_tool

pytestmark = pytest.mark.local_model

BACKENDS = ("local", "server-chat", "server-completion")

INSTRUCTIONS = 'You call tools. Example: {"name": "get_weather", "arguments": {"city": "London"}}'
QUESTION = "Weather in Paris? Call get_weather with city Paris."


# ---- tools ----------------------------------------------------------------------------------------------------
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21, "sky": "sunny"}


def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


@gl.tool("get_weather")
def broken_weather(city: str) -> dict:
    """Current weather for a city."""
    raise ConnectionError("the weather service is down")


SCHEMAS = {"get_weather": make_tool(get_weather).parameters, "get_time": make_tool(get_time).parameters}


# ---- backends -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_url(llama_server_url: str) -> str:
    """The session's shared llama_cpp.server (tests/conftest.py)."""
    return llama_server_url


@pytest.fixture(scope="module")
def local_model() -> Iterator[LlamaCpp]:
    local = LlamaCpp()
    local.load()
    yield local
    local.close()


@dataclass
class Backend:
    """A model under test and the requests it was given (in order)."""

    name: str
    model: Model
    requests: list[GenRequest] = field(default_factory=list)

    def run(self, template: str, **variables: Any) -> gl.Result:
        return gl.Program(template, model=self.model, silent=True)(**variables)

    def stream(self, template: str, **variables: Any) -> tuple[list[ev.Event], gl.Result]:
        """Run through ``program.stream``: every event, and the result the last event carries."""
        events = list(gl.Program(template, model=self.model, silent=True).stream(**variables))
        assert events and isinstance(events[-1], ev.Finished), events[-1:]
        assert sum(isinstance(e, ev.Finished) for e in events) == 1
        return events, events[-1].result

    def sent_text(self, request: GenRequest) -> str:
        """What reached the model for ``request``: the prompt tokens as text, or the JSON body sent over HTTP."""
        if isinstance(self.model, LlamaCpp):
            return (
                self.model.load()
                .detokenize(self.model.encode_request(request), special=True)
                .decode("utf-8", "replace")
            )
        return json.dumps(self.model.request_body(request), ensure_ascii=False)  # type: ignore[attr-defined]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    name = request.param
    if name == "local":
        model: Model = request.getfixturevalue("local_model")
    else:
        url = request.getfixturevalue("server_url")
        model = (
            gl.models.OpenAI("smollm2", base_url=url)
            if name == "server-chat"
            else gl.models.OpenAICompletion(
                "smollm2", base_url=url, chat_template="chatml", tool_format="hermes", constrain="llama.cpp"
            )
        )
    under_test = Backend(name, model)
    original = model.stream

    async def recording_stream(gen_request: GenRequest) -> AsyncIterator[Any]:
        under_test.requests.append(gen_request)
        async with contextlib.aclosing(original(gen_request)) as items:
            async for item in items:
                yield item

    monkeypatch.setattr(model, "stream", recording_stream)
    yield under_test
    if name != "local":
        run_sync(model.aclose())  # the client lives on the background loop that ran the programs


# ---- checks ---------------------------------------------------------------------------------------------------
def roles(result: gl.Result) -> list[str]:
    return [m["role"] for m in result.messages]


def assert_valid_call(call: Any, names: tuple[str, ...] = ("get_weather",)) -> None:
    assert call.name in names, call
    assert call.id
    jsonschema.validate(call.arguments, SCHEMAS[call.name])


def text_of(events: list[ev.Event], variable: str) -> str:
    return "".join(e.text for e in events if isinstance(e, ev.TextDelta) and e.variable == variable)


def model_said(answer: Any) -> str:
    return f"the model answered {answer!r} instead of calling a tool"


# ---- 1. plain gen ---------------------------------------------------------------------------------------------
PLAIN = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}What is the capital of France?{{~/user}}
{{#assistant~}}{{gen 'answer' max_tokens=16 stream=False}}{{~/assistant}}"""


def test_plain_gen_sets_the_variable_and_counts_usage(backend: Backend) -> None:
    result = backend.run(PLAIN)
    answer = result["answer"]
    assert isinstance(answer, str) and answer.strip()
    assert result.messages == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": answer},
    ]
    usage = result.usage
    assert not usage.estimated  # llama.cpp counts, and the server reports usage for unstreamed replies
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (request,) = backend.requests
    assert request.max_tokens == 16 and request.stream is False


# ---- 2. streamed gen ------------------------------------------------------------------------------------------
STREAMED = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}Name three colours.{{~/user}}
{{#assistant~}}{{gen 'answer' max_tokens=24}}{{~/assistant}}"""


def test_streamed_gen_deltas_concatenate_to_the_variable(backend: Backend) -> None:
    events, result = backend.stream(STREAMED)
    answer = result["answer"]
    assert isinstance(answer, str) and answer.strip()
    deltas = [e for e in events if isinstance(e, ev.TextDelta) and e.variable == "answer"]
    assert len(deltas) > 1  # really streamed, not one piece at the end
    assert text_of(events, "answer") == answer
    last_delta = max(i for i, e in enumerate(events) if isinstance(e, ev.TextDelta))
    (set_at,) = [i for i, e in enumerate(events) if isinstance(e, ev.VariableSet) and e.name == "answer"]
    (added_at,) = [
        i for i, e in enumerate(events) if isinstance(e, ev.MessageAdded) and e.message["role"] == "assistant"
    ]
    assert last_delta < set_at < added_at
    assert events[set_at].value == answer and events[added_at].message == {"role": "assistant", "content": answer}
    assert result.usage.completion_tokens > 0


# ---- 3. forced tool call, explicit loop -----------------------------------------------------------------------
FORCED_CALL = """{{#system~}}{{instructions}}{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}
{{gen 'answer' tools=tools tool_choice=choice parallel_tool_calls=parallel max_tokens=60}}
{{~/assistant}}
{{#if callable(answer)~}}
  {{#function~}}{{answer()}}{{~/function}}
  {{#assistant~}}{{gen 'reply' max_tokens=24}}{{~/assistant}}
{{~/if}}"""


@pytest.mark.parametrize("choice", ["get_weather", "required"])
def test_forced_tool_call_explicit_loop(backend: Backend, choice: str) -> None:
    events, result = backend.stream(
        FORCED_CALL, instructions=INSTRUCTIONS, question=QUESTION, tools=[get_weather], choice=choice, parallel=None
    )
    answer = result["answer"]
    assert callable(answer), model_said(answer)
    (call,) = answer.tool_calls
    assert_valid_call(call)
    assert answer.function_name == "get_weather"

    reply = result["reply"]
    assert isinstance(reply, str) and reply.strip()
    assert roles(result) == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[2]["tool_calls"] == [call.to_openai()]
    tool_message = result.messages[3]
    assert tool_message["tool_call_id"] == call.id
    assert json.loads(tool_message["content"]) == get_weather(**call.arguments)
    assert result.messages[4] == {"role": "assistant", "content": reply}

    (record,) = result.tool_calls
    assert record.error is None and record.id == call.id and record.variable == "answer"
    assert record.result == get_weather(**call.arguments)

    # the follow-up request carried the tool's result to the model
    first, follow_up = backend.requests
    assert first.tool_choice == choice
    assert tool_message in follow_up.messages
    assert "sunny" in backend.sent_text(follow_up)

    # streaming events: the call (in fragments, then whole), its result, then the reply's text
    fragments = [e for e in events if isinstance(e, ev.ToolCallDelta)]
    assert fragments and all(e.index == 0 and e.variable == "answer" for e in fragments)
    assert "".join(e.arguments_delta for e in fragments) == call.arguments_json
    ready = [e for e in events if isinstance(e, ev.ToolCallReady)]
    assert [(e.call.id, e.variable) for e in ready] == [(call.id, "answer")]
    results = [e for e in events if isinstance(e, ev.ToolResult)]
    assert [e.record.id for e in results] == [call.id]
    assert events.index(ready[0]) < events.index(results[0])
    assert text_of(events, "reply") == reply


# ---- 4. automatic loop ----------------------------------------------------------------------------------------
AUTO_LOOP = """{{#system~}}{{instructions}}{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}
{{gen 'answer' tools=[get_weather] tool_choice='required' max_rounds=2 max_tokens=60}}
{{~/assistant}}"""


def test_automatic_loop_terminates_with_a_text_answer(backend: Backend) -> None:
    result = backend.run(AUTO_LOOP, instructions=INSTRUCTIONS, question=QUESTION, get_weather=get_weather)
    answer = result["answer"]
    assert isinstance(answer, str)
    assert_every_call_answered(result.messages)
    assert result.messages[-1] == {"role": "assistant", "content": answer}  # ends in text, no calls pending

    requests = backend.requests
    calling_turns = [m for m in result.messages if m.get("tool_calls")]
    assert 2 <= len(requests) <= 3  # the forced first round always calls
    assert len(calling_turns) == len(requests) - 1  # every round but the last asked for calls
    for call in (c for m in calling_turns for c in m["tool_calls"]):
        jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMAS["get_weather"])
    # a forced choice forces the first round only; then the model may answer in text (issue 13, item 11)
    assert [r.tool_choice for r in requests[:-1]] == ["required"] + ["auto"] * (len(requests) - 2)
    if len(requests) == 3:
        assert requests[-1].tool_choice == "none"
    assert [r.id for r in result.tool_calls] == [c["id"] for m in calling_turns for c in m["tool_calls"]]
    assert all(r.error is None for r in result.tool_calls)


# ---- 5. select ------------------------------------------------------------------------------------------------
SELECT = """{{#user~}}Is the sky blue? Answer yes or no.{{~/user}}
{{#assistant~}}{{select 'x' options=['yes', 'no']}}{{~/assistant}}"""


def test_select_picks_one_of_the_options(backend: Backend) -> None:
    result = backend.run(SELECT)
    assert result["x"] in ("yes", "no")
    assert result.messages[-1] == {"role": "assistant", "content": result["x"]}
    (request,) = backend.requests
    assert request.options == ["yes", "no"]


# ---- 6. error feedback ----------------------------------------------------------------------------------------
def test_a_failing_tool_is_reported_to_the_model_and_the_program_continues(backend: Backend) -> None:
    result = backend.run(
        FORCED_CALL,
        instructions=INSTRUCTIONS,
        question=QUESTION,
        tools=[broken_weather],
        choice="get_weather",
        parallel=None,
    )
    answer = result["answer"]
    assert callable(answer), model_said(answer)
    (call,) = answer.tool_calls
    (record,) = result.tool_calls
    assert record.id == call.id and record.result is None
    assert record.error is not None and "the weather service is down" in record.error
    assert roles(result) == ["system", "user", "assistant", "tool", "assistant"]
    tool_message = result.messages[3]
    assert tool_message["tool_call_id"] == call.id and "the weather service is down" in tool_message["content"]
    reply = result["reply"]
    assert isinstance(reply, str) and result.messages[4] == {"role": "assistant", "content": reply}
    follow_up = backend.requests[-1]
    assert tool_message in follow_up.messages
    assert "the weather service is down" in backend.sent_text(follow_up)


# ---- 7. parallel dispatch -------------------------------------------------------------------------------------
TOOL_SECONDS = 0.4


def test_parallel_calls_run_concurrently(backend: Backend) -> None:
    """Two tools offered with parallel_tool_calls=True. The local model is asked for any calls ('required', which
    its grammar lets repeat) and makes two; llama.cpp's server forces only a named call and returns one, so there
    the structure of whatever was produced is checked."""
    spans: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def timed(fn: Any) -> Any:
        def run(city: str) -> Any:
            started = time.perf_counter()
            time.sleep(TOOL_SECONDS)
            with lock:
                spans.append((fn.__name__, started, time.perf_counter()))
            return fn(city)

        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        return run

    choice = "required" if backend.name == "local" else "get_weather"
    result = backend.run(
        FORCED_CALL,
        instructions=INSTRUCTIONS,
        question=QUESTION,
        choice=choice,
        parallel=True,
        tools=[timed(get_weather), timed(get_time)],
    )
    answer = result["answer"]
    assert callable(answer), model_said(answer)
    calls = answer.tool_calls
    for call in calls:
        assert_valid_call(call, ("get_weather", "get_time"))
    assert len({c.id for c in calls}) == len(calls)
    assert backend.requests[0].parallel_tool_calls is True
    if backend.name == "server-chat":
        assert json.loads(backend.sent_text(backend.requests[0]))["parallel_tool_calls"] is True

    assert roles(result) == ["system", "user", "assistant"] + ["tool"] * len(calls) + ["assistant"]
    assert_every_call_answered(result.messages)
    assert [r.id for r in result.tool_calls] == [c.id for c in calls]
    assert all(r.error is None for r in result.tool_calls)
    assert len(spans) == len(calls)
    if backend.name == "local":
        assert len(calls) >= 2
    if len(calls) >= 2:  # every call was running before any finished
        assert max(start for _, start, _ in spans) < min(end for _, _, end in spans)
