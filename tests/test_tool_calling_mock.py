"""Tool calling through the interpreter with the Mock model (no HTTP): the main flows of the tool-calling spec, fast.

The HTTP versions (real ``openai`` SDK against ScriptedServer) are in test_tool_calling_http.py; here the recorded
``GenRequest`` objects show what the interpreter asked the backend for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Literal

import pytest
from helpers import AUTO_LOOP, EXPLICIT_LOOP, Overlap

import guidance_lite as gl
from guidance_lite import events as ev

QUESTION = "Weather and time in Paris?"
STYLES = {"explicit": EXPLICIT_LOOP, "auto": AUTO_LOOP}


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


async def get_time(zone: str) -> str:
    """The local time in a time zone."""
    await asyncio.sleep(0)
    return f"12:00 {zone}"


TOOLS = [get_weather, get_time]


def calls(*items: tuple[str, str, dict], content: str = "") -> dict:
    return {"content": content, "tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in items]}


def run(template: str, replies: list, **kwargs: Any) -> tuple[gl.Result, Any]:
    mock = gl.models.Mock(replies)
    options = {k: kwargs.pop(k) for k in ("on_tool_call", "tool_errors", "tool_timeout") if k in kwargs}
    return gl.Program(template, model=mock, silent=True, **options)(**kwargs), mock


def roles(messages: list[dict]) -> list[str]:
    return [m["role"] for m in messages]


# ---- the answer object ---------------------------------------------------------------------------------------
def test_answer_object_for_one_call() -> None:
    reply = calls(("call_1", "get_weather", '{"city":"Paris"}'), content="Let me look.")
    template = (
        "{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}"
        "{{#user}}{{#if callable(answer)}}{{answer.function_name}}|{{answer}}|"
        "{{answer.tool_calls[0].arguments.city}}{{/if}}{{/user}}"
    )
    r, _ = run(template, [reply], tools=TOOLS)
    answer = r["answer"]
    assert callable(answer) and answer.function_name == answer.__name__ == "get_weather"
    assert answer.content == str(answer) == "Let me look."
    (tool_call,) = answer.tool_calls
    assert (tool_call.id, tool_call.name, tool_call.arguments, tool_call.arguments_json) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
        '{"city":"Paris"}',
    )
    assert r.messages[-1]["content"] == "get_weather|Let me look.|Paris"
    assert r.messages[1] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    }


def test_text_answer_is_not_callable() -> None:
    r, _ = run(EXPLICIT_LOOP, ["Just text."], question=QUESTION, tools=TOOLS)
    assert r["answer"] == "Just text." and not callable(r["answer"])
    assert roles(r.messages) == ["system", "user", "assistant"] and r.tool_calls == []


def test_function_name_of_several_calls_names_them() -> None:
    reply = calls(("a", "get_weather", '{"city":"Paris"}'), ("b", "get_time", '{"zone":"CET"}'))
    r, _ = run("{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}", [reply], tools=TOOLS)
    with pytest.raises(AttributeError, match=r"2 tool calls \(get_weather, get_time\).*answer.tool_calls"):
        r["answer"].function_name


def test_answer_call_with_overrides() -> None:
    reply = calls(("a", "get_weather", '{"city":"Paris"}'))
    template = (
        "{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}"
        "{{#function}}{{answer(unit='fahrenheit')}}{{/function}}{{#assistant}}{{gen 'final'}}{{/assistant}}"
    )
    r, mock = run(template, [reply, "70 F"], tools=TOOLS)
    assert r.tool_calls[0].arguments == {"city": "Paris", "unit": "fahrenheit"}
    assert r.tool_calls[0].result["temperature"] == 70
    assert mock.requests[1].messages[-1] == {
        "role": "tool",
        "tool_call_id": "a",
        "content": json.dumps(r.tool_calls[0].result),
    }


# ---- both loops ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", sorted(STYLES))
def test_loops_run_parallel_calls_then_answer(style: str) -> None:
    replies = [
        calls(("w", "get_weather", '{"city":"Paris"}'), ("t", "get_time", '{"zone":"CET"}')),
        calls(("w2", "get_weather", '{"city":"Lyon","unit":"fahrenheit"}'), content="Lyon too."),
        "Paris 21 C, Lyon 70 F, noon.",
    ]
    r, mock = run(STYLES[style], replies, question=QUESTION, tools=TOOLS)
    assert r["answer"] == "Paris 21 C, Lyon 70 F, noon."
    assert roles(r.messages) == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    assert [m.get("tool_call_id") for m in r.messages if m["role"] == "tool"] == ["w", "t", "w2"]
    assert [m["content"] for m in r.messages if m["role"] == "tool"] == [
        json.dumps({"city": "Paris", "temperature": 21, "unit": "celsius"}),
        "12:00 CET",
        json.dumps({"city": "Lyon", "temperature": 70, "unit": "fahrenheit"}),
    ]
    assert r.messages[5]["content"] == "Lyon too."
    assert [len(req.messages) for req in mock.requests] == [2, 5, 7]
    assert all(req.messages == r.messages[: len(req.messages)] for req in mock.requests)
    assert all(
        req.tool_choice == "auto" and [t.name for t in req.tools] == ["get_weather", "get_time"]
        for req in mock.requests
    )
    assert [(t.id, t.name, t.error, t.variable) for t in r.tool_calls] == [
        ("w", "get_weather", None, "answer"),
        ("t", "get_time", None, "answer"),
        ("w2", "get_weather", None, "answer"),
    ]
    assert (
        "12:00 CET" in r.text
        and "Lyon too." in r.text
        and r.text.rstrip().endswith("Paris 21 C, Lyon 70 F, noon.<|im_end|>")
    )


def test_auto_loop_last_round_uses_tool_choice_none() -> None:
    r, mock = run(
        AUTO_LOOP.replace("max_rounds=5", "max_rounds=2"),
        [
            calls(("x1", "get_time", '{"zone":"UTC"}')),
            calls(("x2", "get_time", '{"zone":"UTC"}')),
            {"content": "final", "tool_calls": [{"name": "get_time", "arguments": {}}]},
        ],
        question=QUESTION,
        tools=TOOLS,
    )
    assert [req.tool_choice for req in mock.requests] == ["auto", "auto", "none"]
    assert r["answer"] == "final" and len(r.tool_calls) == 2


def test_auto_loop_with_max_rounds_zero_asks_once_without_tools() -> None:
    r, mock = run(AUTO_LOOP.replace("max_rounds=5", "max_rounds=0"), ["direct"], question=QUESTION, tools=TOOLS)
    assert [req.tool_choice for req in mock.requests] == ["none"] and r["answer"] == "direct"


def test_function_block_text_answers_the_next_unanswered_call() -> None:
    reply = calls(("a", "get_weather", '{"city":"Paris"}'), ("b", "get_time", '{"zone":"CET"}'))
    template = (
        "{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}"
        "{{#function}}sunny{{/function}}{{#function}}noon{{/function}}{{#assistant}}{{gen 'f'}}{{/assistant}}"
    )
    _r, mock = run(template, [reply, "ok"], tools=TOOLS)
    assert mock.requests[1].messages[2:] == [
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "noon"},
    ]


def test_unanswered_call_fails_before_the_request() -> None:
    reply = calls(("a", "get_weather", '{"city":"Paris"}'), ("b", "get_time", '{"zone":"CET"}'))
    template = (
        "{{#user}}q{{/user}}{{#assistant}}{{gen 'answer' tools=tools}}{{/assistant}}"
        "{{#function}}sunny{{/function}}{{#assistant}}{{gen 'f'}}{{/assistant}}"
    )
    mock = gl.models.Mock([reply, "never"])
    with pytest.raises(gl.TemplateRuntimeError, match="'b' have no result"):
        gl.Program(template, model=mock, silent=True)(tools=TOOLS)
    assert len(mock.requests) == 1


# ---- faults --------------------------------------------------------------------------------------------------
def _broken(city: str) -> str:
    raise ValueError(f"no data for {city}")


class _Stuck:
    """Blocks until released (at most 5 s), so a timed-out call does not outlive its test for long."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, city: str) -> str:
        self.release.wait(5)
        return "late"


