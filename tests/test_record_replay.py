"""Record and replay (issue 11 §1): ``record=`` writes a JSON Lines trace, ``gl.models.Replay`` answers from it, and
``gl.Trace`` / ``guidance-lite replay`` re-run a recorded program without its server.

The central proof: a run recorded against the ScriptedServer, replayed with the server stopped, gives the same text,
messages, variables, tool calls and usage, and its tools are not called again.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import EXPLICIT_LOOP

import guidance_lite as gl
from guidance_lite import tracefile
from guidance_lite.cli import main as cli_main
from guidance_lite.events import Finished, TextDelta, ToolCallDelta, ToolCallReady, ToolResult
from guidance_lite.models.replay import ReplayMismatch
from guidance_lite.observe import Observer
from guidance_lite.program import Execution
from guidance_lite.testing import ScriptedServer
from guidance_lite.tracefile import TraceError

CALLS: list[str] = []


def get_weather(city: str, unit: str = "celsius") -> dict:
    """Current weather for a city."""
    CALLS.append(city)
    return {"city": city, "temperature": 21, "unit": unit}


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    CALLS.clear()


def script_weather(server: ScriptedServer) -> None:
    server.push(
        {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Rome", "unit": "fahrenheit"}},
            ]
        },
        "It is 21 °C in Paris and 21 °F in Rome.",
    )


def outcome(result: gl.Result) -> dict:
    """Everything a run produced that must survive a replay (tool records without their process-local clock)."""
    return {
        "text": result.text,
        "messages": result.messages,
        "variables": {k: v for k, v in result.variables.items() if not callable(v) and k != "tools"},
        "tool_calls": [{k: v for k, v in r.to_dict().items() if k != "started_at"} for r in result.tool_calls],
        "usage": result.usage,
        "completed": result.completed,
    }


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---- the whole round trip ---------------------------------------------------------------------------------------
def test_a_run_recorded_against_the_server_replays_identically_with_the_server_stopped(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    with ScriptedServer() as server:
        script_weather(server)
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        recorded = gl.Program(EXPLICIT_LOOP)(
            question="Weather in Paris and Rome?", tools=[get_weather], model=model, record=trace, silent=True
        )
    assert not server.running
    assert CALLS == ["Paris", "Rome"] and recorded["answer"] == "It is 21 °C in Paris and 21 °F in Rome."

    replay = gl.models.Replay(trace)
    replayed = gl.Program(EXPLICIT_LOOP)(
        question="Weather in Paris and Rome?", tools=[get_weather], model=replay, silent=True
    )
    assert CALLS == ["Paris", "Rome"]  # the tools were not called again: their recorded results were used
    assert outcome(replayed) == outcome(recorded)
    assert [r.result for r in replayed.tool_calls] == [r.result for r in recorded.tool_calls]
    assert len(replay.requests) == 2


def test_tools_live_calls_the_real_functions(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    model = gl.models.Mock(
        [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "Oslo is at 21 °C."]
    )
    recorded = gl.Program(EXPLICIT_LOOP)(question="Oslo?", tools=[get_weather], model=model, record=trace, silent=True)
    assert CALLS == ["Oslo"]
    replayed = gl.Program(EXPLICIT_LOOP)(
        question="Oslo?", tools=[get_weather], model=gl.models.Replay(trace, tools="live"), silent=True
    )
    assert CALLS == ["Oslo", "Oslo"]
    assert outcome(replayed)["messages"] == outcome(recorded)["messages"]
    with pytest.raises(ValueError, match="'recorded' or 'live'"):
        gl.models.Replay(trace, tools="sometimes")


def test_streams_replay_as_streams_with_the_same_events(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"

    def seen(events: Any) -> list[tuple]:
        out = []
        for event in events:
            if isinstance(event, TextDelta):
                out.append(("text", event.text, event.variable))
            elif isinstance(event, ToolCallDelta):
                out.append(("tool delta", event.index, event.id, event.name, event.arguments_delta))
            elif isinstance(event, ToolCallReady):
                out.append(("call", event.call.id, event.call.name, event.call.arguments_json))
            elif isinstance(event, ToolResult):
                out.append(("result", event.record.id, event.record.content))
            elif isinstance(event, Finished):
                out.append(("finished", event.result.text))
        return out

    with ScriptedServer() as server:
        script_weather(server)
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        live = seen(
            gl.Program(EXPLICIT_LOOP).stream(question="Weather?", tools=[get_weather], model=model, record=trace)
        )
    replayed = seen(
        gl.Program(EXPLICIT_LOOP).stream(question="Weather?", tools=[get_weather], model=gl.models.Replay(trace))
    )
    assert replayed == live
    texts = [e for e in live if e[0] == "text"]
    assert len(texts) > 3  # the answer streamed in pieces, and replayed in the same pieces
    assert [e[0] for e in live].count("tool delta") >= 2


# ---- divergence -------------------------------------------------------------------------------------------------
def test_a_changed_input_raises_a_mismatch_naming_the_request_with_an_exact_diff(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    program = gl.Program(
        "{{#user~}}Say {{word}}.{{~/user}}\n{{#assistant~}}{{gen 'answer' max_tokens=5}}{{~/assistant}}"
    )
    program(word="hello", model=gl.models.Mock("hello"), record=trace, silent=True)
    with pytest.raises(gl.TemplateRuntimeError) as caught:
        program(word="goodbye", model=gl.models.Replay(trace), silent=True)
    mismatch = caught.value.__cause__
    assert isinstance(mismatch, ReplayMismatch) and isinstance(mismatch, gl.ModelError)
    assert mismatch.number == 1
    expected_diff = "\n".join(
        [
            "--- recorded request",
            "+++ request 1",
            "@@ -3,5 +3,5 @@",
            "     {",
            '       "role": "user",',
            '-      "content": "Say hello."',
            '+      "content": "Say goodbye."',
            "     }",
            "   ],",
        ]
    )
    assert mismatch.diff == expected_diff
    assert str(mismatch) == (
        f"replay of {trace}: request 1 sent to this Replay matches no recorded request; it differs from the next "
        f"recorded request (run 1, model call 1, gen 'answer'):\n{expected_diff}"
    )
    assert caught.value.line == 2  # the gen's template line


def test_a_changed_parameter_is_a_divergence_too(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    gl.Program("{{gen 'x' max_tokens=5}}")(model=gl.models.Mock("a"), record=trace, silent=True)
    with pytest.raises(gl.TemplateRuntimeError) as caught:
        gl.Program("{{gen 'x' max_tokens=6}}")(model=gl.models.Replay(trace), silent=True)
    diff = caught.value.__cause__.diff
    assert '-    "max_tokens": 5,' in diff.splitlines() and '+    "max_tokens": 6,' in diff.splitlines()


def test_asking_more_than_was_recorded_is_named(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    gl.Program("{{gen 'x'}}")(model=gl.models.Mock("a"), record=trace, silent=True)
    replay = gl.models.Replay(trace)
    gl.Program("{{gen 'x'}}")(model=replay, silent=True)
    with pytest.raises(gl.TemplateRuntimeError) as caught:
        gl.Program("{{gen 'x'}}")(model=replay, silent=True)
    assert str(caught.value.__cause__) == (
        f"replay of {trace}: request 2 sent to this Replay matches no recorded request: the trace's 1 recorded "
        "request(s) were all answered already (the run asks the model more than the recorded one did)"
    )


def test_a_tool_call_without_a_recorded_outcome_is_a_mismatch(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    denied = gl.Program(EXPLICIT_LOOP)
    model = gl.models.Mock([{"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}, "no"])
    denied(question="Oslo?", tools=[get_weather], model=model, record=trace, on_tool_call=lambda call: False)
    with pytest.raises(gl.TemplateRuntimeError) as caught:  # without the hook the call would run: not recorded
        denied(question="Oslo?", tools=[get_weather], model=gl.models.Replay(trace), silent=True)
    assert isinstance(caught.value.__cause__, ReplayMismatch)
    assert "the tool call get_weather" in str(caught.value.__cause__) and "tools='live'" in str(caught.value.__cause__)
    assert CALLS == []


def test_recorded_model_errors_and_tool_errors_replay_identically(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    program = gl.Program(
        "{{#user~}}{{q}}{{~/user}}\n{{#assistant~}}{{gen 'answer' tools=[divide] max_rounds=2}}{{~/assistant}}"
    )
    with ScriptedServer() as server:
        server.push(
            {"tool_calls": [{"name": "divide", "arguments": {"a": 1, "b": 0}}, {"name": "nope", "arguments": {}}]},
            {"status": 400, "error_message": "the scripted model refuses"},
        )
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url, max_retries=0)
        with pytest.raises(gl.TemplateRuntimeError) as live:
            program(q="1/0?", divide=divide, model=model, record=trace, silent=True)
    with pytest.raises(gl.TemplateRuntimeError) as replayed:
        program(q="1/0?", divide=divide, model=gl.models.Replay(trace), silent=True)
    assert replayed.value.message == live.value.message and "refuses" in live.value.message
    assert outcome(replayed.value.partial) == outcome(live.value.partial)
    assert [r.error_type for r in replayed.value.partial.tool_calls] == ["exception", "unknown_tool"]
    end = events_of(trace)[-1]
    assert end["event"] == "run_end" and end["completed"] is False and "refuses" in end["error"]["message"]


# ---- the file -----------------------------------------------------------------------------------------------------
def test_the_trace_is_versioned_json_lines_in_the_documented_order(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    model = gl.models.Mock([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "Fine."])
    gl.Program(EXPLICIT_LOOP, template_name="weather")(question="Oslo?", tools=[get_weather], model=model, record=trace)
    events = events_of(trace)
    assert events[0]["event"] == "trace" and events[0]["schema_version"] == tracefile.SCHEMA_VERSION == 1
    assert events[0]["library"] == "guidance_lite" and events[0]["version"] == gl.__version__
    assert [e["event"] for e in events[1:]] == [
        "run_start",
        "model_call_start",
        "model_call_end",
        "tool_call_start",
        "tool_call_end",
        "model_call_start",
        "model_call_end",
        "run_end",
    ]
    start, first_call, first_end, tool_start, tool_end = events[1:6]
    assert start["name"] == "weather" and start["template"] == EXPLICIT_LOOP and start["model"] == "mock"
    assert start["inputs"]["question"] == "Oslo?"
    marker = start["inputs"]["tools"][0]
    assert marker["__repr__"].startswith("<function get_weather") and marker["__tool__"]["function"]["name"] == (
        "get_weather"
    )
    assert first_call["request"]["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Oslo?"},
    ]
    assert first_call["request"]["tools"][0]["function"]["name"] == "get_weather"
    assert first_call["request"]["tool_choice"] == "auto" and first_call["variable"] == "answer"
    call = first_end["response"]["choices"][0]["tool_calls"][0]
    assert first_end["chunks"] == [
        {"tool_index": 0, "tool_id": call["id"], "tool_name": "get_weather", "tool_arguments": '{"city": "Oslo"}'}
    ]
    assert tool_start["id"] == call["id"] and tool_start["arguments"] == '{"city": "Oslo"}'
    assert tool_end["ran"] is True and tool_end["record"]["result"] == {
        "city": "Oslo",
        "temperature": 21,
        "unit": "celsius",
    }
    assert events[-1]["completed"] is True and events[-1]["variables"]["answer"] == "Fine."
    assert events[-1]["text"].endswith("Fine.<|im_end|>\n")


def test_values_json_cannot_hold_are_written_as_marked_reprs() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque 7>"

    loop: list = []
    loop.append(loop)
    assert tracefile.to_json({"a": (1, 2), "o": Opaque(), "nan": math.nan, "inf": -math.inf, "loop": loop}) == {
        "a": [1, 2],
        "o": {"__repr__": "<Opaque 7>"},
        "nan": {"__repr__": "nan"},
        "inf": {"__repr__": "-inf"},
        "loop": [{"__repr__": "[[...]]"}],  # a container inside itself: the repeat is marked
    }
    assert tracefile.to_json({"api_key": "x", "Authorization": "Bearer y", "nested": {"password": 1}}) == {
        "api_key": "[redacted]",
        "Authorization": "[redacted]",
        "nested": {"password": "[redacted]"},
    }


def test_no_api_key_reaches_the_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-DO-NOT-RECORD-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    trace = tmp_path / "run.jsonl"
    program = gl.Program(EXPLICIT_LOOP, record=trace)  # one recorder: both runs go to the file
    with ScriptedServer() as server:
        for model in (
            gl.models.OpenAI("scripted-model", base_url=server.base_url),  # the key from the environment
            gl.models.OpenAI("scripted-model", base_url=server.base_url, api_key=secret),
        ):
            script_weather(server)
            program(question="Weather?", tools=[get_weather], model=model, silent=True)
    assert server.requests  # the key was really used to talk to the server
    text = trace.read_text(encoding="utf-8")
    assert len(tracefile.read(trace).runs) == 2
    assert secret not in text and "DO-NOT-RECORD" not in text


def test_a_program_level_recorder_collects_a_whole_batch_and_a_replay_answers_it_again(tmp_path: Path) -> None:
    trace = tmp_path / "batch.jsonl"
    capitals = {"France": "Paris", "Peru": "Lima", "Nepal": "Kathmandu"}
    mock = gl.models.Mock({f"capital of {c}?<|im_end|>\n<|im_start|>assistant\n": [v] for c, v in capitals.items()})
    program = gl.Program(
        "{{#user~}}The capital of {{country}}?{{~/user}}\n{{#assistant~}}{{gen 'capital'}}{{~/assistant}}",
        model=mock,
        record=trace,
    )
    inputs = [{"country": c} for c in capitals]
    recorded = program.map(inputs, concurrency=3)
    assert [r["capital"] for r in recorded] == list(capitals.values())
    assert len(tracefile.read(trace).runs) == 3
    replay = gl.models.Replay(trace)
    replayed = gl.Program(program.source, model=replay).map(list(reversed(inputs)), concurrency=3)
    assert [r["capital"] for r in replayed] == list(reversed(capitals.values()))  # matched by content, not order


def test_a_paused_and_resumed_run_is_recorded_and_trace_replay_resumes_it(tmp_path: Path) -> None:
    trace = tmp_path / "chat.jsonl"
    chat = gl.Program(
        "{{#each range(2)~}}{{#user~}}{{await 'message'}}{{~/user}}"
        "{{#assistant~}}{{gen 'reply' list_append=True}}{{~/assistant}}{{~/each}}"
    )
    turn = chat(model=gl.models.Mock(["Hi!", "Bye!"]), record=trace, silent=True)
    turn = turn(message="hello")
    turn = turn(message="goodbye")
    assert turn.completed and turn["reply"] == ["Hi!", "Bye!"]
    kinds = [e["event"] for e in events_of(trace)]
    assert kinds.count("run_paused") == 2 and kinds.count("run_resumed") == 2 and kinds[-1] == "run_end"
    replayed = gl.Trace(trace).replay()
    assert replayed.completed and outcome(replayed) == outcome(turn)


# ---- gl.Trace -------------------------------------------------------------------------------------------------------
def test_trace_replay_rebuilds_tools_and_recorded_approval_decisions(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    model = gl.models.Mock(
        [
            {
                "tool_calls": [
                    {"id": "a", "name": "get_weather", "arguments": {"city": "Oslo"}},
                    {"id": "b", "name": "get_weather", "arguments": {"city": "Lima"}},
                ]
            },
            "Oslo only.",
        ]
    )

    def approve(call: Any) -> Any:
        return False if call.arguments["city"] == "Lima" else {"city": "Oslo", "unit": "kelvin"}

    recorded = gl.Program(EXPLICIT_LOOP)(
        question="Weather?", tools=[get_weather], model=model, record=trace, on_tool_call=approve, silent=True
    )
    assert CALLS == ["Oslo"]
    loaded = gl.Trace(trace)
    assert len(loaded) == 1 and "1 run(s), 2 model call(s)" in repr(loaded)
    replayed = loaded.replay()
    assert CALLS == ["Oslo"]
    assert outcome(replayed) == outcome(recorded)
    assert [r.error_type for r in replayed.tool_calls] == [None, "denied"]


def test_an_input_a_trace_cannot_hold_must_be_passed_again(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"

    class Shout:
        def __repr__(self) -> str:
            return "<Shout>"

        def __str__(self) -> str:
            return "HEY"

    program = gl.Program("{{#user~}}{{greeting}}{{~/user}}\n{{#assistant~}}{{gen 'x'}}{{~/assistant}}")
    recorded = program(greeting=Shout(), model=gl.models.Mock("ok"), record=trace, silent=True)
    with pytest.raises(TraceError) as caught:
        gl.Trace(trace).replay()
    assert str(caught.value) == (
        "the recorded input greeting was <Shout>, which a trace can't hold: pass it to the replay "
        "(trace.replay(greeting=…))"
    )
    assert gl.Trace(trace).replay(greeting=Shout())["x"] == recorded["x"] == "ok"


def test_a_trace_renders_in_a_notebook_like_the_live_run(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    model = gl.models.Mock([{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "Fine."])
    recorded = gl.Program(EXPLICIT_LOOP)(question="Oslo?", tools=[get_weather], model=model, record=trace, silent=True)

    def timeless(html: str) -> str:  # model time is measured again by the replay; everything else is the same
        return re.sub(r"\d+\.\d\ds", "T", html)

    shown = gl.Trace(trace)._repr_html_()
    assert timeless(shown) == timeless(recorded._repr_html_())
    assert "get_weather" in shown and "Fine." in shown


def test_reading_a_bad_trace_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    with pytest.raises(TraceError, match="no such trace file"):
        tracefile.read(path)
    path.write_text('{"event": "run_start"}\n', encoding="utf-8")
    with pytest.raises(TraceError, match="not a guidance_lite trace"):
        tracefile.read(path)
    path.write_text('{"event": "trace", "schema_version": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(TraceError, match=r"bad.jsonl:2: not a JSON line"):
        tracefile.read(path)
    path.write_text('{"event": "trace", "schema_version": 99}\n', encoding="utf-8")
    with pytest.raises(TraceError, match="schema version 99 is newer"):
        tracefile.read(path)
    assert isinstance(TraceError("x"), gl.GuidanceLiteError)


# ---- the CLI --------------------------------------------------------------------------------------------------------
def test_cli_run_record_then_replay_prints_the_same_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "prog.hbs"
    template.write_text("{{#user~}}{{q}}{{~/user}}\n{{#assistant~}}{{gen 'a'}}{{~/assistant}}", encoding="utf-8")
    trace = tmp_path / "run.jsonl"
    assert (
        cli_main(["run", str(template), "--var", "q=hi", "--mock", "hello there", "--record", str(trace), "--json"])
        == 0
    )
    ran = json.loads(capsys.readouterr().out)
    assert cli_main(["replay", str(trace), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ran
    assert cli_main(["replay", str(trace)]) == 0
    printed = capsys.readouterr().out
    assert printed == f"{ran['text']}\nq = 'hi'\na = 'hello there'\n"
    assert cli_main(["replay", str(trace), "--stream"]) == 0
    assert capsys.readouterr().out == "hello there\nq = 'hi'\na = 'hello there'\n"
    assert cli_main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such trace file" in capsys.readouterr().err


def test_cli_replay_of_a_diverged_template_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "run.jsonl"
    gl.Program("{{gen 'a'}}")(model=gl.models.Mock("x"), record=trace, silent=True)
    lines = trace.read_text(encoding="utf-8").splitlines()
    start = json.loads(lines[1])
    start["template"] = "Changed: {{gen 'a'}}"
    lines[1] = json.dumps(start)
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli_main(["replay", str(trace)]) == 3
    err = capsys.readouterr().err
    assert "ReplayMismatch" in err and '+  "prompt": "Changed: ",' in err


# ---- the observer mechanism ------------------------------------------------------------------------------------------
class Log(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def run_started(self, run: Any) -> None:
        self.seen.append(("run_started", run.name, run.inputs.get("question")))

    def run_finished(self, run: Any, output: Any) -> None:
        self.seen.append(("run_finished", output.completed, output.variables.get("answer")))

    def model_call_started(self, call: Any) -> None:
        self.seen.append(("model_call_started", call.index, call.variable))

    def model_chunk(self, call: Any, chunk: Any) -> None:
        self.seen.append(("chunk", call.index))

    def model_call_finished(self, call: Any) -> None:
        self.seen.append(("model_call_finished", call.index, call.completion.choices[0].finish_reason))

    def tool_call_started(self, call: Any) -> None:
        self.seen.append(("tool_call_started", call.call.name))

    def tool_call_finished(self, call: Any) -> None:
        self.seen.append(("tool_call_finished", call.record.result["city"], call.ran))


def test_an_attached_observer_sees_every_moment_in_order() -> None:
    log = Log()
    gl.observe.add_observer(log)
    try:
        model = gl.models.Mock(
            [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "Fine, fine."], chunk_size=5
        )
        gl.Program(EXPLICIT_LOOP, template_name="w")(question="Oslo?", tools=[get_weather], model=model)
    finally:
        gl.observe.remove_observer(log)
    assert log.seen == [
        ("run_started", "w", "Oslo?"),
        ("model_call_started", 1, "answer"),
        ("chunk", 1),
        ("model_call_finished", 1, "tool_calls"),
        ("tool_call_started", "get_weather"),
        ("tool_call_finished", "Oslo", True),
        ("model_call_started", 2, "answer"),
        ("chunk", 2),
        ("chunk", 2),
        ("chunk", 2),
        ("model_call_finished", 2, "stop"),
        ("run_finished", True, "Fine, fine."),
    ]
    gl.Program("{{gen 'answer'}}")(model=gl.models.Mock("x"))
    assert len(log.seen) == 12  # removed: sees no more runs


def test_nobody_observing_means_no_watch_at_all() -> None:
    program = gl.Program("{{gen 'x'}}")
    assert Execution(program, {}, gl.models.Mock(), dict(program.options)).interp.watch is None
    log = Log()
    gl.observe.add_observer(log)
    try:
        assert Execution(program, {}, gl.models.Mock(), dict(program.options)).interp.watch is not None
    finally:
        gl.observe.remove_observer(log)
    with pytest.raises(TypeError, match="record= takes a file path or a gl.Recorder"):
        gl.Program("x", record=42)


def test_a_trace_that_cannot_be_written_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(gl.TemplateRuntimeError) as caught:
        gl.Program("{{gen 'x'}}")(model=gl.models.Mock("a"), record=tmp_path, silent=True)  # a directory
    assert caught.value.message.startswith("IsADirectoryError: ")
    assert isinstance(caught.value.__cause__, IsADirectoryError)


def test_a_stream_ended_early_by_a_client_side_stop_replays_the_same(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    program = gl.Program("{{#user~}}Count.{{~/user}}\n{{#assistant~}}{{gen 'n' stop='4'}}{{~/assistant}}")
    with ScriptedServer() as server:
        server.push({"content": "1 2 3 4 5 6 7 8", "chunk_size": 2})
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        recorded = program(model=model, record=trace, silent=True)
    assert recorded["n"] == "1 2 3 "
    chunks = events_of(trace)[3]["chunks"]
    assert "".join(c["text"] for c in chunks).startswith("1 2 3 4") and len(chunks) < 8  # stopped reading early
    replayed = program(model=gl.models.Replay(trace), silent=True)
    assert outcome(replayed) == outcome(recorded)
