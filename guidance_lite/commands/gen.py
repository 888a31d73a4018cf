"""``{{gen}}``: one generation, optionally with tools — the explicit loop (capture a callable answer) or the
automatic loop (``max_rounds``: call tools and ask again inside one gen, kani / Semantic Kernel style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from ..answer import ToolCallAnswer, ToolResults
from ..control import NOTHING
from ..events import MessageAdded, ToolCallReady, ToolResult
from ..generation import GenerationError, build_request, gen_meta, resolve_tools, run_model
from ..models.base import Choice, GenParams, ToolCall
from ..nodes import Const, ListLit, string_value
from ..registry import CallSite, Effects, command
from ..state import GEN, TOOL_CALL, render_tool_call
from ..stopping import infer_stop, timed_search
from ..tools import Tool, ToolChoice, ToolExecutionError, dispatch
from .roles import add_tool_message

if TYPE_CHECKING:  # pragma: no cover
    from ..context import RunContext as Interpreter
    from ..nodes import Node


def _gen_names(site: CallSite) -> Effects:
    """gen writes its name; ``save_prompt=``/``save_stop_text=`` write one more each (a string names it, True means
    ``{name}_prompt`` / ``{name}_stop_text``); ``tools=['f']`` strings name program arguments holding tools."""
    name = site.string(0, "name")

    def derived(option: str, suffix: str) -> Optional[str]:
        value = site.argument(None, option)
        if isinstance(value, Const) and value.value is True and name:
            return f"{name}_{suffix}"
        return string_value(value)

    tools = site.argument(None, "tools")
    listed = tools.items if isinstance(tools, ListLit) else (tools,)
    return Effects(
        reads=tuple(string_value(item) for item in listed),
        sets=(name, derived("save_prompt", "prompt"), derived("save_stop_text", "stop_text")),
    )


@command("gen", binds=_gen_names, generates=True, usage="{{gen 'name' stop='.' max_tokens=50}}")
async def gen(
    interp: Interpreter,
    node: Node,
    name: Optional[str] = None,
    *,
    stop: Any = None,
    stop_regex: Any = None,
    save_stop_text: Any = False,
    max_tokens: Optional[int] = None,
    n: int = 1,
    temperature: Optional[float] = 0.0,
    top_p: Optional[float] = None,
    pattern: Optional[str] = None,
    hidden: bool = False,
    list_append: bool = False,
    save_prompt: Optional[str] = None,
    seed: Optional[int] = None,
    tools: Any = None,
    tool_choice: Any = None,
    parallel_tool_calls: Optional[bool] = None,
    max_rounds: Optional[int] = None,
    tool_errors: Optional[str] = None,
    tool_timeout: Optional[float] = None,
    stream: Any = None,
    function_call: Any = None,
    **model_kwargs: Any,
) -> Any:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"gen's name must be a string, got {type(name).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive integer")
    tools, tool_choice = _program_tools(interp, tools, tool_choice, function_call)
    loop_choice = "auto" if max_rounds is not None else None  # the automatic loop asks for tools explicitly
    toolset, specs, offered_choice = resolve_tools(tools, tool_choice, interp.variable, loop_choice)
    if stop is None and not toolset:  # a tool call's JSON is full of quotes: no stop is inferred next to tools
        stop = infer_stop(*interp.surrounding_text(node))
    errors = tool_errors or interp.options.get("tool_errors") or "feedback"
    if errors not in ("feedback", "raise"):
        raise ValueError(f"tool_errors must be 'feedback' or 'raise', not {errors!r}")
    params = GenParams(
        stop=stop,
        stop_regex=stop_regex,
        max_tokens=max_tokens,
        n=n,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        pattern=pattern,
        extra=model_kwargs,
        tools=specs or None,
        tool_choice=offered_choice,
        parallel_tool_calls=parallel_tool_calls,
        stream=None if stream is None else bool(stream),
    )
    dispatcher = _dispatcher(
        interp, toolset, name, errors, tool_timeout if tool_timeout is not None else interp.options.get("tool_timeout")
    )
    top = interp.is_top_level(node)
    if max_rounds is not None:
        if not toolset:
            raise ValueError("max_rounds needs tools=[…]")
        text = await _auto_loop(interp, node, name, params, int(max_rounds), dispatcher, hidden)
        _store(interp, name, text, list_append)
        return NOTHING if top else text
    request = build_request(interp, node, params)
    completion = await run_model(interp, request, name)
    choice = completion.choices[0]
    value: Any
    if choice.tool_calls:
        value = ToolCallAnswer(choice.tool_calls, choice.text, dispatcher, name)
        if top:
            _write_calls(interp, choice, name, hidden)
    else:
        _check_pattern(interp, pattern, [c.text for c in completion.choices])
        value = [c.text for c in completion.choices] if n > 1 else choice.text
        if top:
            _write_gen(interp, choice.text, name, gen_meta(interp), hidden)
    _store(interp, name, value, list_append)
    if (save_stop_text and name is not None) or isinstance(save_stop_text, str):
        target = save_stop_text if isinstance(save_stop_text, str) else f"{name}_stop_text"
        interp.assign(target, choice.stop_text)
    if save_prompt:
        interp.assign(save_prompt if isinstance(save_prompt, str) else f"{name}_prompt", request.prompt)
    return NOTHING if top else value


def _program_tools(interp: Interpreter, tools: Any, tool_choice: Any, function_call: Any) -> tuple[Any, Any]:
    """``function_call=`` is guidance 0.0.64's spelling of ``tool_choice`` ('auto', 'none', a name, ``{"name": …}``);
    with it and no ``tools=``, the gen offers the tools ``{{>tool_def}}`` declared. Names in ``tools=[…]`` pick
    declared tools (a subset for this gen)."""
    declared = interp.state.program_tools
    if function_call is not None:
        if tool_choice is not None:
            raise ValueError("give tool_choice= or its guidance 0.0.64 spelling function_call=, not both")
        tool_choice = function_call
        if tools is None:
            if not declared:
                if function_call == "none":
                    return None, None
                raise ValueError(
                    "function_call=… offers the program's tools, but none were declared: write {{>@tool_def}} "
                    "(with functions=[…] passed to the program) before this gen, or pass tools=[…]"
                )
            tools = list(declared.values())
    if declared and isinstance(tools, (list, tuple)):
        tools = [declared.get(tool, tool) if isinstance(tool, str) else tool for tool in tools]
    return tools, tool_choice


def _store(interp: Interpreter, name: Optional[str], value: Any, append: bool) -> None:
    if name is None:
        return
    interp.set_variable(name, value, append=append)


def _check_pattern(interp: Interpreter, pattern: Optional[str], texts: Sequence[str]) -> None:
    if pattern is None:
        return
    for text in texts:
        if timed_search(pattern, text, interp.limits.regex_seconds, full=True, what="pattern") is None:
            raise GenerationError(
                f"the model's output {text[:60]!r} does not match pattern {pattern!r}"
                + (
                    ""
                    if interp.model is not None and interp.model.can_constrain
                    else f" ({interp.model.name if interp.model else 'the model'} can't constrain "
                    "generation; use a local model for guaranteed matches)"
                )
            )


def _write_gen(interp: Interpreter, text: str, name: Optional[str], meta: Optional[dict], hidden: bool) -> None:
    with interp.state.hidden(hidden):
        interp.write(text, GEN, name, meta)


def _write_calls(interp: Interpreter, choice: Choice, name: Optional[str], hidden: bool) -> None:
    """The assistant's text plus its tool calls, stored structurally on the open assistant block."""
    state = interp.state
    with state.hidden(hidden):
        if choice.text:
            interp.write(choice.text, GEN, name, gen_meta(interp))
        for call in choice.tool_calls:
            interp.write(render_tool_call(call), TOOL_CALL, name, {"call": call})
            interp.emit(ToolCallReady(call, name))
    role = state.open_roles[-1] if state.open_roles else None
    if role is not None and role.role == "assistant" and not interp.captures:
        role.tool_calls.extend(choice.tool_calls)


