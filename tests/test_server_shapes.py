"""Response shapes as real servers send them (tests/data/server_shapes), replayed byte for byte through the real
``openai`` SDK into ``gl.models.OpenAI``: one request must give the expected completion, and a template tool loop
over the recorded turns must send follow-up requests a strict server accepts (unique ids, each call answered once,
the server's own ids kept where usable), running each tool exactly once per call.

Also the tool-call id mechanism on its own: duplicate ids in one message, ids reused across turns, empty ids, from a
server and from a Mock model, with side-effect counters proving each call ran once and got its own result.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import pytest
from helpers import assert_every_call_answered
from replay import FINAL_TEXT, LOOP_TEMPLATE, QUESTION, ReplayServer, load_shapes, strict_server_problems

import guidance_lite as gl
from guidance_lite.models.base import Completion, Delta, GenRequest

SHAPES = load_shapes()


class CountingTools:
    """Tools that accept any arguments and count each run (by tool name and arguments)."""

    def __init__(self, names: list[str]) -> None:
        self.runs: Counter = Counter()
        self._lock = threading.Lock()
        self.tools = [
            gl.Tool(name, self._runner(name), description=f"{name} (replay)", parameters={"type": "object"})
            for name in names
        ]

    def _runner(self, name: str) -> Any:
        def run(**arguments: Any) -> dict:
            with self._lock:
                self.runs[(name, json.dumps(arguments, sort_keys=True))] += 1
            return {"tool": name, "arguments": arguments}

        return run


def model_for(server: ReplayServer) -> Any:
    return gl.models.OpenAI("replay-model", base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=10)


async def one_request(model: Any, shape: dict) -> tuple[list[Delta], Completion]:
    request = GenRequest(
        messages_fn=lambda: [{"role": "user", "content": QUESTION}],
        tools=CountingTools(shape["offered_tools"]).tools or None,
        stream=shape["transport"] == "sse",
    )
    deltas: list[Delta] = []
    final = None
    try:
        async for item in model.stream(request):
            if isinstance(item, Completion):
                final = item
            else:
                deltas.append(item)
    finally:
        await model.aclose()
    assert final is not None
    return deltas, final


@pytest.mark.parametrize("shape", SHAPES, ids=[shape["id"] for shape in SHAPES])
def test_one_request_gives_the_expected_completion(shape: dict) -> None:
    expected = shape["expected"]
    with ReplayServer([shape["body"]]) as server:
        deltas, completion = asyncio.run(one_request(model_for(server), shape))
    (choice,) = completion.choices
    assert choice.text == expected["content"]
    assert [(c.name, c.arguments) for c in choice.tool_calls] == [
        (c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    for got, want in zip(choice.tool_calls, expected["tool_calls"]):
        if want["id"] is not None:
            assert got.id == want["id"]  # the server's own id, kept
    ids = [c.id for c in choice.tool_calls]
    assert all(ids) and len(set(ids)) == len(ids)
    assert choice.finish_reason == expected["finish_reason"]
    usage = completion.usage
    assert usage is not None
    if expected["usage"] is None:
        assert usage.estimated
    else:
        assert not usage.estimated
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
            expected["usage"]["prompt_tokens"],
            expected["usage"]["completion_tokens"],
            expected["usage"]["total_tokens"],
        )
    # what streamed agrees with the final answer: text, each call's header (final id and name), its arguments
    assert "".join(d.text for d in deltas if d.tool_index is None) == choice.text
    headers = [d for d in deltas if d.tool_id is not None]
    assert [(d.tool_id, d.tool_name) for d in headers] == [(c.id, c.name) for c in choice.tool_calls]
    for header, call in zip(headers, choice.tool_calls):
        assert "".join(d.tool_arguments for d in deltas if d.tool_index == header.tool_index) == call.arguments_json


@pytest.mark.parametrize("shape", SHAPES, ids=[shape["id"] for shape in SHAPES])
def test_a_template_tool_loop_sends_follow_ups_a_strict_server_accepts(shape: dict) -> None:
    expected = shape["expected"]
    has_calls = bool(expected["tool_calls"])
    bodies = [shape["body"], *shape["then"]] + ([FINAL_TEXT[shape["transport"]]] if has_calls else [])
    counting = CountingTools(shape["offered_tools"])
    program = gl.Program(LOOP_TEMPLATE, silent=True)
    with ReplayServer(bodies) as server:
        model = model_for(server)

        async def run() -> gl.Result:
            try:
                return await program.arun(
                    model=model,
                    question=QUESTION,
                    tools=counting.tools,
                    rounds=len(bodies),
                    streamed=shape["transport"] == "sse",
                )
            finally:
                await model.aclose()

        result = asyncio.run(run())
        requests = server.requests
    assert len(requests) == len(bodies)
    for request in requests[1:]:
        assert strict_server_problems(request["messages"]) == []
    assert_every_call_answered(result.messages)
    if not has_calls:
        assert result["answer"] == expected["content"]
        return
    sent = next(m for m in requests[1]["messages"] if m.get("tool_calls"))
    for call, want in zip(sent["tool_calls"], expected["tool_calls"]):
        assert json.loads(call["function"]["arguments"]) == want["arguments"]
        if want["id"] is not None:
            assert call["id"] == want["id"]
    # every call of every turn ran exactly once, and its result went back under its own id
    calls = [c for m in result.messages for c in m.get("tool_calls") or []]
    asked = Counter(
        (c["function"]["name"], json.dumps(json.loads(c["function"]["arguments"]), sort_keys=True)) for c in calls
    )
    assert counting.runs == asked and len(result.tool_calls) == len(calls)
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in result.messages if m["role"] == "tool"}
    for call in calls:
        assert results[call["id"]]["arguments"] == json.loads(call["function"]["arguments"])


# ---- the id mechanism on its own -----------------------------------------------------------------------------------
def weather_counter() -> tuple[Counter, Any]:
    runs: Counter = Counter()
    lock = threading.Lock()

    def get_weather(location: str) -> str:
        """Current weather."""
        with lock:
            runs[location] += 1
        return f"sunny in {location}"

    return runs, get_weather


def test_duplicate_ids_from_llamacpp_functionary_each_call_runs_once_with_its_own_result() -> None:
    runs, get_weather = weather_counter()
    program = gl.Program(LOOP_TEMPLATE, silent=True)
    with ReplayServer(["llamacpp_functionary_duplicate_ids.json", "openai_text.json"]) as server:
        model = model_for(server)
        result = program(model=model, question=QUESTION, tools=[get_weather], rounds=3, streamed=False)
        requests = server.requests
    assert runs == Counter({"Paris": 1, "Lyon": 1})
    follow_up = requests[1]["messages"]
    assert strict_server_problems(follow_up) == []
    (assistant,) = [m for m in follow_up if m.get("tool_calls")]
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert ids[0] == "get_weather" and ids[1] != "get_weather"  # the first keeps the server's id
    answers = [m for m in follow_up if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in answers] == [
        (ids[0], "sunny in Paris"),
        (ids[1], "sunny in Lyon"),
    ]  # bound by position
    assert [r.arguments for r in result.tool_calls] == [{"location": "Paris"}, {"location": "Lyon"}]


def mock_call(call_id: str, location: str) -> dict:
    return {"id": call_id, "name": "get_weather", "arguments": {"location": location}}


@pytest.mark.parametrize(
    "replies",
    [
        [{"tool_calls": [mock_call("dup", "Paris"), mock_call("dup", "Lyon")]}, "done"],  # duplicates in a message
        [{"tool_calls": [mock_call("0", "Paris")]}, {"tool_calls": [mock_call("0", "Lyon")]}, "done"],  # reused
        [{"tool_calls": [mock_call("", "Paris"), mock_call("", "Lyon")]}, "done"],  # empty
    ],
    ids=["duplicates-in-one-message", "reused-across-turns", "empty"],
)
@pytest.mark.parametrize("loop", ["explicit", "max_rounds"])
def test_a_mock_model_sending_bad_ids_still_gets_one_result_per_call(replies: list, loop: str) -> None:
    runs, get_weather = weather_counter()
    mock = gl.models.Mock(replies)
    template = (
        LOOP_TEMPLATE
        if loop == "explicit"
        else "{{#user}}{{question}}{{/user}}{{#assistant}}{{gen 'answer' tools=tools max_rounds=5}}{{/assistant}}"
    )
    result = gl.Program(template, model=mock, silent=True)(
        question=QUESTION, tools=[get_weather], rounds=5, streamed=True
    )
    assert runs == Counter({"Paris": 1, "Lyon": 1})
    assert result["answer"] == "done"
    assert_every_call_answered(result.messages)
    assert strict_server_problems(mock.requests[-1].messages) == []
    ids = [c["id"] for m in result.messages for c in m.get("tool_calls") or []]
    given = {c["id"] for reply in replies if isinstance(reply, dict) for c in reply["tool_calls"] if c["id"]}
    assert ids[0] in given or not given  # the model's first id is kept when it has one
    assert [r.id for r in result.tool_calls] == ids


def test_the_bookkeeping_invariant_still_holds_after_ids_are_made_unique() -> None:
    mock = gl.models.Mock([{"tool_calls": [mock_call("dup", "Paris"), mock_call("dup", "Lyon")]}, "never"])
    _, get_weather = weather_counter()
    template = (
        "{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}"
        "{{#function}}{{answer()}}{{/function}}{{#function}}{{answer()}}{{/function}}"
    )
    with pytest.raises(gl.TemplateRuntimeError, match="'dup' already has a result"):
        gl.Program(template, model=mock, silent=True)(tools=[get_weather])
