"""OpenTelemetry spans (issue 11 §2): ``gl.otel.instrument()`` turns runs, model calls and tool calls into spans
following the GenAI semantic conventions, checked attribute by attribute with the SDK's in-memory exporter. Off by
default, and free when ``opentelemetry-api`` is not installed (checked in a subprocess where it is hidden)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import EXPLICIT_LOOP
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import guidance_lite as gl
from guidance_lite.otel import CAPTURE_CONTENT_ENV, OTelUnavailable
from guidance_lite.testing import ScriptedServer


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21}


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    try:
        yield spans, provider
    finally:
        gl.otel.uninstrument()


def by_name(spans: Any) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


def test_a_tool_loop_makes_a_run_span_with_model_and_tool_spans_attribute_by_attribute(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    gl.otel.instrument(tracer_provider=provider)
    with ScriptedServer() as server:
        server.push(
            {
                "tool_calls": [
                    {"id": "call_paris", "name": "get_weather", "arguments": {"city": "Paris"}},
                    {"id": "call_rome", "name": "get_weather", "arguments": {"city": "Rome"}},
                ],
                "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
            },
            {"content": "Both 21 °C.", "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}},
        )
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        gl.Program(EXPLICIT_LOOP, template_name="weather")(question="Paris and Rome?", tools=[get_weather], model=model)
    found = by_name(spans.get_finished_spans())
    assert sorted(found) == ["chat scripted-model", "execute_tool get_weather", "invoke_workflow weather"]
    (run,) = found["invoke_workflow weather"]
    first, second = sorted(found["chat scripted-model"], key=lambda s: s.start_time)
    paris, rome = sorted(found["execute_tool get_weather"], key=lambda s: s.attributes["gen_ai.tool.call.id"])

    assert run.parent is None and run.kind == SpanKind.INTERNAL
    assert dict(run.attributes) == {
        "gen_ai.operation.name": "invoke_workflow",
        "guidance_lite.program.name": "weather",
        "gen_ai.request.model": "scripted-model",
        "guidance_lite.run.completed": True,
        "gen_ai.usage.input_tokens": 80,
        "gen_ai.usage.output_tokens": 17,
    }
    assert run.status.status_code == StatusCode.UNSET

    assert first.kind == SpanKind.CLIENT and parent_of(first) == run.context.span_id
    assert dict(first.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "scripted-model",
        "gen_ai.request.temperature": 0.0,
        "guidance_lite.variable": "answer",
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.response.model": "scripted-model",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 12,
    }
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (second.attributes["gen_ai.usage.input_tokens"], second.attributes["gen_ai.usage.output_tokens"]) == (50, 5)

    for tool, call_id in ((paris, "call_paris"), (rome, "call_rome")):
        assert dict(tool.attributes) == {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
        }
        assert tool.kind == SpanKind.INTERNAL and tool.status.status_code == StatusCode.UNSET
        # siblings of the model calls, under the run (the model call's parent)
        assert parent_of(tool) == parent_of(first) == run.context.span_id
        assert first.end_time <= tool.start_time and tool.end_time <= second.start_time
    # the parallel batch overlaps: each call started before the other ended
    assert paris.start_time < rome.end_time and rome.start_time < paris.end_time


def test_content_is_recorded_only_when_asked_for(
    exporter: tuple[InMemorySpanExporter, TracerProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    spans, provider = exporter
    model = gl.models.Mock([{"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}, "ok"])
    content_keys = {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    }
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    gl.otel.instrument(tracer_provider=provider)
    gl.Program(EXPLICIT_LOOP)(question="Oslo?", tools=[get_weather], model=model)
    assert not any(content_keys & set(span.attributes) for span in spans.get_finished_spans())

    spans.clear()
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    gl.otel.instrument(tracer_provider=provider)  # the environment variable opts in
    model = gl.models.Mock([{"tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}, "ok"])
    gl.Program(EXPLICIT_LOOP)(question="Oslo?", tools=[get_weather], model=model)
    found = by_name(spans.get_finished_spans())
    first = min(found["chat mock"], key=lambda s: s.start_time)
    assert first.attributes["gen_ai.input.messages"] == (
        '[{"role": "system", "parts": [{"type": "text", "content": "You are a helpful assistant."}]}, '
        '{"role": "user", "parts": [{"type": "text", "content": "Oslo?"}]}]'
    )
    assert first.attributes["gen_ai.output.messages"] == (
        '[{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "get_weather", '
        '"arguments": "{\\"city\\": \\"Oslo\\"}"}], "finish_reason": "tool_calls"}]'
    )
    assert '"name": "get_weather"' in first.attributes["gen_ai.tool.definitions"]
    (tool,) = found["execute_tool get_weather"]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"city": "Oslo"}'
    assert tool.attributes["gen_ai.tool.call.result"] == '{"city": "Oslo", "temperature": 21}'

    spans.clear()
    gl.otel.instrument(tracer_provider=provider, capture_content=False)  # an explicit choice beats the variable
    gl.Program("{{gen 'x'}}")(model=gl.models.Mock("plain"))
    assert not any(content_keys & set(span.attributes) for span in spans.get_finished_spans())


def test_a_template_without_roles_is_a_text_completion(exporter: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    spans, provider = exporter
    gl.otel.instrument(tracer_provider=provider, capture_content=True)
    gl.Program("Q: 2+2? A: {{gen 'a' max_tokens=3 stop='.' n=2 seed=7}}")(model=gl.models.Mock("4"))
    (call,) = by_name(spans.get_finished_spans())["text_completion mock"]
    assert call.attributes["gen_ai.operation.name"] == "text_completion"
    assert call.attributes["gen_ai.request.max_tokens"] == 3
    assert call.attributes["gen_ai.request.stop_sequences"] == (".",)
    assert call.attributes["gen_ai.request.choice.count"] == 2
    assert call.attributes["gen_ai.request.seed"] == 7
    assert call.attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert call.attributes["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "Q: 2+2? A: "}]}]'
    )


def test_failures_mark_their_spans(exporter: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    spans, provider = exporter
    gl.otel.instrument(tracer_provider=provider)
    program = gl.Program(
        "{{#user~}}1/0?{{~/user}}\n{{#assistant~}}{{gen 'a' tools=[divide] max_rounds=1}}{{~/assistant}}"
    )
    with ScriptedServer() as server:
        server.push(
            {"tool_calls": [{"name": "divide", "arguments": {"a": 1, "b": 0}}]},
            {"status": 400, "error_message": "no more"},
        )
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url, max_retries=0)
        with pytest.raises(gl.TemplateRuntimeError):
            program(divide=divide, model=model)
    found = by_name(spans.get_finished_spans())
    (tool,) = found["execute_tool divide"]
    assert tool.status.status_code == StatusCode.ERROR and tool.attributes["error.type"] == "exception"
    assert "ZeroDivisionError" in tool.status.description
    failed = max(found["chat scripted-model"], key=lambda s: s.start_time)
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes["error.type"] == "ModelError"
    assert "no more" in failed.status.description
    (run,) = found["invoke_workflow"]
    assert run.status.status_code == StatusCode.ERROR and run.attributes["guidance_lite.run.completed"] is False
    assert run.attributes["error.type"] == "ModelError"


def test_uninstrument_stops_the_spans(exporter: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    spans, provider = exporter
    gl.otel.instrument(tracer_provider=provider)
    gl.Program("{{gen 'x'}}")(model=gl.models.Mock("a"))
    assert len(spans.get_finished_spans()) == 2
    gl.otel.uninstrument()
    gl.Program("{{gen 'x'}}")(model=gl.models.Mock("a"))
    assert len(spans.get_finished_spans()) == 2
    assert gl.observe.observers() == ()


def test_runs_of_a_batch_are_separate_traces_and_spans_nest_under_the_callers_span(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    spans, provider = exporter
    gl.otel.instrument(tracer_provider=provider)
    program = gl.Program("{{gen 'x'}}", model=gl.models.Mock("a"))
    program.map([{}, {}, {}], concurrency=3)
    runs = by_name(spans.get_finished_spans())["invoke_workflow"]
    assert len(runs) == 3 and len({run.context.trace_id for run in runs}) == 3

    spans.clear()
    tracer = provider.get_tracer("the caller")

    async def caller() -> None:
        with tracer.start_as_current_span("request handler"):
            await program.arun()

    import asyncio

    asyncio.run(caller())
    found = by_name(spans.get_finished_spans())
    (handler,) = found["request handler"]
    (run,) = found["invoke_workflow"]
    assert parent_of(run) == handler.context.span_id


HIDDEN_OTEL = textwrap.dedent(
    """
    import sys

    class HideOpenTelemetry:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, HideOpenTelemetry())
    import os, tempfile
    import guidance_lite as gl

    trace = os.path.join(tempfile.mkdtemp(), "run.jsonl")
    result = gl.Program("{{gen 'x'}}")(model=gl.models.Mock("fine"), record=trace)
    assert result["x"] == "fine" and gl.Trace(trace).replay()["x"] == "fine"
    assert not [m for m in sys.modules if m.startswith("opentelemetry")]
    try:
        gl.otel.instrument()
    except gl.otel.OTelUnavailable as exc:
        print("refused:", exc)
    """
)


def test_without_opentelemetry_installed_everything_works_and_instrument_says_what_to_install() -> None:
    done = subprocess.run([sys.executable, "-c", HIDDEN_OTEL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "refused: gl.otel.instrument() needs the OpenTelemetry API: pip install 'guidance_lite[otel]' "
        "(and an SDK with an exporter to see the spans)"
    )
    assert issubclass(OTelUnavailable, gl.GuidanceLiteError) and issubclass(OTelUnavailable, ImportError)


def test_a_run_imports_no_opentelemetry_unless_instrumented() -> None:
    code = (
        "import sys, guidance_lite as gl\n"
        "gl.Program('{{gen \\'x\\'}}')(model=gl.models.Mock('a'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
