"""Program state: the append-only transcript (spans), messages built from role blocks, variables, tool-call bookkeeping.

Why append-only: a model request captures ``(len(spans), len(records), open hidden scopes)`` and renders its
prompt/messages lazily from that snapshot, so building a request never costs more as the transcript grows, and a
request recorded by ``Mock`` still shows exactly what was sent. ``text`` is a projection of the spans in ChatML
markers; ``messages`` is built from role-block records, never by parsing text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from .errors import GuidanceLiteError
from .models.base import ToolCall, Usage

if TYPE_CHECKING:  # pragma: no cover
    from .tools import Tool, ToolCallRecord

# span kinds
TEXT = "text"  # literal template text
VALUE = "value"  # an inserted {{expr}} value
GEN = "gen"  # model output
MARKER = "marker"  # <|im_start|>role / <|im_end|>
TOOL_CALL = "tool_call"  # an assistant tool call, rendered readably
TOOL_RESULT = "tool_result"  # a tool's result inside a function block
TOOL_DEF = "tool_def"  # {{>tool_def}}: a readable line naming the declared tools (in text, not in message content)

LITERAL_KINDS = frozenset({TEXT, MARKER})  # template text and role markers; every other kind holds a value

ROLE_START = "<|im_start|>"
ROLE_END = "<|im_end|>"


class Span(NamedTuple):
    """One piece of the transcript. ``scope`` > 0 marks text written inside a hidden block (scope id).

    A tuple on purpose: spans holding only strings and ints are untracked by Python's cyclic GC, so a long transcript
    does not make every later collection slower (the cost per ``gen`` stays flat as programs grow).
    """

    text: str
    kind: str = TEXT
    variable: Optional[str] = None
    scope: int = 0
    message: Optional[int] = None  # index of the MessageRecord this span belongs to
    meta: Optional[dict] = None  # gen: usage/duration/finish_reason; tool spans: the call or record


@dataclass(slots=True)
class MessageRecord:
    """A closed role block: the OpenAI-format message plus where it came from."""

    message: dict
    scope: int = 0  # hidden-block scope id (0: visible); hidden role blocks get their own scope
    hidden: bool = False
    span_start: int = 0
    span_end: int = 0
    line: int = 0


@dataclass
class OpenRole:
    """A role block that has opened but not yet closed."""

    role: str
    attrs: dict
    hidden: bool
    scope: int
    span_start: int
    record_index: int  # index the record will get when it closes
    content_start: int  # first span of the content (after the opening marker)
    tool_calls: list[ToolCall] = field(default_factory=list)
    line: int = 0


def render_role_open(role: str, attrs: dict) -> str:
    parts = [ROLE_START + role]
    for key, value in attrs.items():
        if value is None:
            continue
        parts.append(f' {key}="{value}"')
    return "".join(parts) + "\n"


def render_tool_call(call: ToolCall) -> str:
    """How a tool call reads in ``text`` (documented in README): a hermes-like tag with the call as JSON."""
    try:
        args: Any = call.arguments
    except ValueError:
        args = call.arguments_json
    body = json.dumps({"name": call.name, "arguments": args}, ensure_ascii=False, default=str)
    return f'<tool_call id="{call.id}">{body}</tool_call>'


class ToolCallBookkeepingError(GuidanceLiteError, ValueError):
    """A tool-call id without exactly one result (raised before a request is sent)."""


class ProgramState:
    """Everything a run produces. The interpreter writes it; backends read it only through request snapshots."""

    def __init__(self, variables: Optional[dict] = None) -> None:
        self.variables: dict[str, Any] = dict(variables or {})
        self.spans: list[Span] = []
        self.records: list[MessageRecord] = []
        self.open_roles: list[OpenRole] = []
        self.open_scopes: list[int] = []  # hidden scopes currently open
        self._next_scope = 1
        self.tool_calls: list[ToolCallRecord] = []
        self.pending_calls: dict[str, ToolCall] = {}  # call id -> call still waiting for its result
        self.answered_calls: set[str] = set()
        self.program_tools: dict[str, Tool] = {}  # {{>tool_def}}: the program's tools by name (gens pick from them)
        self.usage = Usage()
        self.gen_log: list[dict] = []  # one entry per model call: variable, usage, duration, finish_reason
        self._text_cache: tuple[int, str] = (0, "")
        self.streaming: Optional[list] = None  # [variable, text so far] while a gen streams (for the live view)
        self.uses_roles = False  # any role block opened: requests go out as chat messages
        self.loose_text_line: Optional[int] = None  # first line of non-whitespace text written outside roles

    # ---- scopes -------------------------------------------------------------------------------------------
    def open_hidden_scope(self) -> int:
        scope = self._next_scope
        self._next_scope += 1
        self.open_scopes.append(scope)
        return scope

    def close_hidden_scope(self, scope: int) -> None:
        if scope in self.open_scopes:
            self.open_scopes.remove(scope)

    @contextmanager
    def hidden(self, flag: bool = True) -> Iterator[Optional[int]]:
        """Text written inside goes to a new hidden scope when ``flag`` is true (yields its id, else None): it
        counts while the scope is open and stays out of later context, ``messages`` and ``text`` afterwards."""
        if not flag:
            yield None
            return
        scope = self.open_hidden_scope()
        try:
            yield scope
        finally:
            self.close_hidden_scope(scope)

    @property
    def current_scope(self) -> int:
        return self.open_scopes[-1] if self.open_scopes else 0

    # ---- writing --------------------------------------------------------------------------------------------
    def append(
        self, text: str, kind: str = TEXT, variable: Optional[str] = None, meta: Optional[dict] = None, line: int = 0
    ) -> Optional[Span]:
        if not text and kind not in (TOOL_CALL, TOOL_RESULT):
            return None
        role = self.open_roles[-1] if self.open_roles else None
        span = Span(text, kind, variable, self.current_scope, role.record_index if role else None, meta)
        self.spans.append(span)
        if role is None and kind != MARKER and self.loose_text_line is None and not span.scope and text.strip():
            leading = len(text) - len(text.lstrip())
            self.loose_text_line = line + text.count("\n", 0, leading) if line else -1
        return span

    def open_role(self, role: str, attrs: dict, hidden: bool = False, line: int = 0) -> OpenRole:
        if self.open_roles:
            outer = self.open_roles[-1]
            raise ValueError(
                f"role block '{role}' cannot be nested inside the open '{outer.role}' block "
                f"(opened on line {outer.line})"
            )
        self.uses_roles = True
        scope = self.open_hidden_scope() if hidden else self.current_scope
        start = len(self.spans)
        opened = OpenRole(role, dict(attrs), hidden, scope, start, len(self.records), start, line=line)
        self.open_roles.append(opened)
        if role not in ("function", "tool"):  # tool blocks render their markers when they close
            self.spans.append(Span(render_role_open(role, opened.attrs), MARKER, None, scope, opened.record_index))
            opened.content_start = len(self.spans)
        return opened

    def visible_scopes(self) -> set[int]:
        """Scopes whose text counts right now: visible text plus the hidden blocks still open."""
        return {0, *self.open_scopes}

    def content_of(self, opened: OpenRole) -> str:
        """The block's text so far, without tool-call and tool-definition renderings and without hidden blocks that
        already closed."""
        visible = self.visible_scopes()
        return "".join(
            s.text
            for s in self.spans[opened.content_start :]
            if s.kind not in (TOOL_CALL, TOOL_DEF) and s.message == opened.record_index and s.scope in visible
        )

    def visible_text_since(self, start: int) -> str:
        """Text written since span ``start`` that is visible now (role markers excluded)."""
        visible = self.visible_scopes()
        return "".join(s.text for s in self.spans[start:] if s.kind != MARKER and s.scope in visible)

    def close_role(self, opened: OpenRole, message: dict, extra_spans: Iterable[Span] = ()) -> MessageRecord:
        """Turn the open block into a message record; ``extra_spans`` (tool blocks) are appended first."""
        for span in extra_spans:
            self.spans.append(span._replace(scope=opened.scope, message=opened.record_index))
        if opened.role not in ("function", "tool"):
            self.spans.append(Span(ROLE_END, MARKER, None, opened.scope, opened.record_index))
        self.open_roles.remove(opened)
        if opened.hidden:
            self.close_hidden_scope(opened.scope)
        record = MessageRecord(message, opened.scope, opened.hidden, opened.span_start, len(self.spans), opened.line)
        self.records.append(record)
        if message.get("tool_calls"):
            for call in opened.tool_calls:
                self.pending_calls[call.id] = call
        return record

    def discard_role(self, opened: OpenRole) -> None:
        """Forget an open block without making a message (tool blocks build their messages themselves)."""
        self.open_roles.remove(opened)

    def add_record(self, message: dict, spans: Iterable[Span], hidden_scope: int) -> MessageRecord:
        """Append a whole message at once (tool results, messages made by the automatic tool loop)."""
        if self.open_roles:
            raise ValueError("add_record while a role block is open would misnumber that block's message")
        start = len(self.spans)
        index = len(self.records)
        for span in spans:
            self.spans.append(span._replace(scope=hidden_scope, message=index))
        record = MessageRecord(message, hidden_scope, False, start, len(self.spans))
        self.records.append(record)
        return record

    def answer_call(self, call_id: str) -> ToolCall:
        """Mark ``call_id`` answered; a second answer or an unknown id is an error naming the id."""
        if call_id in self.answered_calls:
            raise ToolCallBookkeepingError(f"tool call {call_id!r} already has a result; each call gets exactly one")
        call = self.pending_calls.pop(call_id, None)
        if call is None:
            raise ToolCallBookkeepingError(f"no assistant message asked for tool call {call_id!r}")
        self.answered_calls.add(call_id)
        return call

    def next_pending_call(self) -> Optional[ToolCall]:
        return next(iter(self.pending_calls.values()), None)

    def check_tool_results(self) -> None:
        """Every tool call must have exactly one result before the model is asked again."""
        if self.pending_calls:
            ids = ", ".join(repr(i) for i in self.pending_calls)
            raise ToolCallBookkeepingError(
                f"tool call(s) {ids} have no result; render the results in a {{{{#function}}}} block "
                f"(e.g. {{{{#function}}}}{{{{answer()}}}}{{{{/function}}}}) before the next gen"
            )

    # ---- reading --------------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The visible transcript (cached; joined only when the span list grew)."""
        n = len(self.spans)
        cached_n, cached = self._text_cache
        if cached_n != n:
            cached = (
                cached + "".join(s.text for s in self.spans[cached_n:] if s.scope == 0)
                if cached_n < n
                else "".join(s.text for s in self.spans if s.scope == 0)
            )
            self._text_cache = (n, cached)
        return cached

    @property
    def messages(self) -> list[dict]:
        return [r.message for r in self.records if r.scope == 0]

    def prompt_snapshot(self, tail: tuple[Span, ...] = ()) -> Snapshot:
        """A zero-argument callable rendering the prompt text as it is now (one small object per request); ``tail``
        is text that follows it (a parallel iteration's own text)."""
        return Snapshot(self, messages=False, tail=tail)

    def _visible_text(self, n: int, scopes: tuple) -> str:
        if not scopes and n == len(self.spans):
            return self.text
        return "".join(s.text for s in self.spans[:n] if s.scope == 0 or s.scope in scopes)

    def messages_snapshot(self) -> Snapshot:
        """A zero-argument callable returning the messages visible now (records are append-only)."""
        return Snapshot(self, messages=True)


