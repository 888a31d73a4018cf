"""One model call from the interpreter's side: build the request from a state snapshot, consume the stream
(client-side stops, streaming events), account usage. Shared by ``gen``, ``select`` and ``geneach``.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from .events import TextDelta, ToolCallDelta
from .models.base import Choice, Completion, GenRequest, ModelError
from .stopping import StopMatcher, apply_stops, as_list

if TYPE_CHECKING:  # pragma: no cover
    from .context import RunContext as Interpreter
    from .nodes import Node


class GenerationError(ValueError):
    """A generation that can't be sent as written (explains what to change in the template)."""


def build_request(interp: "Interpreter", node: "Node", **params: Any) -> GenRequest:
    model = interp.model
    if model is None:
        raise GenerationError("this program has no model: pass model=… to gl.Program, or set OPENAI_API_KEY / "
                              "install guidance_lite[local] so gl.models.default() can find one")
    state = interp.state
    prefill = ""
    messages_fn = None
    if state.uses_roles:
        role = state.open_roles[-1] if state.open_roles else None
        if role is None:
            raise GenerationError("gen outside a role block in a program that uses role blocks: put it inside "
                                  "{{#assistant}}…{{/assistant}}")
        if role.role != "assistant":
            raise GenerationError(f"gen inside a {{{{#{role.role}}}}} block: the model writes assistant turns, "
                                  "so put gen inside {{#assistant}}…{{/assistant}}")
        if state.loose_text_line is not None:
            where = f" (line {state.loose_text_line})" if state.loose_text_line > 0 else ""
            raise GenerationError(f"text outside role blocks{where} can't be sent to a chat model: put it inside "
                                  "a {{#system}}, {{#user}} or {{#assistant}} block, or remove it")
        prefill = state.content_of(role)
        if prefill.strip() and not model.supports_prefill:
            raise GenerationError(f"{model.name} can't continue a partly written assistant message "
                                  f"({prefill.strip()[:40]!r} comes before gen): put gen at the start of the "
                                  "assistant block, or the text in a previous message")
        if not prefill.strip():
            prefill = ""
        state.check_tool_results()
        messages_fn = state.messages_snapshot()
    elif not model.text:
        raise GenerationError(f"{model.name} is a chat model and this template has no role blocks: wrap the prompt "
                              "in {{#user}}…{{/user}} and put gen inside {{#assistant}}…{{/assistant}}")
    prompt_fn = state.prompt_snapshot()
    if interp.captures and interp.captures[0]:  # a parallel-each fork: its own text continues the shared prefix
        local = "".join(s.text for s in interp.captures[0])
        base = prompt_fn
        prompt_fn = lambda: base() + local  # type: ignore[assignment]  # noqa: E731
    extra = {k: v for k, v in params.pop("extra", {}).items() if v is not None}
    request = GenRequest(messages_fn=messages_fn, prompt_fn=prompt_fn, prefill=prefill, extra=extra, **params)
    if request.stop is not None:
        request.stop = as_list(request.stop) or None
    if request.stop_regex is not None:
        request.stop_regex = as_list(request.stop_regex) or None
    return request


async def run_model(interp: "Interpreter", request: GenRequest, variable: Optional[str]) -> Completion:
    """Stream one request, stopping early when a stop sequence is certain; returns the final Completion."""
    model = interp.model
    assert model is not None
    stops, patterns = as_list(request.stop), as_list(request.stop_regex)
    matcher = StopMatcher(stops, patterns)
    listening = bool(interp.listeners)
    emit = interp.emit
    started = time.perf_counter()
    final: Optional[Completion] = None
    stream = model.stream(request)
    state = interp.state
    if listening:
        state.streaming = [variable, ""]
    try:
        async for item in stream:
            if isinstance(item, Completion):
                final = item
                break
            if item.choice != 0:
                continue
            if item.tool_index is not None:
                if listening:
                    emit(ToolCallDelta(item.tool_index, item.tool_id, item.tool_name, item.tool_arguments, variable))
                continue
            if not item.text:
                continue
            if matcher.active:
                safe = matcher.feed(item.text)
                if listening and safe:
                    state.streaming[1] += safe  # type: ignore[index]
                    emit(TextDelta(safe, variable))
                if matcher.hit is not None and request.n == 1:
                    break
            elif listening:
                state.streaming[1] += item.text  # type: ignore[index]
                emit(TextDelta(item.text, variable))
    finally:
        state.streaming = None
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
    if final is None:
        if matcher.hit is None:
            raise ModelError(f"{model.name}: the response stream ended without a final result")
        final = Completion([Choice(matcher.text, [], "stop", matcher.hit.text)])
    elif listening and matcher.active:
        tail = matcher.finish()
        if tail:
            emit(TextDelta(tail, variable))
    for choice in final.choices:
        kept, hit = apply_stops(choice.text, stops, patterns)
        if hit is not None:
            choice.text, choice.stop_text, choice.finish_reason = kept, hit, "stop"
    duration = time.perf_counter() - started
    if final.usage is not None:
        state.usage = state.usage + final.usage
    state.gen_log.append({"variable": variable, "usage": final.usage, "duration": duration,
                          "finish_reason": final.choices[0].finish_reason if final.choices else None,
                          "model": final.model or model.name, "cached": final.cached})
    return final


def gen_meta(interp: "Interpreter") -> Optional[dict]:
    """What the display shows on hover for a generated span: the latest model call's log entry (usage, duration,
    finish_reason, model), shared rather than copied."""
    return interp.state.gen_log[-1] if interp.state.gen_log else None
