"""Role blocks: ``{{#system}}``, ``{{#user}}``, ``{{#assistant}}``, ``{{#function}}``/``{{#tool}}``, ``{{#role 'x'}}``.

Messages are built from these nodes as they close (never by parsing text), so role markers inside values can't
forge messages. Keyword arguments become message fields; ``hidden=True`` keeps the message out of later context.
"""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..events import MessageAdded
from ..nodes import Block
from ..registry import block
from ..state import MARKER, ROLE_END, TOOL_RESULT, Span, render_role_open


def _attrs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k != "hidden" and v is not None}


@block("system", "user", "assistant")
async def chat_role(interp: RunContext, node: Block, **kwargs: Any) -> None:
    await run_role(interp, node, node.name, kwargs)


@block("role", usage="{{#role 'critic'}}…{{/role}}")
async def named_role(interp: RunContext, node: Block, role: Any, **kwargs: Any) -> None:
    if not isinstance(role, str) or not role:
        raise TypeError("{{#role}} needs the role name as a string, e.g. {{#role 'critic'}}")
    if role in ("function", "tool"):
        await tool_role(interp, node, **kwargs)
        return
    await run_role(interp, node, role, kwargs)


async def run_role(interp: RunContext, node: Block, role: str, kwargs: dict) -> None:
    if interp.captures:
        raise ValueError(
            f"a {{{{#{role}}}}} block can't be used here (inside a select option, a parallel each "
            "or a tool result block)"
        )
    state = interp.state
    attrs = _attrs(kwargs)
    state.open_role(role, attrs, bool(kwargs.get("hidden", False)), node.line)
    await interp.render(node.body)
    opened = state.open_roles[-1]  # the automatic tool loop may have replaced the assistant block
    content = state.content_of(opened)
    message: dict[str, Any] = {"role": role, **{k: _field(v) for k, v in attrs.items()}, "content": content}
    if opened.tool_calls:
        message["tool_calls"] = [c.to_openai() for c in opened.tool_calls]
    state.close_role(opened, message)
    interp.emit(MessageAdded(message, opened.hidden))


def _field(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, dict)) else str(value)


@block("function", "tool")
async def tool_role(interp: RunContext, node: Block, **kwargs: Any) -> None:
    """A tool-result block: ``{{answer()}}`` inside it emits one ``tool`` message per call, in call order;
    other content answers the next call still waiting for a result (or is a legacy ``function`` message)."""
    if interp.captures:
        raise ValueError("a {{#function}} block can't be used inside a select option or another tool block")
    state = interp.state
    hidden = bool(kwargs.get("hidden", False))
    attrs = _attrs(kwargs)
    opened = state.open_role("function", attrs, hidden, node.line)
    interp.begin_capture()
    try:
        await interp.render(node.body)
    finally:
        spans = interp.end_capture()
    state.discard_role(opened)
    if any(s.kind == TOOL_RESULT for s in spans):
        _add_tool_results(interp, spans, opened.scope)
    else:
        _add_tool_text(interp, attrs, spans, opened.scope)
    if hidden:
        state.close_hidden_scope(opened.scope)


def _add_tool_results(interp: RunContext, spans: list[Span], scope: int) -> None:
    """``{{answer()}}`` rendered results: one ``tool`` message per call, nothing else in the block."""
    other = "".join(s.text for s in spans if s.kind != TOOL_RESULT)
    if other.strip():
        raise ValueError(
            "a {{#function}} block that renders tool results can't also contain other text "
            f"(found {other.strip()[:40]!r}); put that text in another block"
        )
    for span in spans:
        if span.kind != TOOL_RESULT:
            continue
        assert span.meta is not None  # a tool-result span carries its record
        record = span.meta["record"]
        interp.state.answer_call(record.id)
        message = {"role": "tool", "tool_call_id": record.id, "content": record.content}
        add_tool_message(interp, message, {"name": record.name, "tool_call_id": record.id}, [span], scope)


def _add_tool_text(interp: RunContext, attrs: dict, spans: list[Span], scope: int) -> None:
    """Written content: the result of the next call still waiting for one, else a legacy ``function`` message."""
    state = interp.state
    content = "".join(s.text for s in spans)
    call = state.next_pending_call()
    if call is not None:
        state.answer_call(call.id)
        message = {"role": "tool", "tool_call_id": call.id, "content": content}
        marker_attrs = {"name": attrs.get("name", call.name), "tool_call_id": call.id}
    else:
        message = {"role": "function", **{k: _field(v) for k, v in attrs.items()}, "content": content}
        marker_attrs = attrs
    body = [Span(s.text, s.kind, s.variable, 0, None, s.meta) for s in spans]
    add_tool_message(interp, message, marker_attrs, body, scope)


def add_tool_message(interp: RunContext, message: dict, marker_attrs: dict, body: list[Span], scope: int) -> None:
    """Append a whole ``tool``/``function`` message (its markers around ``body``) and announce it (``MessageAdded``);
    used by tool blocks and by the automatic tool loop of ``gen``."""
    spans = [Span(render_role_open("function", marker_attrs), MARKER), *body, Span(ROLE_END, MARKER)]
    interp.state.add_record(message, spans, scope)
    interp.emit(MessageAdded(message, scope != 0))


__all__ = ["chat_role", "named_role", "tool_role", "run_role", "add_tool_message"]
