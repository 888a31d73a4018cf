"""Template text -> AST. Lark (LALR, contextual lexer) tokenizes and parses tags; a Jinja-style stack then matches
blocks, so errors can name an unclosed block and where it opened. Parsed templates are cached by text.

Which blocks exist, their arity and separators come from ``registry`` (the parser knows no command by name); the
grammar (``grammar/template.lark``) is the one description of the syntax: the fast path's scanner is composed from
its terminals, and display highlights templates from this module's pieces (``source_pieces``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.utils import TextSlice

from . import nodes as n
from .errors import GuidanceLiteError, TemplateSyntaxError
from .expressions import compile_args, compile_async, compile_expr
from .limits import DEFAULT_LIMITS, nesting_hint
from .registry import BLOCKS


def _load_grammar() -> str:
    try:
        from importlib.resources import files

        return (files("guidance_lite.grammar") / "template.lark").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        here = Path(__file__).resolve().parent.parent / "grammar" / "template.lark"
        return here.read_text(encoding="utf-8")


# ---- pieces produced by the Lark pass ----------------------------------------------------------------------------
@dataclass(slots=True)
class Piece:
    """One piece of template source: text, an escape, a comment or a parsed tag (``start``/``end`` are offsets).

    ``kind`` is 'text' | 'escaped' | 'comment' | 'output' | 'open' | 'close' | 'sep' | 'partial', and in
    ``source_pieces`` also 'tag': a tag that does not parse. ``payload`` is what the tag holds (an expression for
    'output'; name, arguments and name token for 'open'; …).
    """

    kind: str
    line: int
    col: int
    start: int
    end: int
    strip_left: bool = False
    strip_right: bool = False
    text: str = ""
    payload: Any = None
    compiled: Any = None  # evaluators for the payload (shared by every occurrence of the same tag text)
    depth: int = 0  # how deeply the payload's expressions nest (checked against the nesting limit)

    @property
    def head(self) -> Optional[str]:
        """The block a tag opens or closes, or the command or helper an output tag names or calls (else None)."""
        if self.kind in ("open", "close"):
            return self.payload[0]
        if self.kind == "output":
            expr = self.payload.func if isinstance(self.payload, n.Call) else self.payload
            return expr.name if isinstance(expr, n.Var) else None
        return None


def _payload_exprs(kind: str, payload: Any) -> list[n.Expr]:
    """The expressions a tag's payload holds."""
    if kind == "output":
        return [payload]
    if kind == "open":
        _name, args, kwargs, _tok = payload
        return [*args, *(value for _, value in kwargs)]
    if kind == "partial":
        target, args, kwargs = payload
        return [target, *args, *(value for _, value in kwargs)]
    if kind == "sep" and payload[1] is not None:
        return [payload[1]]
    return []


def expression_depth(exprs: list[n.Expr]) -> int:
    """The most expression nodes on one path from a root to a leaf (walked with a stack: the tree may be deep)."""
    deepest = 0
    stack: list[tuple[n.Node, int]] = [(expr, 1) for expr in exprs]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in n.iter_child_nodes(node))
    return deepest


def _compile_payload(kind: str, payload: Any) -> Any:
    if kind == "output":
        return compile_expr(payload)
    if kind == "partial":
        _target, args, kwargs = payload
        return compile_args(args, kwargs)
    if kind == "open":
        _name, args, kwargs, _tok = payload
        return compile_args(args, kwargs)
    if kind == "sep" and payload[1] is not None:
        return compile_async(payload[1])
    return None


_KW = "kw"  # marker for keyword arguments among positional ones


def _pos(tok: Any) -> tuple[int, int]:
    if isinstance(tok, Token):
        return tok.line or 0, tok.column or 0
    return tok.line, tok.col


def _split_args(items: list) -> tuple[tuple[n.Expr, ...], tuple[tuple[str, n.Expr], ...]]:
    args: list[n.Expr] = []
    kwargs: list[tuple[str, n.Expr]] = []
    seen: set[str] = set()
    for item in items:
        if item is None:
            continue
        if isinstance(item, tuple) and item and item[0] is _KW:
            _, name, value, tok = item
            if name in seen:
                raise _Fault(f"keyword argument {name!r} is given twice", tok, "give each keyword argument once")
            seen.add(name)
            kwargs.append((name, value))
        else:
            if kwargs:
                raise _Fault(
                    "positional argument after a keyword argument",
                    item,
                    "put positional arguments first, e.g. {{gen 'name' stop='.'}}",
                )
            args.append(item)
    return tuple(args), tuple(kwargs)


_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\n": "",
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