FAULTS = {
    "unknown_tool": ("rm_rf", '{"path":"/"}', get_weather, "unknown tool 'rm_rf'"),
    "invalid_json": ("get_weather", '{"city": ', get_weather, "not valid JSON"),
    "invalid_arguments": (
        "get_weather",
        '{"city": "Paris", "unit": "kelvin"}',
        get_weather,
        "invalid arguments for tool 'get_weather'",
    ),
    "exception": ("get_weather", '{"city": "Paris"}', _broken, "ValueError: no data for Paris"),
    "timeout": ("get_weather", '{"city": "Paris"}', None, "timed out after 0.1s"),
}


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_faults_are_tool_results(fault: str, style: str) -> None:
    name, arguments, implementation, told = FAULTS[fault]
    stuck = _Stuck()
    tool = gl.Tool("get_weather", implementation or stuck)
    try:
        r, mock = run(
            STYLES[style],
            [calls(("bad", name, arguments)), "recovered"],
            question=QUESTION,
            tools=[tool],
            tool_timeout=0.1,
        )
    finally:
        stuck.release.set()
    (record,) = r.tool_calls
    assert record.error_type == fault and told in record.error and record.arguments_json == arguments
    assert mock.requests[1].messages[-1]["tool_call_id"] == "bad"
    assert told in mock.requests[1].messages[-1]["content"]
    assert r["answer"] == "recovered"


