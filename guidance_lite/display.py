"""Static views of a run: HTML for notebooks (``_repr_html_``) and a readable text view (``__repr__``).

Why pure functions over ``ProgramState``: the live view, ``Result`` and ``Program`` all render the same way, and a
function of the state alone is easy to test with hostile content. Everything that came from a template, variable,
model or tool is escaped (``html.escape(..., quote=True)``, attribute values included); the output holds no
JavaScript and no external resources. Messages are drawn from span grouping (``span.message``), never by parsing
text, so role markers inside values cannot forge a message box. One walk over the spans (``_sections``) yields typed
sections and items; the HTML and the text renderer only decide how each looks. Template source is highlighted from the
parser's own pieces, and a tag is labelled as generating when its command's registration says so.
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

# The only CSS; every selector is scoped under ``.gl-root`` so it cannot restyle the rest of a notebook.
_CSS = (
    """
.gl-root{font-family:ui-sans-serif,system-ui,-apple-system,"Segoe UI",sans-serif;font-size:13px;line-height:1.45;
 margin:4px 0;max-width:100%}
.gl-root .gl-title{font-weight:600;margin:0 0 6px 0}
.gl-root .gl-status{padding:3px 8px;border-radius:4px;margin:0 0 6px 0;font-size:12px}
.gl-root .gl-status-running{background:rgba(59,130,246,.12);color:#2563eb}
.gl-root .gl-status-paused{background:rgba(234,179,8,.15);color:#a16207}
.gl-root .gl-status-error{background:rgba(220,38,38,.12);color:#dc2626;white-space:pre-wrap}
.gl-root .gl-msg{border-left:4px solid rgba(128,128,128,.5);background:rgba(128,128,128,.06);border-radius:4px;
 margin:0 0 6px 0;padding:4px 8px}
.gl-root .gl-plain{border-left-color:rgba(128,128,128,.25);background:transparent}
.gl-root .gl-role{font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;opacity:.85;
 margin-bottom:2px}
.gl-root .gl-role-attr{font-weight:400;text-transform:none;letter-spacing:0;opacity:.8}
.gl-root .gl-role-system{border-left-color:#8b5cf6;background:rgba(139,92,246,.07)}
.gl-root .gl-role-system .gl-role{color:#7c3aed}
.gl-root .gl-role-user{border-left-color:#3b82f6;background:rgba(59,130,246,.07)}
.gl-root .gl-role-user .gl-role{color:#2563eb}
.gl-root .gl-role-assistant{border-left-color:#10b981;background:rgba(16,185,129,.07)}
.gl-root .gl-role-assistant .gl-role{color:#059669}
.gl-root .gl-role-tool,.gl-root .gl-role-function{border-left-color:#f59e0b;background:rgba(245,158,11,.08)}
.gl-root .gl-role-tool .gl-role,.gl-root .gl-role-function .gl-role{color:#b45309}
.gl-root .gl-body{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
 font-size:12.5px}
.gl-root .gl-gen{background:rgba(16,185,129,.2);border-radius:3px;padding:0 1px}
.gl-root .gl-label{font-family:ui-sans-serif,system-ui,sans-serif;font-size:9.5px;font-weight:600;
 background:rgba(16,185,129,.35);border-radius:3px;padding:0 3px;margin-left:2px;vertical-align:super}
.gl-root .gl-value{background:rgba(59,130,246,.1);border-radius:3px}
.gl-root .gl-tool-call,.gl-root .gl-tool-result{display:block;border:1px solid rgba(245,158,11,.45);
 border-radius:4px;padding:2px 6px;margin:3px 0;background:rgba(245,158,11,.06)}
.gl-root .gl-tool-name{font-weight:700}
.gl-root .gl-tool-meta{opacity:.6;font-size:11px;margin-left:6px}
.gl-root .gl-args{display:block;margin:2px 0 0 0;white-space:pre-wrap}
.gl-root .gl-error{border-color:rgba(220,38,38,.6);background:rgba(220,38,38,.07);color:#dc2626}
.gl-root .gl-error-type{font-weight:700;font-size:11px;border-radius:3px;padding:0 4px;margin-left:6px;
 background:rgba(220,38,38,.15)}
.gl-root details.gl-hidden{opacity:.55;margin:0 0 6px 0}
.gl-root details.gl-hidden-inline{display:inline;opacity:.55}
.gl-root details.gl-hidden>summary,.gl-root details.gl-hidden-inline>summary{cursor:pointer;font-size:11px;
 font-style:italic;display:inline}
.gl-root .gl-open{border-left-style:dashed}
.gl-root .gl-footer{font-size:11.5px;opacity:.75;border-top:1px solid rgba(128,128,128,.3);padding-top:3px;
 margin-top:4px}
.gl-root .gl-footer span{margin-right:12px}
.gl-root .gl-program{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
 font-size:12.5px;background:rgba(128,128,128,.06);border-radius:4px;padding:6px 8px;margin:0}
.gl-root .gl-tag{color:#2563eb;background:rgba(59,130,246,.08);border-radius:3px}
.gl-root .gl-tag-block{color:#7c3aed;background:rgba(139,92,246,.08)}
.gl-root .gl-tag-gen{color:#059669;background:rgba(16,185,129,.1);font-weight:600}
.gl-root .gl-tag-comment{color:#6b7280;background:transparent;font-style:italic}
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


def _sections(state: ProgramState) -> Iterator[_Section]:
    """The one walk over the spans both renderers share: boxes in order, blank loose text skipped."""
    spans = state.spans
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
        label = span.variable or "gen"
        tip = _gen_summary(span.variable, span.meta)
        return (
            f'<span class="gl-gen" title="{_esc(tip)}">{_esc(span.text)}'
            f'<span class="gl-label">{_esc(label)}</span></span>'
        )
    if span.kind == VALUE:
        return f'<span class="gl-value">{_esc(span.text)}</span>'
    if span.kind == TOOL_CALL:
        return _html_tool_call(span)
    if span.kind == TOOL_RESULT:
        return _html_tool_result(span)
    return _esc(span.text)


def _html_tool_call(span: Span) -> str:
    call = (span.meta or {}).get("call")
    if call is None:
        return f'<span class="gl-tool-call">{_esc(span.text)}</span>'
    arguments, valid = _call_arguments(call)
    note = "" if valid else '<span class="gl-error-type">invalid JSON arguments</span>'
    source = f" · from {span.variable}" if span.variable else ""
    return (
        f'<span class="gl-tool-call" title="{_esc("tool call " + call.id + source)}">'
        f'<span class="gl-tool-name">&#8594; {_esc(call.name)}</span>{note}'
        f'<span class="gl-args">{_esc(arguments)}</span></span>'
    )


def _html_tool_result(span: Span) -> str:
    record = (span.meta or {}).get("record")
    if record is None:
        return f'<span class="gl-tool-result">{_esc(span.text)}</span>'
    name = getattr(record, "name", "") or "tool"
    error = getattr(record, "error", None)
    tip = f"{name}({_record_arguments(record)}) · id {getattr(record, 'id', '')}"
    seconds = getattr(record, "duration", None)
    duration = _seconds(seconds) if seconds else ""
    meta = f'<span class="gl-tool-meta">{_esc(duration)}</span>' if duration else ""
    if error:
        error_type = getattr(record, "error_type", None) or "error"
        content = getattr(record, "content", "") or ""
        detail = "" if not content or str(error) in str(content) else f'<span class="gl-args">{_esc(content)}</span>'
        return (
            f'<span class="gl-tool-result gl-error" title="{_esc(tip)}">'
            f'<span class="gl-tool-name">&#8592; {_esc(name)}</span>'
            f'<span class="gl-error-type">{_esc(error_type)}</span>{meta}'
            f'<span class="gl-args">{_esc(error)}</span>{detail}</span>'
        )
    content = getattr(record, "content", None)
    if content is None:
        content = span.text
    return (
        f'<span class="gl-tool-result" title="{_esc(tip)}">'
        f'<span class="gl-tool-name">&#8592; {_esc(name)}</span>{meta}'
        f'<span class="gl-args">{_esc(content)}</span></span>'
    )


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


def _html_section(section: _Section) -> str:
    body = _html_body(section.items)
    info = section.info
    if info is None:
        box = f'<div class="gl-msg gl-plain"><div class="gl-body">{body}</div></div>'
        return f'<details class="gl-hidden"><summary>hidden text</summary>{box}</details>' if section.hidden else box
    attrs = "".join(f' <span class="gl-role-attr">{_esc(k)}={_esc(v)}</span>' for k, v in info.attrs.items())
    status = "" if info.closed else ' <span class="gl-role-attr">(writing…)</span>'
    classes = f"gl-msg {_role_class(info.role)}" + ("" if info.closed else " gl-open")
    box = (
        f'<div class="{classes}"><div class="gl-role">{_esc(info.role)}{attrs}{status}</div>'
        f'<div class="gl-body">{body}</div></div>'
    )
    if section.hidden:
        return f'<details class="gl-hidden"><summary>hidden {_esc(info.role)} message</summary>{box}</details>'
    return box


def _is_blank(spans: list[Span], block: _Block) -> bool:
    return all(
        spans[i].kind not in (TOOL_CALL, TOOL_RESULT) and not spans[i].text.strip()
        for i in range(block.start, block.end)
    )


def _footer_html(state: ProgramState) -> str:
    log = state.gen_log
    total_time = sum(entry.get("duration") or 0.0 for entry in log)
    usage = state.usage
    lines = [_gen_summary(entry.get("variable"), entry) for entry in log[:_TOOLTIP_LIMIT]]
    if len(log) > _TOOLTIP_LIMIT:
        lines.append(f"… and {len(log) - _TOOLTIP_LIMIT} more")
    calls_tip = "\n".join(lines) if lines else "no model calls"
    estimated = " (estimated)" if usage.estimated else ""
    parts = [
        f'<span title="{_esc(_usage_text(usage))}">tokens: {usage.total_tokens}{estimated} '
        f"({usage.prompt_tokens} prompt, {usage.completion_tokens} completion)</span>",
        f'<span title="{_esc(calls_tip)}">{len(log)} model call{"" if len(log) == 1 else "s"}</span>',
        f'<span title="{_esc(calls_tip)}">model time {total_time:.2f}s</span>',
    ]
    if state.tool_calls:
        failed = sum(1 for r in state.tool_calls if getattr(r, "error", None))
        failed_text = f", {failed} failed" if failed else ""
        parts.append(
            f"<span>{len(state.tool_calls)} tool call{'' if len(state.tool_calls) == 1 else 's'}{failed_text}</span>"
        )
    return f'<div class="gl-footer">{"".join(parts)}</div>'


def _status_html(completed: bool, running: bool, error: Optional[str]) -> str:
    if error is not None:
        return f'<div class="gl-status gl-status-error">Failed: {_esc(error)}</div>'
    if running:
        return '<div class="gl-status gl-status-running">Running…</div>'
    if not completed:
        return '<div class="gl-status gl-status-paused">Paused: waiting for input</div>'
    return ""


def render_html(
    state: ProgramState,
    *,
    title: str | None = None,
    completed: bool = True,
    running: bool = False,
    error: str | None = None,
) -> str:
    """The whole run as one self-contained HTML fragment: a box per message, gens labelled, a usage footer."""
    out: list[str] = ['<div class="gl-root"><style>', _CSS, "</style>"]
    if title:
        out.append(f'<div class="gl-title">{_esc(title)}</div>')
    out.append(_status_html(completed, running, error))
    out.extend(_html_section(section) for section in _sections(state))
    streaming = getattr(state, "streaming", None)
    if running and streaming and streaming[1]:
        label = _esc(streaming[0] or "gen")
        out.append(
            f'<div class="gl-msg gl-plain"><div class="gl-body"><span class="gl-gen" title="generating">'
            f'<span class="gl-label">{label}</span>{_esc(streaming[1])}</span></div></div>'
        )
    out.append(_footer_html(state))
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
    out: list[str] = ['<div class="gl-root"><style>', _CSS, "</style>"]
    if name:
        out.append(f'<div class="gl-title">{_esc(name)}</div>')
    out.append('<pre class="gl-program">')
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


def _text_span(span: Span, paint: _Painter) -> str:
    if span.kind == GEN:
        label = paint("label", f"⟨{_clean(span.variable)}⟩") if span.variable and paint.color else ""
        return paint("gen", _clean(span.text)) + label
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


def _text_section(section: _Section, paint: _Painter) -> str:
    body = _text_body(section.items, paint)
    info = section.info
    if info is None:
        header = paint("dim", "── text (hidden) ──" if section.hidden else "── text ──")
    else:
        extras = "".join(f" {_clean(k)}={_clean(v)}" for k, v in info.attrs.items())
        flags = (" (hidden)" if section.hidden else "") + ("" if info.closed else " (writing…)")
        header = paint(info.role if info.role in _KNOWN_ROLES else "other", f"── {_clean(info.role)}{extras}{flags} ──")
    return header + "\n" + (paint("dim", body) if section.hidden else body)


def render_text(state: ProgramState, *, color: bool = False) -> str:
    """A readable terminal view: one section per message with its role, gens highlighted when ``color``."""
    paint = _Painter(color)
    sections = [_text_section(section, paint) for section in _sections(state)]
    usage = state.usage
    total_time = sum(entry.get("duration") or 0.0 for entry in state.gen_log)
    estimated = " (estimated)" if usage.estimated else ""
    footer = (
        f"tokens: {usage.total_tokens}{estimated} ({usage.prompt_tokens} prompt, "
        f"{usage.completion_tokens} completion) · {len(state.gen_log)} model call"
        f"{'' if len(state.gen_log) == 1 else 's'} · model time {total_time:.2f}s"
    )
    if state.tool_calls:
        footer += f" · {len(state.tool_calls)} tool call{'' if len(state.tool_calls) == 1 else 's'}"
    sections.append(paint("dim", footer))
    return "\n".join(sections)