def _unescape(body: str) -> str:
    """Python's string escapes; an unknown escape (``\\d`` in a regex) stays as written, without a warning."""

    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code[0] in "xuU" and len(code) > 1:
            value = int(code[1:], 16)
            if value > 0x10FFFF:
                raise ValueError(f"\\{code} is not a valid character")
            return chr(value)
        return "\\" + code

    return _ESCAPE.sub(replace, body)


class _Fault(GuidanceLiteError):
    """A syntax problem found while transforming (converted to TemplateSyntaxError with position)."""

    def __init__(self, message: str, where: Any, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line, self.col = _pos(where)
        self.hint = hint


class _ToPieces(Transformer):
    """Inline transformer (runs during the LALR parse): tokens -> pieces and expression nodes."""

    # -- pieces
    def start(self, items: list) -> list:
        return items

    def text(self, items: list) -> Piece:
        t = items[0]
        return Piece("text", t.line, t.column, t.start_pos, t.end_pos, text=str(t))

    def escaped(self, items: list) -> Piece:
        t = items[0]
        return Piece("escaped", t.line, t.column, t.start_pos, t.end_pos, text="{{")

    def comment(self, items: list) -> Piece:
        t = items[0]
        s = str(t)
        return Piece(
            "comment",
            t.line,
            t.column,
            t.start_pos,
            t.end_pos,
            strip_left=s.startswith("{{~"),
            strip_right=s.endswith("~}}"),
        )

    def tag(self, items: list) -> Piece:
        open_tok, body, close_tok = items
        kind, payload = ("output", body) if isinstance(body, n.Call) else body
        return Piece(
            depth=expression_depth(_payload_exprs(kind, payload)),
            kind=kind,
            line=open_tok.line,
            col=open_tok.column,
            start=open_tok.start_pos,
            end=close_tok.end_pos,
            strip_left=str(open_tok).endswith("~"),
            strip_right=str(close_tok).startswith("~"),
            payload=payload,
        )

    def block_open(self, items: list) -> tuple:
        name = items[0]
        args, kwargs = _split_args(items[1:])
        return "open", (str(name), args, kwargs, name)

    def block_close(self, items: list) -> tuple:
        return "close", (str(items[0]), items[0])

    def partial(self, items: list) -> tuple:
        target = items[0]
        if isinstance(target, Token):
            target = n.Var(target.line or 0, target.column or 0, str(target))
        args, kwargs = _split_args(items[1:])
        return "partial", (target, args, kwargs)

    def else_sep(self, items: list) -> tuple:
        return "sep", ("else", None)

    def elif_sep(self, items: list) -> tuple:
        return "sep", ("elif", items[-1])

    def or_sep(self, items: list) -> tuple:
        return "sep", ("or", None)

    def output(self, items: list) -> tuple:
        return "output", items[0]

    def command(self, items: list) -> n.Call:
        name = items[0]
        args, kwargs = _split_args(items[1:])
        return n.Call(name.line, name.column, n.Var(name.line, name.column, str(name)), args, kwargs, True)

    def kwarg(self, items: list) -> tuple:
        return (_KW, str(items[0]), items[1], items[0])

    # -- expressions
    def var(self, items: list) -> n.Var:
        t = items[0]
        return n.Var(t.line, t.column, str(t))

    def attr(self, items: list) -> n.Attr:
        obj, name = items
        return n.Attr(obj.line, obj.col, obj, str(name))

    def index(self, items: list) -> n.Index:
        obj, _, key = items
        return n.Index(obj.line, obj.col, obj, key)

    def call(self, items: list) -> n.Call:
        func, _, call_args = items
        args, kwargs = _split_args(call_args or [])
        return n.Call(func.line, func.col, func, args, kwargs, False)

    def call_args(self, items: list) -> list:
        return items

    def const_string(self, items: list) -> n.Const:
        t = items[0]
        raw = str(t)
        if "\\" not in raw:  # no escapes: the text between the quotes is the value
            return n.Const(t.line, t.column, raw[1:-1])
        try:
            value = _unescape(raw[1:-1])
        except ValueError as exc:
            raise _Fault(
                f"invalid string literal {raw!r}: {exc}", t, "check the backslash escapes in the string"
            ) from None
        return n.Const(t.line, t.column, value)

    def const_int(self, items: list) -> n.Const:
        t = items[0]
        return n.Const(t.line, t.column, int(t))

    def const_float(self, items: list) -> n.Const:
        t = items[0]
        return n.Const(t.line, t.column, float(t))

    def const_true(self, items: list) -> n.Const:
        return n.Const(items[0].line, items[0].column, True)

    def const_false(self, items: list) -> n.Const:
        return n.Const(items[0].line, items[0].column, False)

    def const_none(self, items: list) -> n.Const:
        return n.Const(items[0].line, items[0].column, None)

    def list_lit(self, items: list) -> n.ListLit:
        values = tuple(i for i in items if i is not None)
        first = values[0] if values else None
        return n.ListLit(first.line if first else 0, first.col if first else 0, values)

    def dict_lit(self, items: list) -> n.DictLit:
        pairs = tuple(i for i in items if i is not None)
        return n.DictLit(pairs[0][0].line if pairs else 0, pairs[0][0].col if pairs else 0, pairs)

    def dict_item(self, items: list) -> tuple:
        return items[0], items[1]

    def chain_items(self, items: list) -> list:
        """``[operand, op, operand, …]``, grown in place (one list per chain, so a long chain costs linear time)."""
        if len(items) == 1:
            return [items[0]]
        chain, op, operand = items
        chain.append(op)
        chain.append(operand)
        return chain

    cmd_items = chain_items  # a command argument's chain (it can't start with a prefix operator)

    def chain(self, items: list) -> n.Expr:
        (items,) = items
        if len(items) == 1:
            return _resolve_not(items[0])
        return _climb(items)

    def prefixed(self, items: list) -> Any:
        op, operand = items
        if op == "not":
            return _Not(operand)
        if isinstance(operand, _Not):  # `-not x` is unusual but legal Python: -(not x)
            operand = _resolve_not(operand)
        return n.UnaryOp(operand.line, operand.col, op, operand)

    def binop(self, items: list) -> str:
        return " ".join(str(t) for t in items)

    prefix_op = binop


# Python's precedence for the flat chains the grammar produces (higher binds tighter).
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    ">": 4,
    "<=": 4,
    ">=": 4,
    "in": 4,
    "not in": 4,
    "is": 4,
    "is not": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "//": 6,
    "%": 6,
}
_NOT_PRECEDENCE = 3


