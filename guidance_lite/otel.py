"""OpenTelemetry spans for runs, model calls and tool calls (``gl.otel.instrument()``; optional extra ``otel``).

Off by default and free when off: nothing here imports ``opentelemetry`` until :func:`instrument` is called, and
without an instrument call no observer is attached, so runs report nothing. Once instrumented, each run is a span
(``gen_ai.operation.name`` ``invoke_workflow``), each model call a child span (``chat`` or ``text_completion``)
and each tool call a child span of the run (``execute_tool``), so the calls of one parallel batch are siblings
next to the model call that asked for them. Attributes follow OpenTelemetry's GenAI semantic conventions; message
content (prompts, outputs, tool arguments and results) is recorded only when the user opts in, with
``instrument(capture_content=True)`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from .errors import GuidanceLiteError
from .observe import ModelCallInfo, Observer, RunInfo, RunOutput, ToolCallInfo, add_observer, remove_observer
from .version import __version__

__all__ = ["instrument", "uninstrument", "OTelObserver", "OTelUnavailable", "CAPTURE_CONTENT_ENV"]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRACER_NAME = "guidance_lite"


class OTelUnavailable(GuidanceLiteError, ImportError):
    """``gl.otel.instrument()`` without the ``opentelemetry-api`` package."""


class OTelObserver(Observer):
    """Turns a run's observations into spans (built by :func:`instrument`)."""

    def __init__(self, tracer: Any, trace_api: Any, *, capture_content: bool) -> None:
        self.tracer = tracer
        self.trace = trace_api
        self.capture_content = capture_content

    # ---- runs ------------------------------------------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_workflow"}
        if run.name:
            attributes["guidance_lite.program.name"] = run.name
        if run.model:
            attributes["gen_ai.request.model"] = run.model
        name = f"invoke_workflow {run.name}" if run.name else "invoke_workflow"
        run.data[self] = self._start(run.data, name, None, self.trace.SpanKind.INTERNAL, attributes)

    def run_finished(self, run: RunInfo, output: RunOutput) -> None:
        span = self._stop(run.data)
        if span is None:
            return
        span.set_attribute("guidance_lite.run.completed", output.completed)
        span.set_attribute("gen_ai.usage.input_tokens", output.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output.usage.completion_tokens)
        if output.error is not None:
            self._fail(span, output.error_type or "error", output.error)
        span.end()

    def _start(self, data: dict, name: str, parent: Any, kind: Any, attributes: dict) -> Any:
        """Start a span (a child of ``parent``, else of the current span) and make it current while it lasts, so spans
        made inside it (an HTTP client's, an async tool's own) nest under it. Each hook pair runs in one task."""
        from opentelemetry import context as otel_context

        parent_context = self.trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(name, context=parent_context, kind=kind, attributes=attributes)
        data[(self, "token")] = otel_context.attach(self.trace.set_span_in_context(span))
        return span

    def _stop(self, data: dict) -> Any:
        from opentelemetry import context as otel_context

        token = data.pop((self, "token"), None)
        if token is not None:
            try:
                otel_context.detach(token)
            except ValueError:  # ended in another task than it started in (an abandoned run): nothing to restore
                pass
        return data.pop(self, None)

    def _fail(self, span: Any, error_type: str, message: str) -> None:
        span.set_attribute("error.type", error_type)
        span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, message))

    # ---- model calls -----------------------------------------------------------------------------------------------
    def model_call_started(self, call: ModelCallInfo) -> None:
        request = call.request
        operation = "chat" if request.chat else "text_completion"
        attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": call.model}
        for key, value in (
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
            ("gen_ai.request.seed", request.seed),
            ("gen_ai.request.stop_sequences", request.stop),
            ("gen_ai.request.choice.count", request.n if request.n != 1 else None),
            ("guidance_lite.variable", call.variable),
        ):
            if value is not None:
                attributes[key] = value
        if self.capture_content:
            attributes["gen_ai.input.messages"] = json.dumps(_input_messages(request), ensure_ascii=False, default=str)
            if request.tools:
                attributes["gen_ai.tool.definitions"] = json.dumps([s.definition for s in request.tools], default=str)
        parent = call.run.data.get(self)
        call.data[self] = self._start(
            call.data, f"{operation} {call.model}", parent, self.trace.SpanKind.CLIENT, attributes
        )

    def model_call_finished(self, call: ModelCallInfo) -> None:
        span = self._stop(call.data)
        if span is None:
            return
        completion = call.completion
        if completion is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [c.finish_reason or "" for c in completion.choices])
            if completion.model:
                span.set_attribute("gen_ai.response.model", completion.model)
            if completion.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", completion.usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", completion.usage.completion_tokens)
            if self.capture_content:
                span.set_attribute(
                    "gen_ai.output.messages", json.dumps(_output_messages(completion), ensure_ascii=False)
                )
        elif call.error is not None:
            self._fail(span, type(call.error).__name__, str(call.error))
        span.end()

    # ---- tool calls ------------------------------------------------------------------------------------------------
    def tool_call_started(self, call: ToolCallInfo) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.call.name,
            "gen_ai.tool.call.id": call.call.id,
            "gen_ai.tool.type": "function",
        }
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = call.call.arguments_json
        name = f"execute_tool {call.call.name}"
        parent = call.run.data.get(self)
        call.data[self] = self._start(call.data, name, parent, self.trace.SpanKind.INTERNAL, attributes)

    def tool_call_finished(self, call: ToolCallInfo) -> None:
        span = self._stop(call.data)
        if span is None:
            return
        record = call.record
        if record is not None:
            if self.capture_content:
                span.set_attribute("gen_ai.tool.call.result", record.content)
            if record.error is not None:
                self._fail(span, record.error_type or "error", record.error)
        elif call.error is not None:
            self._fail(span, type(call.error).__name__, str(call.error))
        span.end()