def _dispatcher(
    interp: Interpreter, toolset: dict[str, Tool], variable: Optional[str], errors: str, timeout: Optional[float]
):
    hook = interp.options.get("on_tool_call")

    async def run(calls: Sequence[ToolCall], overrides: dict) -> ToolResults:
        model, watch = interp.model, interp.watch
        try:
            records = await dispatch(
                calls,
                toolset,
                timeout=timeout,
                errors=errors,
                on_tool_call=hook,
                overrides=overrides or None,
                watch=None if watch is None else watch.tools(variable),
                replayed=None if model is None else model.tool_outcome,
            )
        except ToolExecutionError as exc:
            _record(interp, exc.records, variable)
            raise
        _record(interp, records, variable)
        return ToolResults(records)

    return run


def _record(interp: Interpreter, records: Sequence[Any], variable: Optional[str]) -> None:
    for record in records:
        record.variable = variable
        interp.state.tool_calls.append(record)
        interp.emit(ToolResult(record))


async def _auto_loop(
    interp: Interpreter,
    node: Node,
    name: Optional[str],
    params: GenParams,
    max_rounds: int,
    dispatcher: Any,
    hidden: bool,
) -> str:
    state = interp.state
    role = state.open_roles[-1] if state.open_roles else None
    if role is None or role.role != "assistant":
        raise GenerationError("the automatic tool loop (max_rounds=…) runs inside {{#assistant}}…{{/assistant}}")
    if state.content_of(role).strip():
        raise GenerationError("with max_rounds=…, gen must be the first thing in its assistant block")
    if max_rounds < 0:
        raise ValueError("max_rounds must be 0 or more")
    text = ""
    last_round = replace(params, tool_choice=ToolChoice("none"))  # the last round must answer in text
    # a forced choice ('required', a tool's name) forces the first round only: once the results are in, the model may
    # answer in text (forcing every round would make a text answer an error and call tools until the last round)
    later_rounds = replace(params, tool_choice=ToolChoice("auto")) if params.choice.forced else params
    for round_ in range(max_rounds + 1):
        last = round_ == max_rounds
        request = build_request(interp, node, last_round if last else params if round_ == 0 else later_rounds)
        completion = await run_model(interp, request, name)
        choice = completion.choices[0]
        if not choice.tool_calls or last:
            text = choice.text
            _write_gen(interp, text, name, gen_meta(interp), hidden)
            break
        _write_calls(interp, choice, name, hidden)
        message = {
            "role": "assistant",
            "content": choice.text,
            "tool_calls": [c.to_openai() for c in choice.tool_calls],
        }
        state.close_role(role, message)
        interp.emit(MessageAdded(message, role.hidden))
        results = await dispatcher(choice.tool_calls, {})
        for record in results:
            state.answer_call(record.id)
            add_tool_message(
                interp,
                {"role": "tool", "tool_call_id": record.id, "content": record.content},
                {"name": record.name, "tool_call_id": record.id},
                [_result_span(record)],
                role.scope,
            )
        role = state.open_role("assistant", role.attrs, False, role.line)
    return text


def _result_span(record: Any):
    from ..state import TOOL_RESULT, Span

    return Span(record.content, TOOL_RESULT, record.variable, 0, None, {"record": record})