def test_tool_timeout_as_a_gen_argument() -> None:
    stuck = _Stuck()
    template = AUTO_LOOP.replace("max_rounds=5", "max_rounds=5 tool_timeout=0.05")
    try:
        r, _ = run(
            template,
            [calls(("s", "get_weather", '{"city":"Paris"}')), "ok"],
            question=QUESTION,
            tools=[gl.Tool("get_weather", stuck)],
            tool_timeout=10,
        )
    finally:
        stuck.release.set()
    assert [t.error for t in r.tool_calls] == ["timed out after 0.05s"]


def test_gen_tool_errors_overrides_the_program_option() -> None:
    template = AUTO_LOOP.replace("max_rounds=5", "max_rounds=5 tool_errors='feedback'")
    r, _ = run(
        template,
        [calls(("bad", "_broken", '{"city":"Paris"}')), "carried on"],
        question=QUESTION,
        tools=[_broken],
        tool_errors="raise",
    )
    assert r["answer"] == "carried on" and r.tool_calls[0].error_type == "exception"


@pytest.mark.parametrize("style", sorted(STYLES))
def test_tool_errors_raise_names_the_tool(style: str) -> None:
    with pytest.raises(gl.TemplateRuntimeError, match="'_broken' failed.*no data for Paris") as info:
        run(
            STYLES[style],
            [calls(("bad", "_broken", '{"city":"Paris"}')), "never"],
            question=QUESTION,
            tools=[_broken],
            tool_errors="raise",
        )
    assert isinstance(info.value.__cause__, gl.ToolExecutionError)
    assert [t.error_type for t in info.value.partial.tool_calls] == ["exception"]


def test_only_offered_tools_can_run() -> None:
    ran: list[str] = []

    def secret() -> str:
        ran.append("secret")
        return "s"

    reply = calls(("1", "secret", "{}"), ("2", "len", '{"obj": "x"}'), ("3", "get_time", '{"zone":"CET"}'))
    r, _ = run(AUTO_LOOP, [reply, "done"], question=QUESTION, tools=[get_weather], secret=secret, get_time=get_time)
    assert ran == [] and [t.error_type for t in r.tool_calls] == ["unknown_tool"] * 3


