"""Static views of a run: HTML for notebooks (``_repr_html_``) and a readable text view (``__repr__``).

Why pure functions over ``ProgramState``: the live view, ``Result`` and ``Program`` all render the same way, and a
function of the state alone is easy to test with hostile content. Everything that came from a template, variable,
model or tool is escaped (``html.escape(..., quote=True)``, attribute values included); the output holds no
JavaScript and no external resources. Messages are drawn from span grouping (``span.message``), never by parsing
text, so role markers inside values cannot forge a message box. One walk over the spans (``_sections``) yields typed
sections and items; the HTML and the text renderer only decide how each looks. Template source is highlighted from the
parser's own pieces, and a tag is labelled as generating when its command's registration says so.

Both views take the run's status (running, completed, paused, failed, interrupted): a status line, what an open block
is doing, and the footer follow it; while running, the text of a gen still streaming is drawn inside the message it is
written into. The HTML reads without its stylesheet (untrusted notebooks strip it): structure comes from elements
(blocks for messages, tool calls and arguments, ``<b>`` role names, ``<sup>`` labels) and essential styling is inline
(constant strings, theme-neutral); the stylesheet adds text colours that follow the light or dark theme.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from .highlight import TOKEN_CSS, tag_html
from .models.base import Usage
from .parser import Piece, source_pieces
from .registry import BLOCKS, COMMANDS
from .state import GEN, MARKER, ROLE_START, TOOL_CALL, TOOL_RESULT, VALUE, ProgramState, Span

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import ToolCall

# Run statuses a view can show (the live view while running, then how the run ended).
RUNNING = "running"
COMPLETED = "completed"
PAUSED = "paused"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES = (RUNNING, COMPLETED, PAUSED, FAILED, INTERRUPTED)

# What an open role block is doing, by run status (a block still open when the run stopped is not "writing").
_OPEN_BLOCK_NOTE = {RUNNING: "writing…", PAUSED: "waiting for input", FAILED: "unfinished", INTERRUPTED: "unfinished"}

# Essential styling, inline: JupyterLab strips the <style> block of an untrusted notebook (any shared notebook with
# saved outputs) but keeps inline styles. Only theme-neutral values go inline (layout and translucent tints that work
# on light and dark backgrounds); text colours come from the stylesheet, which follows the theme. Constant strings:
# no value from a template, variable, model or tool is ever placed in a style attribute.
_TINTS = {
    "system": ("rgba(139,92,246,.75)", "rgba(139,92,246,.07)"),
    "user": ("rgba(59,130,246,.75)", "rgba(59,130,246,.07)"),
    "assistant": ("rgba(16,185,129,.75)", "rgba(16,185,129,.07)"),
    "tool": ("rgba(245,158,11,.75)", "rgba(245,158,11,.08)"),
    "function": ("rgba(245,158,11,.75)", "rgba(245,158,11,.08)"),
    "other": ("rgba(6,182,212,.75)", "rgba(6,182,212,.07)"),
    "plain": ("rgba(128,128,128,.35)", "transparent"),
}
_STATUS_TINTS = {
    RUNNING: "rgba(59,130,246,.12)",
    PAUSED: "rgba(234,179,8,.15)",
    FAILED: "rgba(220,38,38,.12)",
    INTERRUPTED: "rgba(234,179,8,.15)",
}
_BOX = "border-radius:4px;margin:0 0 6px 0;padding:4px 8px;border-left:4px solid {};background:{}"
_MONO = "white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
INLINE = {
    "root": "font-size:13px;line-height:1.45;margin:4px 0;max-width:100%",
    "title": "margin:0 0 6px 0",
    "status": "padding:3px 8px;border-radius:4px;margin:0 0 6px 0;white-space:pre-wrap;background:{}",
    "header": "font-size:11px;margin:0 0 2px 0",
    "body": _MONO + ";font-size:12.5px",
    "gen": "background:rgba(16,185,129,.2);border-radius:3px",
    "label": "font-size:9.5px;font-weight:600;border-radius:3px;padding:0 3px;margin-left:2px;"
    "background:rgba(16,185,129,.25)",
    "value": "background:rgba(59,130,246,.1);border-radius:3px",
    "call": "border:1px solid rgba(245,158,11,.45);border-radius:4px;padding:2px 6px;margin:3px 0;"
    "background:rgba(245,158,11,.06)",
    "failed_call": "border:1px solid rgba(220,38,38,.6);border-radius:4px;padding:2px 6px;margin:3px 0;"
    "background:rgba(220,38,38,.07)",
    "badge": "font-size:11px;border-radius:3px;padding:0 4px;background:rgba(220,38,38,.1)",
    "footer": "font-size:11.5px;border-top:1px solid rgba(128,128,128,.3);padding-top:3px;margin-top:4px",
    "program": _MONO + ";font-size:12.5px;background:rgba(128,128,128,.06);border-radius:4px;padding:6px 8px;margin:0",
}

# The stylesheet: text colours from a palette that follows the theme (JupyterLab's variables where they reach 4.5:1
# contrast, with fallbacks for other frontends; a dark palette under JupyterLab's and VS Code's dark themes), fonts
# and niceties. Every selector is scoped under ``.gl-root`` so it cannot restyle the rest of a notebook.
_CSS = (
    """
