"""One model call from the interpreter's side: resolve a gen's tools, build the request from a state snapshot, consume
the stream (client-side stops, streaming events), account usage. Shared by ``gen``, ``select`` and ``geneach``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from .errors import GuidanceLiteError
from .events import TextDelta, ToolCallDelta
from .models.base import Choice, Completion, Delta, GenParams, GenRequest, Model, ModelError
from .observe import ModelCallInfo, observed
from .stopping import StopMatcher, apply_stops, as_list
from .tools import (
    Tool,
    ToolChoice,
    ToolChoiceError,
    ToolSpec,
    make_call_ids_unique,
    make_toolset,
    resolve_tool_choice,
    tool_specs,
)

if TYPE_CHECKING:  # pragma: no cover
    from .context import RunContext as Interpreter
    from .nodes import Node
    from .state import ProgramState


class GenerationError(GuidanceLiteError, ValueError):
    """A generation that can't be sent as written (explains what to change in the template)."""


def resolve_tools(
    tools: Any, tool_choice: Any, resolve: Callable[[str], Any], default_choice: Optional[str] = None
) -> tuple[dict[str, Tool], tuple[ToolSpec, ...], Optional[ToolChoice]]:
    """A gen's ``tools=[…]`` and ``tool_choice=…``, read once: the tools by name (what dispatch runs), their specs
    (what the backend offers) and the choice (None without tools; ``default_choice`` when none was given).
    ``resolve`` finds the implementation of a tool given as a schema dict. Errors are worded for template authors."""
    toolset = make_toolset(tools, resolve=resolve) if tools else {}
    if not toolset:
        if tool_choice is not None:
            raise ValueError("tool_choice needs tools=[…]")
        return toolset, (), None
    specs = tool_specs(toolset.values())
    try:
        choice = resolve_tool_choice(tool_choice if tool_choice is not None else default_choice, specs)
    except ToolChoiceError:
        raise ValueError(
            f"tool_choice must be 'auto', 'required', 'none' or one of the offered tools "
            f"({', '.join(toolset)}), not {tool_choice!r}"
        ) from None
    return toolset, specs, choice


def build_request(interp: Interpreter, node: Node, params: GenParams) -> GenRequest:
    """``params`` plus the conversation so far, as the model sees it (checked against what the model can take)."""
    model = interp.model
    if model is None:
        raise GenerationError(
            "this program has no model: pass model=… to gl.Program, or set OPENAI_API_KEY / "
            "install guidance_lite[local] so gl.models.default() can find one"
        )
    state = interp.state
    prefill = ""
    messages_fn = None
    if state.uses_roles:
        prefill = _assistant_prefill(state, model)
        state.check_tool_results()
        messages_fn = state.messages_snapshot()
    elif not model.text:
        raise GenerationError(
            f"{model.name} is a chat model and this template has no role blocks: wrap the prompt "
            "in {{#user}}…{{/user}} and put gen inside {{#assistant}}…{{/assistant}}"
        )
    # a parallel-each fork: its own text (captured so far) continues the shared prefix
    local = tuple(interp.captures[0]) if interp.captures and interp.captures[0] else ()
    prompt = state.prompt_snapshot(local)
    settings = params.settings()
    settings["stream"] = wants_stream(interp, params, model)
    return GenRequest(
        messages_fn=messages_fn,
        prompt_fn=prompt,
        values_prompt_fn=prompt.with_values,
        prefill=prefill,
        caching=interp.options.get("caching"),
        regex_timeout=interp.limits.regex_seconds,
        **settings,
    )


def wants_stream(interp: Interpreter, params: GenParams, model: Model) -> bool:
    """Whether to ask for a streamed answer (the one place that decides): as the gen says (``stream=True/False``),
    else only when it is of use — someone listens (``stream()``/``astream()``, the live view, a listener), or a stop
    needs the client to end the answer early (a ``stop_regex``, or more stop strings than the server stops at).

    Why not always: a plain answer costs the client a fraction of a streamed one (one body instead of a chunk per
    token), and a batch of silent runs is bound by that cost."""
    if params.stream is not None:
        return params.stream
    if interp.listeners or params.stop_regex:
        return True
    return len(params.stop or ()) > model.server_stops


def _assistant_prefill(state: ProgramState, model: Any) -> str:
    """The text already written in the open assistant block ('' if only whitespace); refuses a gen that is not in
    an assistant block, or text outside role blocks."""
    role = state.open_roles[-1] if state.open_roles else None
    if role is None:
        raise GenerationError(
            "gen outside a role block in a program that uses role blocks: put it inside {{#assistant}}…{{/assistant}}"
        )
    if role.role != "assistant":
        raise GenerationError(
            f"gen inside a {{{{#{role.role}}}}} block: the model writes assistant turns, "
            "so put gen inside {{#assistant}}…{{/assistant}}"
        )
    if state.loose_text_line is not None:
        where = f" (line {state.loose_text_line})" if state.loose_text_line > 0 else ""
        raise GenerationError(
            f"text outside role blocks{where} can't be sent to a chat model: put it inside "
            "a {{#system}}, {{#user}} or {{#assistant}} block, or remove it"
        )
    prefill = state.content_of(role)
    if prefill.strip() and not model.supports_prefill:
        raise GenerationError(
            f"{model.name} can't continue a partly written assistant message "
            f"({prefill.strip()[:40]!r} comes before gen): put gen at the start of the "
            "assistant block, or the text in a previous message"
        )
    return prefill if prefill.strip() else ""