class _Not:
    """A pending ``not`` whose operand may still grow (``not a == b`` is ``not (a == b)``)."""

    __slots__ = ("operand",)

    def __init__(self, operand: Any) -> None:
        self.operand = operand


_COMPARISONS = frozenset(op for op, prec in _PRECEDENCE.items() if prec == 4)


def _make(op: str, left: n.Expr, right: n.Expr) -> n.Expr:
    if op in ("and", "or"):
        return n.BoolOp(left.line, left.col, op, left, right)
    if op in _COMPARISONS:
        return n.Compare(left.line, left.col, left, ((op, right),))
    return n.BinOp(left.line, left.col, op, left, right)


def _resolve_not(operand: Any) -> n.Expr:
    """``not`` applied as many times as it was written (a loop: a thousand ``not`` must not recurse)."""
    count = 0
    while isinstance(operand, _Not):
        count += 1
        operand = operand.operand
    for _ in range(count):
        operand = n.UnaryOp(operand.line, operand.col, "not", operand)
    return operand


_NOT = object()  # prefix `not` in a flattened chain


def _flatten(items: list) -> list:
    out: list = []
    for i, item in enumerate(items):
        if i % 2 == 0:
            while isinstance(item, _Not):
                out.append(_NOT)
                item = item.operand
        out.append(item)
    return out


def _climb(chain: list) -> n.Expr:
    """Precedence climbing over ``[operand, op, operand, …]``; a prefix ``not`` covers tighter operators."""
    items = _flatten(chain)
    pos = 0

    def parse(min_prec: int) -> n.Expr:
        nonlocal pos
        nots = 0
        while items[pos] is _NOT:  # a run of `not`s covers one operand: counted, not recursed into
            nots += 1
            pos += 1
        if nots:
            left: n.Expr = parse(_NOT_PRECEDENCE)
            for _ in range(nots):
                left = n.UnaryOp(left.line, left.col, "not", left)
        else:
            left = items[pos]
            pos += 1
        while pos < len(items):
            op = items[pos]
            prec = _PRECEDENCE[op]
            if prec < min_prec or (min_prec == _NOT_PRECEDENCE and prec <= _NOT_PRECEDENCE):
                break
            pos += 1
            right = parse(prec + 1)
            if op in _COMPARISONS and id(left) in chained:  # `a < b < c`: extend this chain, don't nest
                left = n.Compare(left.line, left.col, left.first, left.rest + ((op, right),))  # type: ignore
            else:
                left = _make(op, left, right)
            if isinstance(left, n.Compare):
                chained.add(id(left))
        return left

    chained: set[int] = set()
    return parse(1)


@dataclass(frozen=True)
class _Grammar:
    lark: Lark
    scanner: re.Pattern[str]  # the fast path's splitter
    comment: re.Pattern[str]  # the COMMENT terminal (does a comment close?)


def _terminals(lark: Lark) -> dict[str, str]:
    """Each terminal's regex as Lark loaded it from the grammar, grouped so it can be composed."""
    return {t.name: f"(?:{t.pattern.to_regexp()})" for t in lark.terminals}