def _input_messages(request: Any) -> list[dict]:
    """The request's conversation in the conventions' message shape (role + parts)."""
    if not request.chat:
        return [{"role": "user", "parts": [{"type": "text", "content": request.prompt}]}]
    messages = []
    for message in request.messages or []:
        parts: list[dict] = []
        if message.get("content"):
            kind = "tool_call_response" if message.get("role") == "tool" else "text"
            if kind == "text":
                parts.append({"type": "text", "content": message["content"]})
            else:
                parts.append({"type": kind, "id": message.get("tool_call_id"), "response": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        messages.append({"role": message.get("role"), "parts": parts})
    if request.prefill:
        messages.append({"role": "assistant", "parts": [{"type": "text", "content": request.prefill}]})
    return messages


def _output_messages(completion: Any) -> list[dict]:
    output = []
    for choice in completion.choices:
        parts: list[dict] = [{"type": "text", "content": choice.text}] if choice.text else []
        parts.extend(
            {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments_json} for c in choice.tool_calls
        )
        output.append({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason or ""})
    return output


_installed: Optional[OTelObserver] = None


def instrument(*, capture_content: Optional[bool] = None, tracer_provider: Any = None) -> OTelObserver:
    """Send a span for every run, model call and tool call from now on, through ``tracer_provider`` (default: the
    global one). ``capture_content`` (default: the ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment
    variable) adds prompts, outputs and tool arguments/results to the spans. Calling it again replaces the settings."""
    global _installed
    try:
        from opentelemetry import trace
    except ImportError:
        raise OTelUnavailable(
            "gl.otel.instrument() needs the OpenTelemetry API: pip install 'guidance_lite[otel]' "
            "(and an SDK with an exporter to see the spans)"
        ) from None
    if capture_content is None:
        capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")
    tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
    uninstrument()
    _installed = OTelObserver(tracer, trace, capture_content=capture_content)
    add_observer(_installed)
    return _installed


def uninstrument() -> None:
    """Stop sending spans (runs already started finish theirs)."""
    global _installed
    if _installed is not None:
        remove_observer(_installed)
        _installed = None