async def run_model(interp: Interpreter, request: GenRequest, variable: Optional[str]) -> Completion:
    """Stream one request, stopping early when a stop sequence is certain; returns the final Completion. Every model
    call of a run goes through here, so this is where observers (``observe.py``) see them."""
    watch = interp.watch
    if watch is None:
        return await _run_model(interp, request, variable, None)
    model = interp.model
    assert model is not None
    call = watch.model_call_started(request, model.name, variable)
    return await observed(call, _run_model(interp, request, variable, call), watch.model_call_finished)


async def _run_model(
    interp: Interpreter, request: GenRequest, variable: Optional[str], call: Optional[ModelCallInfo]
) -> Completion:
    model = interp.model
    assert model is not None
    stops, patterns = as_list(request.stop), as_list(request.stop_regex)
    matcher = StopMatcher(stops, patterns, request.regex_timeout)
    started = time.perf_counter()
    stream = model.stream(request)
    if call is not None and interp.watch is not None:
        stream = interp.watch.chunks(call, stream)
    final = await _consume(interp, stream, matcher, request.n, variable)
    if final is None:
        if matcher.hit is None:
            raise ModelError(f"{model.name}: the response stream ended without a final result")
        final = Completion([Choice(matcher.text, [], "stop", matcher.hit.text)])
    elif interp.listeners and matcher.active:
        tail = matcher.finish()
        if tail:
            interp.emit(TextDelta(tail, variable))
    in_use = _call_ids_in_use(interp.state)
    for choice in final.choices:
        kept, hit = apply_stops(choice.text, stops, patterns, request.regex_timeout)
        if hit is not None:
            choice.text, choice.stop_text, choice.finish_reason = kept, hit, "stop"
        make_call_ids_unique(choice.tool_calls, set(in_use))  # before anything runs: one result per call
    _account(interp.state, final, variable, time.perf_counter() - started, model.name)
    return final


async def _consume(
    interp: Interpreter,
    stream: AsyncIterator[Union[Delta, Completion]],
    matcher: StopMatcher,
    n: int,
    variable: Optional[str],
) -> Optional[Completion]:
    """Drain ``stream`` up to its Completion (None when a stop sequence ended it first), emitting the streaming
    events of choice 0 when someone listens."""
    listening = bool(interp.listeners)
    emit = interp.emit
    state = interp.state
    if listening:
        state.streaming = [variable, ""]
    first = True  # the reply's first streaming event (a sync consumer waiting for it gets it before the run goes on)
    try:
        async for item in stream:
            if isinstance(item, Completion):
                return item
            if item.choice != 0:
                continue
            if item.tool_index is not None:
                if listening:
                    emit(ToolCallDelta(item.tool_index, item.tool_id, item.tool_name, item.tool_arguments, variable))
                    await interp.deliver(first)
                    first = False
                continue
            if not item.text:
                continue
            shown = matcher.feed(item.text) if matcher.active else item.text
            if listening and shown:
                state.streaming[1] += shown  # type: ignore[index]
                emit(TextDelta(shown, variable))
                await interp.deliver(first)
                first = False
            if matcher.hit is not None and n == 1:
                return None
        return None
    finally:
        state.streaming = None
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()


def _call_ids_in_use(state: ProgramState) -> set[str]:
    """Every tool-call id the conversation already holds (answered, waiting, or in the open assistant block)."""
    return {*state.pending_calls, *state.answered_calls, *(c.id for role in state.open_roles for c in role.tool_calls)}


def _account(state: ProgramState, final: Completion, variable: Optional[str], duration: float, model_name: str) -> None:
    """Add the call's usage to the program's and log it (what the display shows on hover)."""
    if final.usage is not None:
        state.usage = state.usage + final.usage
    state.gen_log.append(
        {
            "variable": variable,
            "usage": final.usage,
            "duration": duration,
            "finish_reason": final.choices[0].finish_reason if final.choices else None,
            "model": final.model or model_name,
            "cached": final.cached,
        }
    )


def gen_meta(interp: Interpreter) -> Optional[dict]:
    """What the display shows on hover for a generated span: the latest model call's log entry (usage, duration,
    finish_reason, model), shared rather than copied."""
    return interp.state.gen_log[-1] if interp.state.gen_log else None