def _compose_scanner(lark: Lark) -> re.Pattern[str]:
    """The fast path's one regex, composed from the grammar's own terminals: escapes (ESCAPED), comments (COMMENT),
    and tags: TAG_OPEN, then strings (STRING, which may hold '}}') or any other character, lazily up to the first
    TAG_CLOSE (in a run of closing braces the last two close the tag). A TAG_OPEN that can't be closed so is
    ``open``: the fast path leaves the template to the full parse."""
    term = _terminals(lark)
    return re.compile(
        f"(?P<esc>{term['ESCAPED']})"
        f"|(?P<comment>{term['COMMENT']})"
        f"|(?P<tag>{term['TAG_OPEN']}(?:{term['STRING']}|[^\"'])*?{term['TAG_CLOSE']})"
        f"|(?P<open>{term['TAG_OPEN']})"
    )


_grammar_lock = threading.Lock()
_loaded: Optional[_Grammar] = None


def _grammar() -> _Grammar:
    global _loaded
    if _loaded is None:
        with _grammar_lock:
            if _loaded is None:
                lark = Lark(
                    _load_grammar(),
                    parser="lalr",
                    lexer="contextual",
                    transformer=_ToPieces(),
                    maybe_placeholders=True,
                    cache=False,
                    start=["start", "tag"],
                )
                _loaded = _Grammar(lark, _compose_scanner(lark), re.compile(_terminals(lark)["COMMENT"]))
    return _loaded


# ---- pieces -> tree ----------------------------------------------------------------------------------------------
def _apply_whitespace_control(pieces: list[Piece]) -> None:
    """``{{~`` strips the template whitespace run just before a tag, ``~}}`` the run just after it."""
    for i, piece in enumerate(pieces):
        if piece.strip_left and i > 0 and pieces[i - 1].kind == "text":
            pieces[i - 1].text = pieces[i - 1].text.rstrip()
        if piece.strip_right and i + 1 < len(pieces) and pieces[i + 1].kind == "text":
            pieces[i + 1].text = pieces[i + 1].text.lstrip()


@dataclass
class _OpenBlock:
    piece: Piece
    name: str
    args: tuple
    kwargs: tuple
    body: list
    branches: list  # (kind, cond, piece, body list)


_SEPARATOR_TAGS = {"else": "{{else}}", "elif": "{{elif}}", "or": "{{or}}"}