.gl-root{--gl-muted:#57606a;--gl-system:#6d28d9;--gl-user:#1d4ed8;--gl-assistant:#047857;--gl-tool:#92400e;
 --gl-other:#0e7490;--gl-info:var(--jp-brand-color0,#1d4ed8);--gl-warn:#854d0e;--gl-error:var(--jp-error-color0,#b91c1c);
 font-family:var(--jp-ui-font-family,ui-sans-serif,system-ui,-apple-system,"Segoe UI",sans-serif)}
[data-jp-theme-light="false"] .gl-root,body.vscode-dark .gl-root,body.vscode-high-contrast .gl-root{--gl-muted:#a3acb5;
 --gl-system:#c4b5fd;--gl-user:#93c5fd;--gl-assistant:#6ee7b7;--gl-tool:#fcd34d;--gl-other:#67e8f9;
 --gl-info:var(--jp-brand-color2,#93c5fd);--gl-warn:#fde047;--gl-error:var(--jp-error-color2,#fca5a5)}
.gl-root .gl-title{font-weight:600}
.gl-root .gl-status-running{color:var(--gl-info)}
.gl-root .gl-status-paused,.gl-root .gl-status-interrupted{color:var(--gl-warn)}
.gl-root .gl-status-failed{color:var(--gl-error)}
.gl-root .gl-role{text-transform:uppercase;letter-spacing:.04em}
.gl-root .gl-role-attr{text-transform:none;letter-spacing:0;color:var(--gl-muted)}
.gl-root .gl-role-system .gl-role{color:var(--gl-system)}
.gl-root .gl-role-user .gl-role{color:var(--gl-user)}
.gl-root .gl-role-assistant .gl-role{color:var(--gl-assistant)}
.gl-root .gl-role-tool .gl-role,.gl-root .gl-role-function .gl-role{color:var(--gl-tool)}
.gl-root .gl-role-other .gl-role{color:var(--gl-other)}
.gl-root .gl-label{font-family:var(--jp-ui-font-family,ui-sans-serif,system-ui,sans-serif);vertical-align:super;
 line-height:1}
.gl-root .gl-tool-meta{color:var(--gl-muted);font-size:11px}
.gl-root .gl-error{color:var(--gl-error)}
.gl-root details.gl-hidden-inline{display:inline}
.gl-root details>summary{cursor:pointer;font-size:11px;font-style:italic;display:inline;color:var(--gl-muted)}
.gl-root .gl-open{border-left-style:dashed !important}
.gl-root .gl-footer{color:var(--gl-muted)}
.gl-root .gl-tag{color:var(--gl-user);background:rgba(59,130,246,.08);border-radius:3px}
.gl-root .gl-tag-block{color:var(--gl-system);background:rgba(139,92,246,.08)}
.gl-root .gl-tag-gen{color:var(--gl-assistant);background:rgba(16,185,129,.1);font-weight:600}
.gl-root .gl-tag-comment{color:var(--gl-muted);background:transparent;font-style:italic}
"""
    + TOKEN_CSS
)  # the colours of highlighted template tokens (highlight.py)

CSS = _CSS  # the base style, for other views of the package that render into a ``gl-root`` box (results tables)

_KNOWN_ROLES = {"system", "user", "assistant", "tool", "function"}
_TOOLTIP_LIMIT = 50  # gen entries listed in the footer tooltip (keeps the footer small for huge runs)


def escape(value: Any) -> str:
    """Any value as HTML text that is safe in element content and in quoted attribute values."""
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


_esc = escape


def _role_class(role: str) -> str:
    """CSS class for a role; unknown roles share a neutral class so role names never become class names."""
    return f"gl-role-{role}" if role in _KNOWN_ROLES else "gl-role-other"


# ---- reading the state ---------------------------------------------------------------------------------------


@dataclass
class _Block:
    """A run of consecutive spans that belong to one message (or lie outside any role block)."""

    message: Optional[int]
    start: int
    end: int


def _blocks(spans: list[Span]) -> Iterator[_Block]:
    start = 0
    n = len(spans)
    while start < n:
        message = spans[start].message
        end = start + 1
        while end < n and spans[end].message == message:
            end += 1
        yield _Block(message, start, end)
        start = end


@dataclass
class _MessageInfo:
    role: str
    attrs: dict
    scope: int
    hidden: bool
    closed: bool


def _marker_role(text: str) -> tuple[str, str]:
    """Role and attribute text of an opening marker (only used while a block is still open)."""
    head = text[len(ROLE_START) :].rstrip("\n") if text.startswith(ROLE_START) else text.strip()
    role, _, rest = head.partition(" ")
    return role or "message", rest


def _message_info(
    state: ProgramState, index: int, spans: list[Span], block: _Block, open_by_index: dict[int, Any]
) -> _MessageInfo:
    if 0 <= index < len(state.records):
        record = state.records[index]
        message = record.message
        attrs = {k: message[k] for k in ("name", "tool_call_id") if message.get(k)}
        return _MessageInfo(str(message.get("role", "message")), attrs, record.scope, record.hidden, True)
    opened = open_by_index.get(index)
    if opened is not None:
        return _MessageInfo(
            opened.role, {k: v for k, v in opened.attrs.items() if v is not None}, opened.scope, opened.hidden, False
        )
    first = spans[block.start]
    role, rest = _marker_role(first.text) if first.kind == MARKER else ("message", "")
    return _MessageInfo(role, {"attrs": rest} if rest else {}, first.scope, bool(first.scope), False)


def _usage_text(usage: Any) -> str:
    if not isinstance(usage, Usage):
        return ""
    mark = "~" if usage.estimated else ""
    return (
        f"{mark}{usage.prompt_tokens} prompt + {mark}{usage.completion_tokens} completion = "
        f"{mark}{usage.total_tokens} tokens"
    )


def _seconds(value: Any) -> str:
    return f"{value:.2f}s" if isinstance(value, (int, float)) else ""


def _gen_summary(variable: Optional[str], info: Optional[dict]) -> str:
    """One line per generation: variable, tokens, duration, finish reason, model (whichever are known)."""
    info = info or {}
    parts = [variable or "(unnamed gen)"]
    for piece in (_usage_text(info.get("usage")), _seconds(info.get("duration"))):
        if piece:
            parts.append(piece)
    if info.get("finish_reason"):
        parts.append(f"finish: {info['finish_reason']}")
    if info.get("model"):
        parts.append(f"model: {info['model']}")
    return " · ".join(str(p) for p in parts)


def _call_arguments(call: ToolCall) -> tuple[str, bool]:
    """Pretty JSON arguments and whether they parsed (raw text is shown when the model sent invalid JSON)."""
    try:
        return json.dumps(call.arguments, indent=2, ensure_ascii=False, default=str), True
    except ValueError:
        return call.arguments_json, False


def _record_arguments(record: Any) -> str:
    arguments = getattr(record, "arguments", None)
    if isinstance(arguments, dict):
        return json.dumps(arguments, ensure_ascii=False, default=str)
    return str(getattr(record, "arguments_json", "") or "")


def _content_spans(spans: list[Span], block: _Block) -> Iterator[Span]:
    """A box's spans without role markers, with a streamed gen (consecutive GEN spans of one variable, each but
    the last without final meta) merged into one span so it gets one highlight and one label."""
    i, end = block.start, block.end
    while i < end:
        span = spans[i]
        if span.kind == MARKER and span.message is not None:
            i += 1
            continue  # the box header shows the role; markers are transcript syntax
        j = i
        if span.kind == GEN:
            while (
                j + 1 < end
                and spans[j].meta is None
                and spans[j + 1].kind == GEN
                and spans[j + 1].variable == span.variable
                and spans[j + 1].scope == span.scope
            ):
                j += 1
        if j == i:
            yield span
        else:
            yield Span(
                "".join(spans[k].text for k in range(i, j + 1)),
                GEN,
                span.variable,
                span.scope,
                span.message,
                spans[j].meta,
            )
        i = j + 1


class _Item(NamedTuple):
    """One span of a section's content; ``hidden`` when it lies in a hidden scope other than the section's own."""

    span: Span
    hidden: bool


@dataclass
class _Section:
    """One box of the view: a message (``info``), or text outside any role block (``info`` is None)."""

    info: Optional[_MessageInfo]
    hidden: bool  # the whole section is hidden (a hidden message, or loose text that is all in hidden scopes)
    items: list[_Item]


def _sections(state: ProgramState, spans: Optional[list[Span]] = None) -> Iterator[_Section]:
    """The one walk over the spans both renderers share: boxes in order, blank loose text skipped. ``spans`` is the
    state's own list, or that list plus a gen still streaming."""
    spans = state.spans if spans is None else spans
    open_by_index = {opened.record_index: opened for opened in state.open_roles}
    for block in _blocks(spans):
        if block.message is None:
            if _is_blank(spans, block):
                continue
            all_hidden = all(spans[i].scope for i in range(block.start, block.end))
            yield _Section(None, all_hidden, _items(spans, block, spans[block.start].scope if all_hidden else 0))
            continue
        info = _message_info(state, block.message, spans, block, open_by_index)
        yield _Section(info, bool(info.hidden or info.scope), _items(spans, block, info.scope))


def _items(spans: list[Span], block: _Block, outer_scope: int) -> list[_Item]:
    return [_Item(span, bool(span.scope and span.scope != outer_scope)) for span in _content_spans(spans, block)]


# ---- HTML -----------------------------------------------------------------------------------------------------


def _html_span(span: Span) -> str:
    if span.kind == GEN:
        label = (span.variable or "gen") + _cut_note(span.meta)
        tip = _gen_summary(span.variable, span.meta) if span.meta is not _STREAMING else "generating…"
        return (
            f'<span class="gl-gen" style="{INLINE["gen"]}" title="{_esc(tip)}">{_esc(span.text)}'
            f'<sup class="gl-label" style="{INLINE["label"]}">{_esc(label)}</sup></span>'
        )
    if span.kind == VALUE:
        return f'<span class="gl-value" style="{INLINE["value"]}">{_esc(span.text)}</span>'
    if span.kind == TOOL_CALL:
        return _html_tool_call(span)
    if span.kind == TOOL_RESULT:
        return _html_tool_result(span)
    return _esc(span.text)


def _tool_box(kind: str, title: str, head: str, *rows: str, failed: bool = False) -> str:
    """A tool call or result: a block of its own, the header line (bold name, badges) then one block per row."""
    classes = f"gl-{kind} gl-error" if failed else f"gl-{kind}"
    style = INLINE["failed_call" if failed else "call"]
    body = "".join(f'<div class="gl-args">{row}</div>' for row in rows)
    return (
        f'<div class="{classes}" style="{style}" title="{_esc(title)}">'
        f'<div class="gl-tool-head">{head}</div>{body}</div>'
    )


def _badge(text: str) -> str:
    return f' <span class="gl-error-type" style="{INLINE["badge"]}">{_esc(text)}</span>'


def _html_tool_call(span: Span) -> str:
    call = (span.meta or {}).get("call")
    if call is None:
        return _tool_box("tool-call", "tool call", _esc(span.text))
    arguments, valid = _call_arguments(call)
    note = "" if valid else _badge("invalid JSON arguments")
    source = f" · from {span.variable}" if span.variable else ""
    head = f'<b class="gl-tool-name">&#8594; {_esc(call.name)}</b>{note}'
    return _tool_box("tool-call", f"tool call {call.id}{source}", head, _esc(arguments))


def _html_tool_result(span: Span) -> str:
    record = (span.meta or {}).get("record")
    if record is None:
        return _tool_box("tool-result", "tool result", _esc(span.text))
    name = getattr(record, "name", "") or "tool"
    error = getattr(record, "error", None)
    tip = f"{name}({_record_arguments(record)}) · id {getattr(record, 'id', '')}"
    seconds = getattr(record, "duration", None)
    duration = _seconds(seconds) if seconds else ""
    meta = f' <span class="gl-tool-meta">{_esc(duration)}</span>' if duration else ""
    head = f'<b class="gl-tool-name">&#8592; {_esc(name)}</b>'
    if error:
        error_type = getattr(record, "error_type", None) or "error"
        content = getattr(record, "content", "") or ""
        rows = [_esc(error)] + ([] if not content or str(error) in str(content) else [_esc(content)])
        return _tool_box("tool-result", tip, head + _badge(error_type) + meta, *rows, failed=True)
    content = getattr(record, "content", None)
    return _tool_box("tool-result", tip, head + meta, _esc(span.text if content is None else content))


def _html_body(items: list[_Item]) -> str:
    """The content of one box; a run of hidden items is collapsed inline."""
    out: list[str] = []
    hidden_run: list[str] = []
    for span, hidden in items:
        piece = _html_span(span)
        if hidden:
            hidden_run.append(piece)
            continue
        if hidden_run:
            out.append(_hidden_inline(hidden_run))
            hidden_run = []
        out.append(piece)
    if hidden_run:
        out.append(_hidden_inline(hidden_run))
    return "".join(out)


def _hidden_inline(pieces: list[str]) -> str:
    return f'<details class="gl-hidden-inline"><summary>hidden</summary>{"".join(pieces)}</details>'


def _short_id(value: str) -> str:
    """Tool-call ids are long random strings: the header shows the start, the tooltip the whole id."""
    return value if len(value) <= 12 else value[:10] + "…"


def _html_attr(key: str, value: Any) -> str:
    text = str(value)
    if key == "tool_call_id" and len(text) > 12:
        return f' <span class="gl-role-attr" title="{_esc(key)}={_esc(text)}">id {_esc(_short_id(text))}</span>'
    return f' <span class="gl-role-attr">{_esc(key)}={_esc(text)}</span>'


def _html_section(section: _Section, status: str) -> str:
    body = f'<div class="gl-body" style="{INLINE["body"]}">{_html_body(section.items)}</div>'
    info = section.info
    if info is None:
        box = f'<div class="gl-msg gl-plain" style="{_BOX.format(*_TINTS["plain"])}">{body}</div>'
        return f'<details class="gl-hidden"><summary>hidden text</summary>{box}</details>' if section.hidden else box
    attrs = "".join(_html_attr(k, v) for k, v in info.attrs.items())
    note = "" if info.closed else f' <span class="gl-role-attr">({_OPEN_BLOCK_NOTE.get(status, "unfinished")})</span>'
    role_key = info.role if info.role in _KNOWN_ROLES else "other"
    classes = f"gl-msg {_role_class(info.role)}" + ("" if info.closed else " gl-open")
    box = (
        f'<div class="{classes}" style="{_BOX.format(*_TINTS[role_key])}">'
        f'<div class="gl-role" style="{INLINE["header"]}"><b>{_esc(info.role)}</b>{attrs}{note}</div>{body}</div>'
    )
    if section.hidden:
        return f'<details class="gl-hidden"><summary>hidden {_esc(info.role)} message</summary>{box}</details>'
    return box


def _is_blank(spans: list[Span], block: _Block) -> bool:
    return all(
        spans[i].kind not in (TOOL_CALL, TOOL_RESULT) and not spans[i].text.strip()
        for i in range(block.start, block.end)
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _tokens_text(usage: Usage) -> str:
    """``132 tokens (120 prompt + 12 completion)``; ``~15 tokens, estimated (…)`` when tiktoken counted them."""
    mark, note = ("~", ", estimated") if usage.estimated else ("", "")
    return (
        f"{mark}{usage.total_tokens} tokens{note} ({usage.prompt_tokens} prompt + {usage.completion_tokens} completion)"
    )


def _footer_parts(state: ProgramState, status: str) -> list[tuple[str, str]]:
    """(text, tooltip) pieces of the footer, shared by the HTML and the text view."""
    log = state.gen_log
    in_flight = status == RUNNING and getattr(state, "streaming", None) is not None
    if not log:
        if in_flight:
            parts = [("1 model call running", "the first model call is running")]
        else:
            none = {RUNNING: "no model calls yet", PAUSED: "no model calls yet", COMPLETED: "no model calls"}
            parts = [(none.get(status, "no model call completed"), "")]
    else:
        lines = [_gen_summary(entry.get("variable"), entry) for entry in log[:_TOOLTIP_LIMIT]]
        if len(log) > _TOOLTIP_LIMIT:
            lines.append(f"… and {len(log) - _TOOLTIP_LIMIT} more")
        tip = "\n".join(lines)
        calls = _plural(len(log), "model call") + (", 1 running" if in_flight else "")
        total_time = sum(entry.get("duration") or 0.0 for entry in log)
        parts = [
            (_tokens_text(state.usage), _usage_text(state.usage)),
            (calls, tip),
            (f"model time {total_time:.2f}s", tip),
        ]
    if state.tool_calls:
        failed = sum(1 for r in state.tool_calls if getattr(r, "error", None))
        parts.append((_plural(len(state.tool_calls), "tool call") + (f", {failed} failed" if failed else ""), ""))
    return parts


def _footer_html(state: ProgramState, status: str) -> str:
    pieces = [
        f'<span title="{_esc(tip)}">{_esc(text)}</span>' if tip else f"<span>{_esc(text)}</span>"
        for text, tip in _footer_parts(state, status)
    ]
    return f'<div class="gl-footer" style="{INLINE["footer"]}">{" · ".join(pieces)}</div>'


def _status_text(status: str, error: Optional[str]) -> str:
    if status == FAILED:
        return f"Failed: {error}" if error else "Failed"
    return {RUNNING: "Running…", PAUSED: "Paused: waiting for input", INTERRUPTED: "Interrupted"}.get(status, "")


def _status_html(status: str, error: Optional[str]) -> str:
    text = _status_text(status, error)
    if not text:
        return ""
    style = INLINE["status"].format(_STATUS_TINTS[status])
    return f'<div class="gl-status gl-status-{status}" style="{style}">{_esc(text)}</div>'


def _check_status(status: str, error: Optional[str]) -> str:
    if error is not None:
        return FAILED
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status


# A streamed gen's text lives in ``state.streaming`` until the call ends; the live view draws it as a span of the
# message it is written into, marked with this meta (its tooltip says it is still being generated).
_STREAMING: dict = {}


def _with_stream(state: ProgramState, status: str) -> list[Span]:
    """The spans, plus the text of the gen now streaming (while running) where it will land: in the open block."""
    streaming = getattr(state, "streaming", None)
    if status != RUNNING or not streaming or not streaming[1]:
        return state.spans
    role = state.open_roles[-1] if state.open_roles else None
    message = role.record_index if role is not None and role.role not in ("function", "tool") else None
    return [*state.spans, Span(streaming[1], GEN, streaming[0], state.current_scope, message, _STREAMING)]


def render_html(
    state: ProgramState,
    *,
    title: str | None = None,
    status: str = COMPLETED,
    error: str | None = None,
) -> str:
    """The whole run as one self-contained HTML fragment: a status line unless completed, a box per message (gens
    labelled, tool calls and results as blocks), a usage footer. Readable with its stylesheet stripped."""
    status = _check_status(status, error)
    out: list[str] = [f'<div class="gl-root" style="{INLINE["root"]}"><style>', _CSS, "</style>"]
    if title:
        out.append(f'<div class="gl-title" style="{INLINE["title"]}"><b>{_esc(title)}</b></div>')
    out.append(_status_html(status, error))
    out.extend(_html_section(section, status) for section in _sections(state, _with_stream(state, status)))
    out.append(_footer_html(state, status))
    out.append("</div>")
    return "".join(out)


# ---- program source -------------------------------------------------------------------------------------------


def _tag_class(piece: Piece) -> str:
    """Comments, tags of commands and blocks whose output is generated model text, block structure, the rest."""
    if piece.kind == "comment":
        return "gl-tag gl-tag-comment"
    head = piece.head
    spec = (BLOCKS.get(head) if piece.kind in ("open", "close") else COMMANDS.get(head)) if head else None
    if spec is not None and spec.generates:
        return "gl-tag gl-tag-gen"
    if piece.kind in ("open", "close", "sep"):
        return "gl-tag gl-tag-block"
    return "gl-tag"


def render_program_html(source: str, name: str | None = None) -> str:
    """The template source, escaped, in a ``<pre>`` with its ``{{tags}}`` subtly highlighted. Invalid templates are
    shown too: a tag that does not parse gets the plain tag style, and from an unclosed ``{{`` on the text is plain."""
    out: list[str] = [f'<div class="gl-root" style="{INLINE["root"]}"><style>', _CSS, "</style>"]
    if name:
        out.append(f'<div class="gl-title" style="{INLINE["title"]}"><b>{_esc(name)}</b></div>')
    out.append(f'<pre class="gl-program" style="{INLINE["program"]}">')
    for piece in source_pieces(source):
        text = source[piece.start : piece.end]
        out.append(
            _esc(text)
            if piece.kind in ("text", "escaped")
            else f'<span class="{_tag_class(piece)}">{tag_html(text)}</span>'
        )
    out.append("</pre></div>")
    return "".join(out)


# ---- text ---------------------------------------------------------------------------------------------------

# Control characters (ANSI escapes above all) from values are shown, never executed by the terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}

_ANSI = {
    "system": "\x1b[35m",
    "user": "\x1b[34m",
    "assistant": "\x1b[32m",
    "tool": "\x1b[33m",
    "function": "\x1b[33m",
    "other": "\x1b[36m",
    "gen": "\x1b[1;32m",
    "label": "\x1b[2;32m",
    "dim": "\x1b[2m",
    "error": "\x1b[31m",
    "bold": "\x1b[1m",
    "reset": "\x1b[0m",
}


def _clean(text: Any) -> str:
    return (text if isinstance(text, str) else str(text)).translate(_CONTROL)


class _Painter:
    """Wraps text in ANSI colours when asked, and is a no-op otherwise."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, style: str, text: str) -> str:
        if not self.color or not text:
            return text
        return f"{_ANSI[style]}{text}{_ANSI['reset']}"


def _cut_note(meta: Optional[dict]) -> str:
    """Shown beside a generation that ran out of tokens (its text ends where max_tokens cut it, not where it ended)."""
    return " · finish: length" if (meta or {}).get("finish_reason") == "length" else ""


def _text_span(span: Span, paint: _Painter) -> str:
    if span.kind == GEN:
        label = paint("label", f"⟨{_clean(span.variable)}⟩") if span.variable and paint.color else ""
        cut = _cut_note(span.meta)
        return paint("gen", _clean(span.text)) + label + (paint("label", f"⟨{cut[3:]}⟩") if cut else "")
    if span.kind == TOOL_CALL:
        call = (span.meta or {}).get("call")
        if call is None:
            return _clean(span.text)
        arguments, valid = _call_arguments(call)
        compact = json.dumps(call.arguments, ensure_ascii=False, default=str) if valid else arguments
        note = " (invalid JSON arguments)" if not valid else ""
        return paint("bold", f"→ {_clean(call.name)}") + f"({_clean(compact)}){note}"
    if span.kind == TOOL_RESULT:
        record = (span.meta or {}).get("record")
        if record is None:
            return _clean(span.text)
        name = _clean(getattr(record, "name", "") or "tool")
        error = getattr(record, "error", None)
        if error:
            kind = _clean(getattr(record, "error_type", None) or "error")
            return paint("error", f"✗ {name} [{kind}]: {_clean(error)}")
        content = getattr(record, "content", None)
        return paint("bold", f"← {name}: ") + _clean(span.text if content is None else content)
    return _clean(span.text)


def _text_body(items: list[_Item], paint: _Painter) -> str:
    out: list[str] = []
    for span, hidden in items:
        piece = _text_span(span, paint)
        if hidden:
            piece = paint("dim", f"[hidden: {piece}]")
        if span.kind == TOOL_CALL:  # each call on its own line
            if out and not out[-1].endswith("\n"):
                out.append("\n")
            piece += "\n"
        out.append(piece)
    return "".join(out).strip("\n")


def _text_section(section: _Section, paint: _Painter, status: str) -> str:
    body = _text_body(section.items, paint)
    info = section.info
    if info is None:
        header = paint("dim", "── text (hidden) ──" if section.hidden else "── text ──")
    else:
        extras = "".join(f" {_clean(k)}={_clean(v)}" for k, v in info.attrs.items())
        note = "" if info.closed else f" ({_OPEN_BLOCK_NOTE.get(status, 'unfinished')})"
        flags = (" (hidden)" if section.hidden else "") + note
        header = paint(info.role if info.role in _KNOWN_ROLES else "other", f"── {_clean(info.role)}{extras}{flags} ──")
    return header + "\n" + (paint("dim", body) if section.hidden else body)


def render_text(state: ProgramState, *, color: bool = False, status: str = COMPLETED, error: str | None = None) -> str:
    """A readable terminal view: a status line unless completed, one section per message with its role, gens
    highlighted when ``color``, a usage footer. Also the plain-text form of the notebook views."""
    status = _check_status(status, error)
    paint = _Painter(color)
    headline = _status_text(status, error)
    sections = [paint("error" if status == FAILED else "bold", _clean(headline))] if headline else []
    sections.extend(_text_section(section, paint, status) for section in _sections(state, _with_stream(state, status)))
    sections.append(paint("dim", " · ".join(text for text, _tip in _footer_parts(state, status))))
    return "\n".join(sections)