class Snapshot:
    """The prompt text or the messages as they were when a request was built, rendered only when asked for."""

    __slots__ = ("_messages", "_n", "_scopes", "_state", "_tail")

    def __init__(self, state: ProgramState, *, messages: bool, tail: tuple[Span, ...] = ()) -> None:
        self._state = state
        self._messages = messages
        self._n = len(state.records) if messages else len(state.spans)
        self._scopes = tuple(state.open_scopes)
        self._tail = tail

    def __call__(self) -> Any:
        state, n, scopes = self._state, self._n, self._scopes
        if self._messages:
            return [r.message for r in state.records[:n] if r.scope == 0 or r.scope in scopes]
        text = state._visible_text(n, scopes)
        return text + "".join(span.text for span in self._tail) if self._tail else text

    def with_values(self, escape: Callable[[str], str]) -> str:
        """The prompt text with every value in it (inserted values, model output, tool calls and results) passed
        through ``escape``; template text and role markers as written. Text-mode backends neutralise control
        markers inside values with it, as chat templates do inside messages."""
        state, n, scopes = self._state, self._n, self._scopes
        spans = [s for s in state.spans[:n] if s.scope == 0 or s.scope in scopes]
        return "".join(s.text if s.kind in LITERAL_KINDS else escape(s.text) for s in (*spans, *self._tail))