class _TreeBuilder:
    """Pieces -> nodes. A stack of open blocks matches ``{{#x}}`` with ``{{/x}}``, so an error can name the block
    and where it opened; one method per piece kind."""

    def __init__(self, source: str, name: Optional[str], max_depth: int = DEFAULT_LIMITS.max_nesting_depth) -> None:
        self.source = source
        self.name = name
        self.max_depth = max_depth
        self.root: list[n.Node] = []
        self.stack: list[_OpenBlock] = []

    def build(self, pieces: list[Piece]) -> tuple[n.Node, ...]:
        handlers = {
            "text": self.text,
            "escaped": self.text,
            "comment": self.comment,
            "output": self.output,
            "partial": self.partial,
            "open": self.open,
            "sep": self.separator,
            "close": self.close,
        }
        for piece in pieces:
            if piece.depth > self.max_depth:
                raise self.fail(
                    f"expression nested too deeply: {piece.depth:,} levels, over the limit "
                    f"max_nesting_depth={self.max_depth}",
                    piece,
                    nesting_hint(self.max_depth),
                )
            handlers[piece.kind](piece)
        if self.stack:
            top = self.stack[-1]
            raise self.fail(
                f"unclosed block {{{{#{top.name}}}}}: opened on line {top.piece.line}, column "
                f"{top.piece.col} and never closed",
                top.piece,
                f"add {{{{/{top.name}}}}} where the block should end",
            )
        return _sealed(self.root)

    def body(self) -> list:
        """The node list pieces go to now: the open block's current section, or the template's root."""
        if not self.stack:
            return self.root
        top = self.stack[-1]
        return top.branches[-1][3] if top.branches else top.body

    def fail(self, message: str, piece: Piece, hint: str = "") -> TemplateSyntaxError:
        return TemplateSyntaxError(
            message,
            line=piece.line,
            col=piece.col,
            source=self.source,
            hint=hint,
            text=self.source[piece.start : piece.end],
            name=self.name,
        )

    def text(self, piece: Piece) -> None:
        if not piece.text:
            return
        body = self.body()
        if body and isinstance(body[-1], n.Text):  # merge adjacent text (e.g. around escapes)
            prev = body[-1]
            body[-1] = n.Text(prev.line, prev.col, prev.text + piece.text)
        else:
            body.append(n.Text(piece.line, piece.col, piece.text))

    def comment(self, piece: Piece) -> None:
        pass

    def output(self, piece: Piece) -> None:
        expr = piece.payload
        fn, is_async = piece.compiled or compile_expr(expr)
        self.body().append(n.Output(piece.line, piece.col, expr, self.source[piece.start : piece.end], fn, is_async))

    def partial(self, piece: Piece) -> None:
        target, args, kwargs = piece.payload
        self.body().append(
            n.Partial(piece.line, piece.col, target, args, kwargs, piece.compiled or compile_args(args, kwargs))
        )

    def open(self, piece: Piece) -> None:
        block_name, args, kwargs, _tok = piece.payload
        spec = BLOCKS.get(block_name)
        if spec is None:
            raise self.fail(
                f"unknown block command {{{{#{block_name}}}}}", piece, "known blocks: " + ", ".join(sorted(BLOCKS))
            )
        problem = spec.arity_problem(len(args))
        if problem:
            raise self.fail(problem, piece, "write it as " + spec.usage)
        if len(self.stack) >= self.max_depth:
            raise self.fail(
                f"blocks nested too deeply: more than {self.max_depth} inside each other, over the limit "
                f"max_nesting_depth={self.max_depth}",
                piece,
                nesting_hint(self.max_depth),
            )
        self.stack.append(_OpenBlock(piece, block_name, args, kwargs, [], []))

    def separator(self, piece: Piece) -> None:
        sep, cond = piece.payload
        label = _SEPARATOR_TAGS[sep]
        if not self.stack:
            raise self.fail(
                f"{label} outside of any block",
                piece,
                "use it inside {{#if}}…{{/if}}, {{#each}}…{{/each}} or {{#select}}…{{/select}}",
            )
        top = self.stack[-1]
        allowed = BLOCKS[top.name].separators
        if sep not in allowed:
            raise self.fail(
                f"{label} is not allowed inside {{{{#{top.name}}}}} (opened on line {top.piece.line})",
                piece,
                f"{{{{#{top.name}}}}} accepts: " + (", ".join(sorted(allowed)) or "no separators"),
            )
        if top.branches and top.branches[-1][0] == "else":
            raise self.fail(
                f"{label} after {{{{else}}}} in {{{{#{top.name}}}}} (opened on line {top.piece.line})",
                piece,
                "{{else}} must be the last section of a block",
            )
        top.branches.append((sep, cond, piece, []))

    def close(self, piece: Piece) -> None:
        close_name, _tok = piece.payload
        if not self.stack:
            raise self.fail(
                f"closing tag {{{{/{close_name}}}}} has no matching opening tag",
                piece,
                f"remove it, or open the block with {{{{#{close_name}}}}}",
            )
        top = self.stack.pop()
        if close_name != top.name:
            raise self.fail(
                f"closing tag {{{{/{close_name}}}}} does not match {{{{#{top.name}}}}} "
                f"opened on line {top.piece.line}, column {top.piece.col}",
                piece,
                f"close the inner block first with {{{{/{top.name}}}}}",
            )
        branches = tuple(
            n.Branch(
                p.line,
                p.col,
                kind,
                cond,
                _sealed(body),
                p.compiled or (compile_async(cond) if cond is not None else None),
            )
            for kind, cond, p, body in top.branches
        )
        self.body().append(
            n.Block(
                top.piece.line,
                top.piece.col,
                top.name,
                top.args,
                top.kwargs,
                _sealed(top.body),
                branches,
                piece.line,
                top.piece.compiled or compile_args(top.args, top.kwargs),
            )
        )


def _sealed(body: list) -> tuple[n.Node, ...]:
    """A finished section as a tuple, each ``{{tag}}`` told the literal text on either side of it."""
    last = len(body) - 1
    for i, node in enumerate(body):
        if type(node) is n.Output:
            before = body[i - 1] if i > 0 else None
            after = body[i + 1] if i < last else None
            if type(before) is n.Text or type(after) is n.Text:
                body[i] = replace(
                    node,
                    before=before.text if type(before) is n.Text else "",
                    after=after.text if type(after) is n.Text else "",
                )
    return tuple(body)


# ---- Lark errors -> TemplateSyntaxError ---------------------------------------------------------------------------
def _open_tag_start(exc: UnexpectedInput) -> Optional[int]:
    """Where the tag the parser was in when it failed starts: the TAG_OPEN token on the parser's value stack (tags
    that closed were already reduced to pieces, so the token left is the open tag's)."""
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is None:  # pragma: no cover - Lark attaches it to every error raised while parsing
        return None
    for value in reversed(interactive.parser_state.value_stack):
        if isinstance(value, Token) and value.type == "TAG_OPEN":
            return value.start_pos
    return None