def test_on_tool_call_approve_deny_edit() -> None:
    def hook(tool_call: Any) -> Any:
        return {"Paris": True, "Oz": False}.get(tool_call.arguments.get("city"), {"city": "Rome"})

    reply = calls(
        ("1", "get_weather", '{"city":"Paris"}'),
        ("2", "get_weather", '{"city":"Oz"}'),
        ("3", "get_weather", '{"city":"Atlantis"}'),
    )
    r, _ = run(AUTO_LOOP, [reply, "done"], question=QUESTION, tools=TOOLS, on_tool_call=hook)
    ok, denied, edited = r.tool_calls
    assert ok.result["city"] == "Paris" and denied.error_type == "denied" and edited.result["city"] == "Rome"


# ---- events, usage, concurrency -----------------------------------------------------------------------------------
def test_stream_events_for_the_auto_loop() -> None:
    reply = calls(("w", "get_weather", '{"city":"Paris"}'), ("t", "get_time", '{"zone":"CET"}'))
    program = gl.Program(AUTO_LOOP, model=gl.models.Mock([reply, "All done here."], chunk_size=4), silent=True)
    events = list(program.stream(question=QUESTION, tools=TOOLS))
    kinds = [type(e) for e in events]
    deltas = [e for e in events if isinstance(e, ev.ToolCallDelta)]
    assert [(d.index, d.id, d.name, d.arguments_delta) for d in deltas] == [
        (0, "w", "get_weather", '{"city":"Paris"}'),
        (1, "t", "get_time", '{"zone":"CET"}'),
    ]
    assert [e.call.id for e in events if isinstance(e, ev.ToolCallReady)] == ["w", "t"]
    assert [e.record.id for e in events if isinstance(e, ev.ToolResult)] == ["w", "t"]
    assert kinds.index(ev.ToolCallReady) < kinds.index(ev.ToolResult)
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "All done here."
    assert [e.value for e in events if isinstance(e, ev.VariableSet)] == ["All done here."]
    assert isinstance(events[-1], ev.Finished) and events[-1].result["answer"] == "All done here."


def test_usage_sums_over_every_model_call() -> None:
    replies = [calls(("1", "get_time", '{"zone":"CET"}')), "one two three"]
    r, _ = run(AUTO_LOOP, replies, question=QUESTION, tools=TOOLS)
    assert r.usage.completion_tokens == 3 and len(r.state.gen_log) == 2


def test_results_keep_call_order_whatever_finishes_first() -> None:
    async def slow(tag: str) -> str:
        await asyncio.sleep(0.05)
        return tag

    def fast(tag: str) -> str:
        return tag

    reply = calls(("1", "slow", '{"tag":"a"}'), ("2", "fast", '{"tag":"b"}'), ("3", "slow", '{"tag":"c"}'))
    r, mock = run(EXPLICIT_LOOP, [reply, "ok"], question=QUESTION, tools=[slow, fast])
    assert [(m["tool_call_id"], m["content"]) for m in mock.requests[1].messages[3:]] == [
        ("1", "a"),
        ("2", "b"),
        ("3", "c"),
    ]
    assert [t.id for t in r.tool_calls] == ["1", "2", "3"]
    assert (
        r.tool_calls[1].started_at + r.tool_calls[1].duration < r.tool_calls[0].started_at + r.tool_calls[0].duration
    )  # the fast call really finished first


def test_eight_calls_run_concurrently() -> None:
    overlap = Overlap(8)

    def nap(i: int) -> int:
        overlap.wait()  # returns only once all eight calls are running at the same time
        return i

    reply = calls(*[(f"c{i}", "nap", json.dumps({"i": i})) for i in range(8)])
    r, _ = run(EXPLICIT_LOOP, [reply, "rested"], question=QUESTION, tools=[nap])
    assert [t.result for t in r.tool_calls] == list(range(8))
    assert overlap.peak == 8