def _unclosed_comment_before(source: str, pos: Optional[int]) -> Optional[int]:
    """Where ``{{!`` or ``{{~!`` starts when the failing character at ``pos`` is that '!' and the COMMENT terminal
    does not match there: a comment never closed, whose ``{{`` the lexer took for a tag's."""
    if pos is None or not source.startswith("!", pos):
        return None
    for start in (pos - 2, pos - 3):
        if start >= 0 and source.startswith(("{{!", "{{~!"), start) and not _grammar().comment.match(source, start):
            return start
    return None


def _line_col(source: str, pos: int) -> tuple[int, int]:
    line = source.count("\n", 0, pos) + 1
    col = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return line, col


_VALUE_STARTS = frozenset({"NAME", "STRING", "INT", "FLOAT", "LPAR", "LSQB", "LBRACE", "AT_NAME"})


def _describe_fault(source: str, pos: int, expected: set[str], tag_start: int) -> tuple[str, str, str]:
    """(message, hint, offending text) for the character at ``pos`` inside the tag starting at ``tag_start``."""
    rest = source[pos:]
    ch = rest[:1]
    if rest.startswith("}}") or rest.startswith("~}}"):
        tag = source[tag_start : pos + (3 if rest.startswith("~") else 2)]
        if len(tag) > 60:  # a hint names the tag, it does not repeat it (the excerpt above already shows where)
            tag = tag[:28] + "…" + tag[-28:]
        if expected & _VALUE_STARTS:
            return "the tag ends where a value was expected", f"complete the expression in {tag!r}", "}}"
        return "the tag ends too early", f"complete the tag {tag!r}", "}}"
    if ch in "'\"":
        return "unterminated string", f"the string starting here is never closed: add a matching {ch}", rest[:20]
    if ch == "=":
        return (
            "'=' outside a keyword argument",
            "use '==' to compare, or name=value right after a command's arguments, e.g. {{gen 'x' max_tokens=5}}",
            ch,
        )
    if ch == "}":
        return "unexpected '}' inside a tag", "tags close with '}}'", ch
    if ch == "{":
        return "unexpected '{' inside a tag", "tags cannot nest; to use a value inside a tag just name it", ch
    return (
        f"unexpected character {ch!r} inside a tag",
        "tags hold names, literals, calls and operators; write a literal '{{' in text as '\\{{'",
        ch,
    )


def _syntax_error(exc: UnexpectedInput, source: str, name: Optional[str]) -> TemplateSyntaxError:
    def error(message: str, pos: int, hint: str, text: str) -> TemplateSyntaxError:
        line, col = _line_col(source, pos)
        return TemplateSyntaxError(message, line=line, col=col, source=source, hint=hint, text=text, name=name)

    found = _open_tag_start(exc)
    tag_start = found if found is not None else 0  # every Lark error happens inside a tag
    error_pos = exc.token.start_pos if isinstance(exc, UnexpectedToken) else getattr(exc, "pos_in_stream", None)
    comment_start = _unclosed_comment_before(source, error_pos)
    if comment_start is not None:
        long_form = source.startswith(("{{!--", "{{~!--"), comment_start)
        return error(
            "unclosed comment: it is never closed with " + ("'--}}'" if long_form else "'}}'"),
            comment_start,
            "end the comment with " + ("--}}" if long_form else "}}"),
            source[comment_start : comment_start + 20],
        )
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return error(
            "unclosed tag: '{{' is never closed with '}}'",
            tag_start,
            "add '}}' to end the tag",
            source[tag_start : tag_start + 40],
        )
    if error_pos is not None and source.find("{{", tag_start + 2, error_pos) != -1:  # this tag was never closed
        return error(
            "unclosed tag: '{{' is never closed with '}}'",
            tag_start,
            "add '}}' to end the tag before the next '{{'",
            source[tag_start : tag_start + 40].split("\n")[0],
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0  # always set for a lexer error
        message, hint, text = _describe_fault(source, pos, set(exc.allowed or ()), tag_start)
        return error(message, pos, hint, text)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = set(exc.expected)
    if tok.type == "TAG_OPEN":
        return error(
            "unclosed tag: '{{' is never closed with '}}'",
            tag_start,
            "add '}}' to end the tag before the next '{{'",
            source[tag_start : tok.start_pos],
        )
    if tok.type in ("TEXT", "TAG_CLOSE", "RBRACE", "EQUAL"):  # TEXT: the lexer found no tag token here
        message, hint, text = _describe_fault(source, tok.start_pos, expected, tag_start)
        return error(message, tok.start_pos, hint, text)
    value = str(tok)
    if tok.type == "NAME" and "TAG_CLOSE" in expected:
        hint = "a tag holds one expression; to call a helper with arguments, name it first: {{helper a b}}"
    else:
        hint = "check the tag's syntax: {{name arg key=value}}, {{#block …}}, {{/block}}"
    return error(f"unexpected {value!r} in tag", tok.start_pos, hint, value)


# ---- the fast path ------------------------------------------------------------------------------------------------
# Text, escapes and comments are found by one regex composed from the grammar's terminals (they are regular); each
# distinct tag text is parsed once with the grammar's `tag` start symbol and reused. Anything it can't split cleanly
# (an unclosed tag, `{{x}}}`) goes to the full Lark parse, which also produces every syntax error message.
_TAG_MEMO: dict[str, tuple[str, Any, bool, bool, Any, int]] = {}
_TAG_MEMO_LIMIT = 20_000
# Payloads up to this depth are compiled with the memo; deeper ones (a raised max_nesting_depth) when a parse allows.
_EAGER_COMPILE_DEPTH = DEFAULT_LIMITS.max_nesting_depth

_UNPARSED = ("tag", None, False, False, None, 0)  # the shape of a tag that does not parse


def _tag_shape(tag: str) -> tuple[str, Any, bool, bool, Any, int]:
    """(kind, payload, strip_left, strip_right, compiled, depth) of one tag's text, parsed once; ``_UNPARSED`` when
    the grammar rejects it (the full parse then says why)."""
    shape = _TAG_MEMO.get(tag)
    if shape is None:
        try:
            piece: Any = _grammar().lark.parse(tag, start="tag")  # the transformer makes it a _Piece
            shape = (
                piece.kind,
                piece.payload,
                piece.strip_left,
                piece.strip_right,
                _compile_payload(piece.kind, piece.payload) if piece.depth <= _EAGER_COMPILE_DEPTH else None,
                piece.depth,
            )
        except (UnexpectedInput, VisitError, _Fault):
            shape = _UNPARSED
        if len(_TAG_MEMO) < _TAG_MEMO_LIMIT:
            _TAG_MEMO[tag] = shape
    return shape


def _head_before_extra_braces(tag: str) -> Optional[str]:
    """A tag followed by text starting with '}' (``{{x}}}``): the shortest head closing with two of the trailing
    braces that parses — where the full parse closes it (``_lark_pieces``) — or None."""
    run = len(tag) - len(tag.rstrip("}"))
    if run < 3 or tag[-run - 1] == "~":
        return None
    for cut in range(len(tag) - run + 2, len(tag)):
        if _tag_shape(tag[:cut])[0] != "tag":
            return tag[:cut]
    return None


def _scan(source: str, tolerant: bool) -> Optional[list[Piece]]:
    """Pieces via the scanner and the tag memo. Strict (the fast path): None when the full parse must decide.
    Tolerant (``source_pieces``): a tag that does not parse is a 'tag' piece, and an unclosed ``{{`` starts text
    that runs to the end (so even a template full of openers is split in linear time)."""
    pieces: list[Piece] = []
    pos = 0
    line = 1
    line_start = 0  # offset of the current line's first character

    def advance(to: int) -> None:
        nonlocal line, line_start
        count = source.count("\n", pos, to)
        if count:
            line += count
            line_start = source.rindex("\n", pos, to) + 1

    for m in _grammar().scanner.finditer(source):
        start = m.start()
        if start > pos:
            pieces.append(Piece("text", line, pos - line_start + 1, pos, start, text=source[pos:start]))
            advance(start)
            pos = start
        kind = m.lastgroup
        end = m.end()
        col = start - line_start + 1
        if kind == "open":
            if not tolerant:
                return None
            break
        if kind == "esc":
            pieces.append(Piece("escaped", line, col, start, end, text="{{"))
        elif kind == "comment":
            text = m.group()
            pieces.append(
                Piece(
                    "comment",
                    line,
                    col,
                    start,
                    end,
                    strip_left=text.startswith("{{~"),
                    strip_right=text.endswith("~}}"),
                )
            )
        else:
            tag = m.group()
            tag_kind, payload, strip_left, strip_right, compiled, depth = _tag_shape(tag)
            if tag_kind == "tag" and not tolerant:
                head = _head_before_extra_braces(tag)
                if head is None:
                    return None
                tag_kind, payload, strip_left, strip_right, compiled, depth = _tag_shape(head)
                end = start + len(head)  # the extra braces start the text that follows
            pieces.append(
                Piece(
                    tag_kind,
                    line,
                    col,
                    start,
                    end,
                    strip_left,
                    strip_right,
                    payload=payload,
                    compiled=compiled,
                    depth=depth,
                )
            )
        advance(end)
        pos = end
    if pos < len(source):
        pieces.append(Piece("text", line, pos - line_start + 1, pos, len(source), text=source[pos:]))
    return pieces


def source_pieces(source: str) -> list[Piece]:
    """Every piece of ``source`` in order, each with its exact offsets, for tools that show templates (display's
    highlighter). Tolerant where ``parse`` is strict: a tag that does not parse is a 'tag' piece and an unclosed
    ``{{`` begins text to the end; whitespace control is not applied, so the pieces' slices rebuild the source."""
    return _scan(source, tolerant=True) or []


def read_tag(tag: str) -> tuple[list[Token], Optional[int]]:
    """The tokens the grammar reads in one tag (``{{…}}``, as cut out by ``source_pieces``), lexed in parser context,
    and the offset where the tag stops being valid (None when it parses). For highlighters (``highlight.py``): they
    see a tag exactly as the parser does, keywords and all; the tokens before a fault are the ones the parser took."""
    interactive = _grammar().lark.parse_interactive(tag, start="tag")
    tokens: list[Token] = []
    fault: Optional[int] = None
    try:
        for token in interactive.iter_parse():
            tokens.append(token)
        interactive.feed_eof()
    except UnexpectedToken as exc:
        fault = exc.token.start_pos if exc.token.start_pos is not None else len(tag)
    except UnexpectedInput as exc:  # a character no tag token matches
        fault = exc.pos_in_stream if exc.pos_in_stream is not None else len(tag)
    except (VisitError, _Fault) as exc:  # a token the transformer refused (a bad string escape)
        inner = exc.orig_exc if isinstance(exc, VisitError) else exc
        fault = tokens[-1].start_pos if tokens else 0
        if isinstance(inner, _Fault) and inner.line:
            lines = tag.split("\n")
            fault = sum(len(line) + 1 for line in lines[: inner.line - 1]) + inner.col - 1
    if fault is None:
        return tokens, None
    return [token for token in tokens if (token.start_pos or 0) < fault], fault


def _lark_pieces(source: str) -> list[Piece]:
    """Run Lark; when a tag is followed by text starting with '}' (``{{x}}}``), the tag closes with its first two
    braces and the parse goes on from there (a ``TextSlice`` of the source, so positions stay the template's). A loop,
    not a recursion, and each round parses only what follows: a template may hold thousands of such tags."""
    lark = _grammar().lark
    pieces: list[Piece] = []
    cut = 0  # the source before this offset is parsed
    while True:
        try:
            parsed = lark.parse(TextSlice(source, cut, len(source)), start="start")
        except UnexpectedToken as exc:
            tok = exc.token
            if "TAG_CLOSE" in exc.expected and source.startswith("}}}", tok.start_pos) and tok.start_pos >= cut:
                end = tok.start_pos + 2
                head: Any = lark.parse(TextSlice(source, cut, end), start="start")  # the transformer made a list
                pieces += head
                cut = end
                continue
            raise
        return pieces + (parsed if isinstance(parsed, list) else [])


def _parse_uncached(
    source: str, name: Optional[str], fast: bool = True, max_depth: int = DEFAULT_LIMITS.max_nesting_depth
) -> n.Template:
    try:
        pieces = (_scan(source, tolerant=False) if fast else None) or _lark_pieces(source)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, _Fault):
            raise TemplateSyntaxError(
                inner.message, line=inner.line, col=inner.col, source=source, hint=inner.hint, name=name
            ) from None
        raise  # pragma: no cover - a bug in the transformer, not user input
    except _Fault as inner:
        raise TemplateSyntaxError(
            inner.message, line=inner.line, col=inner.col, source=source, hint=inner.hint, name=name
        ) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, name) from None
    _apply_whitespace_control(pieces)
    try:
        return n.Template(_TreeBuilder(source, name, max_depth).build(pieces), source)
    except RecursionError:  # only when max_nesting_depth was raised past what Python can compile
        raise TemplateSyntaxError(
            "the template nests too deeply to compile (Python's recursion limit)",
            line=1,
            col=1,
            source=source,
            hint=nesting_hint(max_depth),
            name=name,
        ) from None


@lru_cache(maxsize=512)
def _parse_cached(source: str, name: Optional[str], max_depth: int) -> n.Template:
    return _parse_uncached(source, name, max_depth=max_depth)


def parse(
    source: Union[str, Any], name: Optional[str] = None, max_depth: int = DEFAULT_LIMITS.max_nesting_depth
) -> n.Template:
    """Parse template text (cached by text: a second Program with the same text costs a dict lookup). Expressions
    and blocks nested deeper than ``max_depth`` (``Limits.max_nesting_depth``) are a syntax error."""
    if not isinstance(source, str):
        raise TypeError(f"a template must be a str, not {type(source).__name__}")
    return _parse_cached(source, name, max_depth)
