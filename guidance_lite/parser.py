"""Template text -> AST. Lark (LALR, contextual lexer) tokenizes and parses tags; a Jinja-style stack then matches
blocks, so errors can name an unclosed block and where it opened. Parsed templates are cached by text.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import nodes as n
from .errors import TemplateSyntaxError
from .expressions import compile_args, compile_async, compile_expr

# Separators each block accepts (others are a syntax error); blocks not listed accept none.
BLOCK_SEPARATORS: dict[str, frozenset[str]] = {
    "if": frozenset({"else", "elif"}),
    "unless": frozenset({"else"}),
    "each": frozenset({"else"}),
    "select": frozenset({"or"}),
}
# Block commands and how many positional arguments each takes (min, max).
BLOCK_ARITY: dict[str, tuple[int, int]] = {
    "if": (1, 1), "unless": (1, 1), "each": (1, 1), "geneach": (1, 1), "select": (0, 1), "block": (0, 1),
    "system": (0, 0), "user": (0, 0), "assistant": (0, 0), "function": (0, 0), "tool": (0, 0), "role": (1, 1),
}
_ARITY_HINTS = {
    "if": "{{#if condition}}…{{/if}}", "unless": "{{#unless condition}}…{{/unless}}",
    "each": "{{#each items}}…{{/each}}", "geneach": "{{#geneach 'items' num_iterations=3}}…{{/geneach}}",
    "select": "{{#select 'name'}}a{{or}}b{{/select}}", "block": "{{#block 'name' hidden=True}}…{{/block}}",
    "role": "{{#role 'critic'}}…{{/role}}",
}


def _load_grammar() -> str:
    try:
        from importlib.resources import files
        return (files("guidance_lite.grammar") / "template.lark").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        here = Path(__file__).resolve().parent.parent / "grammar" / "template.lark"
        return here.read_text(encoding="utf-8")


# ---- pieces produced by the Lark pass ----------------------------------------------------------------------------
@dataclass(slots=True)
class _Piece:
    kind: str  # 'text' | 'escaped' | 'comment' | 'output' | 'open' | 'close' | 'sep' | 'partial'
    line: int
    col: int
    start: int
    end: int
    strip_left: bool = False
    strip_right: bool = False
    text: str = ""
    payload: Any = None
    compiled: Any = None  # evaluators for the payload (shared by every occurrence of the same tag text)


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
                raise _Fault("positional argument after a keyword argument", item,
                             "put positional arguments first, e.g. {{gen 'name' stop='.'}}")
            args.append(item)
    return tuple(args), tuple(kwargs)


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "a": "\a",
                   "b": "\b", "f": "\f", "v": "\v", "\n": ""}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


def _unescape(body: str) -> str:
    """Python's string escapes; an unknown escape (``\\d`` in a regex) stays as written, without a warning."""
    def replace(m: "re.Match[str]") -> str:
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


class _Fault(Exception):
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

    def text(self, items: list) -> _Piece:
        t = items[0]
        return _Piece("text", t.line, t.column, t.start_pos, t.end_pos, text=str(t))

    def escaped(self, items: list) -> _Piece:
        t = items[0]
        return _Piece("escaped", t.line, t.column, t.start_pos, t.end_pos, text="{{")

    def comment(self, items: list) -> _Piece:
        t = items[0]
        s = str(t)
        return _Piece("comment", t.line, t.column, t.start_pos, t.end_pos,
                      strip_left=s.startswith("{{~"), strip_right=s.endswith("~}}"))

    def tag(self, items: list) -> _Piece:
        open_tok, body, close_tok = items
        kind, payload = ("output", body) if isinstance(body, n.Call) else body
        return _Piece(kind, open_tok.line, open_tok.column, open_tok.start_pos, close_tok.end_pos,
                      strip_left=str(open_tok).endswith("~"), strip_right=str(close_tok).startswith("~"),
                      payload=payload)

    def block_open(self, items: list) -> tuple:
        name = items[0]
        args, kwargs = _split_args(items[1:])
        return "open", (str(name), args, kwargs, name)

    def block_close(self, items: list) -> tuple:
        return "close", (str(items[0]), items[0])

    def partial(self, items: list) -> tuple:
        target = items[0]
        if isinstance(target, Token):
            target = n.Var(target.line, target.column, str(target))
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
            raise _Fault(f"invalid string literal {raw!r}: {exc}", t, "check the backslash escapes in the string") \
                from None
        return n.Const(t.line, t.column, value)

    def const_int(self, items: list) -> n.Const:
        t = items[0]
        return n.Const(t.line, t.column, int(t))

    def const_float(self, items: list) -> n.Const:
        t = items[0]
        return n.Const(t.line, t.column, float(t))

    def const_true(self, items: list) -> n.Const:
        return n.Const(0, 0, True)

    def const_false(self, items: list) -> n.Const:
        return n.Const(0, 0, False)

    def const_none(self, items: list) -> n.Const:
        return n.Const(0, 0, None)

    def list_lit(self, items: list) -> n.ListLit:
        values = tuple(i for i in items if i is not None)
        first = values[0] if values else None
        return n.ListLit(first.line if first else 0, first.col if first else 0, values)

    def dict_lit(self, items: list) -> n.DictLit:
        pairs = tuple(i for i in items if i is not None)
        return n.DictLit(pairs[0][0].line if pairs else 0, pairs[0][0].col if pairs else 0, pairs)

    def dict_item(self, items: list) -> tuple:
        return items[0], items[1]

    def chain(self, items: list) -> n.Expr:
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
_PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, ">": 4, "<=": 4, ">=": 4, "in": 4, "not in": 4,
               "is": 4, "is not": 4, "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "%": 6}
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
    if isinstance(operand, _Not):
        inner = _resolve_not(operand.operand)
        return n.UnaryOp(inner.line, inner.col, "not", inner)
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
        item = items[pos]
        pos += 1
        if item is _NOT:
            operand = parse(_NOT_PRECEDENCE)
            left: n.Expr = n.UnaryOp(operand.line, operand.col, "not", operand)
        else:
            left = item
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


_lark_lock = threading.Lock()
_lark: Optional[Lark] = None


def _get_lark() -> Lark:
    global _lark
    if _lark is None:
        with _lark_lock:
            if _lark is None:
                _lark = Lark(_load_grammar(), parser="lalr", lexer="contextual", transformer=_ToPieces(),
                             maybe_placeholders=True, cache=False, start=["start", "tag"])
    return _lark


# ---- pieces -> tree ----------------------------------------------------------------------------------------------
def _apply_whitespace_control(pieces: list[_Piece]) -> None:
    """``{{~`` strips the template whitespace run just before a tag, ``~}}`` the run just after it."""
    for i, piece in enumerate(pieces):
        if piece.strip_left and i > 0 and pieces[i - 1].kind == "text":
            pieces[i - 1].text = pieces[i - 1].text.rstrip()
        if piece.strip_right and i + 1 < len(pieces) and pieces[i + 1].kind == "text":
            pieces[i + 1].text = pieces[i + 1].text.lstrip()


@dataclass
class _OpenBlock:
    piece: _Piece
    name: str
    args: tuple
    kwargs: tuple
    body: list
    branches: list  # (kind, cond, piece, body list)


def _build(pieces: list[_Piece], source: str, name: Optional[str]) -> tuple[n.Node, ...]:
    root: list[n.Node] = []
    stack: list[_OpenBlock] = []

    def current() -> list:
        if not stack:
            return root
        top = stack[-1]
        return top.branches[-1][3] if top.branches else top.body

    def fail(message: str, piece: _Piece, hint: str = "") -> TemplateSyntaxError:
        return TemplateSyntaxError(message, line=piece.line, col=piece.col, source=source, hint=hint,
                                   text=source[piece.start:piece.end], name=name)

    for piece in pieces:
        kind = piece.kind
        if kind in ("text", "escaped"):
            if piece.text:
                body = current()
                if body and isinstance(body[-1], n.Text):  # merge adjacent text (e.g. around escapes)
                    prev = body[-1]
                    body[-1] = n.Text(prev.line, prev.col, prev.text + piece.text)
                else:
                    body.append(n.Text(piece.line, piece.col, piece.text))
        elif kind == "comment":
            continue
        elif kind == "output":
            expr = piece.payload
            fn, is_async = piece.compiled or compile_expr(expr)
            current().append(n.Output(piece.line, piece.col, expr, source[piece.start:piece.end], fn, is_async))
        elif kind == "partial":
            target, args, kwargs = piece.payload
            current().append(n.Partial(piece.line, piece.col, target, args, kwargs,
                                       piece.compiled or compile_args(args, kwargs)))
        elif kind == "open":
            block_name, args, kwargs, _tok = piece.payload
            arity = BLOCK_ARITY.get(block_name)
            if arity is None:
                raise fail(f"unknown block command {{{{#{block_name}}}}}", piece,
                           "known blocks: " + ", ".join(sorted(BLOCK_ARITY)))
            if not arity[0] <= len(args) <= arity[1]:
                want = "no positional arguments" if arity[1] == 0 else (
                    f"{arity[0]} positional argument" + ("s" if arity[0] > 1 else "") if arity[0] == arity[1]
                    else f"at most {arity[1]} positional argument")
                raise fail(f"{{{{#{block_name}}}}} takes {want}, got {len(args)}", piece,
                           "write it as " + _ARITY_HINTS.get(block_name, f"{{{{#{block_name}}}}}…{{{{/{block_name}}}}}"))
            stack.append(_OpenBlock(piece, block_name, args, kwargs, [], []))
        elif kind == "sep":
            sep, cond = piece.payload
            label = {"else": "{{else}}", "elif": "{{elif}}", "or": "{{or}}"}[sep]
            if not stack:
                raise fail(f"{label} outside of any block", piece,
                           "use it inside {{#if}}…{{/if}}, {{#each}}…{{/each}} or {{#select}}…{{/select}}")
            top = stack[-1]
            allowed = BLOCK_SEPARATORS.get(top.name, frozenset())
            if sep not in allowed:
                raise fail(f"{label} is not allowed inside {{{{#{top.name}}}}} "
                           f"(opened on line {top.piece.line})", piece,
                           f"{{{{#{top.name}}}}} accepts: " + (", ".join(sorted(allowed)) or "no separators"))
            if top.branches and top.branches[-1][0] == "else":
                raise fail(f"{label} after {{{{else}}}} in {{{{#{top.name}}}}} (opened on line {top.piece.line})",
                           piece, "{{else}} must be the last section of a block")
            top.branches.append((sep, cond, piece, []))
        elif kind == "close":
            close_name, _tok = piece.payload
            if not stack:
                raise fail(f"closing tag {{{{/{close_name}}}}} has no matching opening tag", piece,
                           f"remove it, or open the block with {{{{#{close_name}}}}}")
            top = stack.pop()
            if close_name != top.name:
                raise fail(f"closing tag {{{{/{close_name}}}}} does not match {{{{#{top.name}}}}} "
                           f"opened on line {top.piece.line}, column {top.piece.col}", piece,
                           f"close the inner block first with {{{{/{top.name}}}}}")
            branches = tuple(
                n.Branch(p.line, p.col, kind_, cond, tuple(body),
                         p.compiled or (compile_async(cond) if cond is not None else None))
                for kind_, cond, p, body in top.branches)
            block = n.Block(top.piece.line, top.piece.col, top.name, top.args, top.kwargs, tuple(top.body),
                            branches, piece.line, top.piece.compiled or compile_args(top.args, top.kwargs))
            current().append(block)
    if stack:
        top = stack[-1]
        raise fail(f"unclosed block {{{{#{top.name}}}}}: opened on line {top.piece.line}, column {top.piece.col} "
                   f"and never closed", top.piece, f"add {{{{/{top.name}}}}} where the block should end")
    return tuple(root)


# ---- Lark errors -> TemplateSyntaxError ---------------------------------------------------------------------------
def _last_tag_open(source: str, pos: int) -> int:
    return source.rfind("{{", 0, pos)


def _unclosed_tag_before(source: str, pos: int) -> Optional[int]:
    """If the tag the parser is in contains another '{{' before ``pos``, the tag's start (it was never closed)."""
    last_close = source.rfind("}}", 0, pos)
    start = source.find("{{", last_close + 2 if last_close >= 0 else 0, pos)
    if start != -1 and source.find("{{", start + 2, pos) != -1:
        return start
    return None


def _line_col(source: str, pos: int) -> tuple[int, int]:
    line = source.count("\n", 0, pos) + 1
    col = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return line, col


_VALUE_STARTS = frozenset({"NAME", "STRING", "INT", "FLOAT", "LPAR", "LSQB", "LBRACE", "AT_NAME"})


def _describe_fault(source: str, pos: int, expected: set[str]) -> tuple[str, str, str]:
    """(message, hint, offending text) for the character at ``pos`` inside a tag."""
    rest = source[pos:]
    ch = rest[:1]
    if rest.startswith("}}") or rest.startswith("~}}"):
        tag_start = _last_tag_open(source, pos)
        tag = source[tag_start:pos + (3 if rest.startswith("~") else 2)]
        if expected & _VALUE_STARTS:
            return "the tag ends where a value was expected", f"complete the expression in {tag!r}", "}}"
        return "the tag ends too early", f"complete the tag {tag!r}", "}}"
    if ch in "'\"":
        return "unterminated string", f"the string starting here is never closed: add a matching {ch}", rest[:20]
    if ch == "=":
        return ("'=' outside a keyword argument", "use '==' to compare, or name=value right after a command's "
                "arguments, e.g. {{gen 'x' max_tokens=5}}", ch)
    if ch == "}":
        return "unexpected '}' inside a tag", "tags close with '}}'", ch
    if ch == "{":
        return "unexpected '{' inside a tag", "tags cannot nest; to use a value inside a tag just name it", ch
    return (f"unexpected character {ch!r} inside a tag",
            "tags hold names, literals, calls and operators; write a literal '{{' in text as '\\{{'", ch)


def _syntax_error(exc: UnexpectedInput, source: str, name: Optional[str]) -> TemplateSyntaxError:
    def error(message: str, pos: int, hint: str, text: str) -> TemplateSyntaxError:
        line, col = _line_col(source, pos)
        return TemplateSyntaxError(message, line=line, col=col, source=source, hint=hint, text=text, name=name)

    error_pos = getattr(exc, "pos_in_stream", None)
    if error_pos is None and isinstance(exc, UnexpectedToken):
        error_pos = exc.token.start_pos if exc.token.type != "$END" else len(source)
    comment_start = _last_tag_open(source, (error_pos if error_pos is not None else len(source)) + 1)
    if comment_start >= 0 and source.startswith(("{{!", "{{~!"), comment_start):
        long_form = source.startswith(("{{!--", "{{~!--"), comment_start)
        return error("unclosed comment: it is never closed with " + ("'--}}'" if long_form else "'}}'"),
                     comment_start, "end the comment with " + ("--}}" if long_form else "}}"),
                     source[comment_start:comment_start + 20])
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        open_pos = max(_last_tag_open(source, len(source)), 0)
        return error("unclosed tag: '{{' is never closed with '}}'", open_pos, "add '}}' to end the tag",
                     source[open_pos:open_pos + 40])
    if isinstance(exc, UnexpectedCharacters):
        message, hint, text = _describe_fault(source, exc.pos_in_stream, set(exc.allowed or ()))
        return error(message, exc.pos_in_stream, hint, text)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    unclosed = _unclosed_tag_before(source, tok.start_pos)
    if unclosed is not None:
        return error("unclosed tag: '{{' is never closed with '}}'", unclosed,
                     "add '}}' to end the tag before the next '{{'", source[unclosed:unclosed + 40].split("\n")[0])
    expected = set(exc.expected)
    if tok.type == "TAG_OPEN":
        tag_start = _last_tag_open(source, tok.start_pos)
        return error("unclosed tag: '{{' is never closed with '}}'", tag_start,
                     "add '}}' to end the tag before the next '{{'", source[tag_start:tok.start_pos])
    if tok.type in ("TEXT", "TAG_CLOSE", "RBRACE", "EQUAL"):  # TEXT: the lexer found no tag token here
        message, hint, text = _describe_fault(source, tok.start_pos, expected)
        return error(message, tok.start_pos, hint, text)
    value = str(tok)
    if tok.type == "NAME" and "TAG_CLOSE" in expected:
        hint = "a tag holds one expression; to call a helper with arguments, name it first: {{helper a b}}"
    else:
        hint = "check the tag's syntax: {{name arg key=value}}, {{#block …}}, {{/block}}"
    return error(f"unexpected {value!r} in tag", tok.start_pos, hint, value)


# The fast path. Text, escapes and comments are found by one regex (they are regular); each distinct tag text is
# parsed once with the grammar's `tag` start symbol and reused. The tag pattern mirrors the grammar's terminals
# (strings may hold '}}'; in a run of closing braces the last two close the tag). Anything it can't split cleanly
# (an unclosed tag, `{{x}}}`) goes to the full Lark parse, which also produces every syntax error message.
_SCAN = re.compile(r"""
    (?P<esc>\\\{\{)
  | (?P<comment>\{\{~?!--.*?--~?\}\}|\{\{~?!(?!--).*?~?\}\})
  | (?P<tag>\{\{~?(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^"'}]|\}(?!\})|\}(?=\}\}))*?~?\}\}(?!\}))
  | (?P<open>\{\{)
""", re.DOTALL | re.VERBOSE)
_TAG_MEMO: dict[str, tuple[str, Any, bool, bool, Any]] = {}
_TAG_MEMO_LIMIT = 20_000


def _tag_shape(tag: str) -> tuple[str, Any, bool, bool, Any]:
    shape = _TAG_MEMO.get(tag)
    if shape is None:
        piece = _get_lark().parse(tag, start="tag")
        shape = (piece.kind, piece.payload, piece.strip_left, piece.strip_right,
                 _compile_payload(piece.kind, piece.payload))
        if len(_TAG_MEMO) < _TAG_MEMO_LIMIT:
            _TAG_MEMO[tag] = shape
    return shape


def _fast_pieces(source: str) -> Optional[list[_Piece]]:
    """Pieces via the scanner and the tag memo, or None when the full parse must decide."""
    pieces: list[_Piece] = []
    pos = 0
    line = 1
    line_start = 0  # offset of the current line's first character

    def advance(to: int) -> None:
        nonlocal line, line_start
        count = source.count("\n", pos, to)
        if count:
            line += count
            line_start = source.rindex("\n", pos, to) + 1

    for m in _SCAN.finditer(source):
        start = m.start()
        if start > pos:
            pieces.append(_Piece("text", line, pos - line_start + 1, pos, start, text=source[pos:start]))
            advance(start)
            pos = start
        kind = m.lastgroup
        end = m.end()
        col = start - line_start + 1
        if kind == "open":
            return None
        if kind == "esc":
            pieces.append(_Piece("escaped", line, col, start, end, text="{{"))
        elif kind == "comment":
            text = m.group()
            pieces.append(_Piece("comment", line, col, start, end, strip_left=text.startswith("{{~"),
                                 strip_right=text.endswith("~}}")))
        else:
            try:
                tag_kind, payload, strip_left, strip_right, compiled = _tag_shape(m.group())
            except (UnexpectedInput, VisitError, _Fault):
                return None
            pieces.append(_Piece(tag_kind, line, col, start, end, strip_left, strip_right, payload=payload,
                                 compiled=compiled))
        advance(end)
        pos = end
    if pos < len(source):
        pieces.append(_Piece("text", line, pos - line_start + 1, pos, len(source), text=source[pos:]))
    return pieces


def _lark_pieces(source: str) -> list[_Piece]:
    """Run Lark; when a tag is followed by text starting with '}' (``{{x}}}``), parse the two halves separately."""
    try:
        pieces = _get_lark().parse(source, start="start")
    except UnexpectedToken as exc:
        tok = exc.token
        if "TAG_CLOSE" in exc.expected and source.startswith("}}}", tok.start_pos):
            cut = tok.start_pos + 2
            head = _lark_pieces(source[:cut])
            tail = _lark_pieces(source[cut:])
            line_shift = source.count("\n", 0, cut)
            col_shift = cut - (source.rfind("\n", 0, cut) + 1)
            for piece in tail:
                if piece.line == 1:
                    piece.col += col_shift
                piece.line += line_shift
                piece.start += cut
                piece.end += cut
            return head + tail
        raise
    return pieces if isinstance(pieces, list) else []


def _parse_uncached(source: str, name: Optional[str], fast: bool = True) -> n.Template:
    try:
        pieces = (_fast_pieces(source) if fast else None) or _lark_pieces(source)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, _Fault):
            raise TemplateSyntaxError(inner.message, line=inner.line, col=inner.col, source=source, hint=inner.hint,
                                      name=name) from None
        raise  # pragma: no cover - a bug in the transformer, not user input
    except _Fault as inner:
        raise TemplateSyntaxError(inner.message, line=inner.line, col=inner.col, source=source, hint=inner.hint,
                                  name=name) from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, name) from None
    _apply_whitespace_control(pieces)
    return n.Template(_build(pieces, source, name), source)


_cache_lock = threading.Lock()


@lru_cache(maxsize=512)
def _parse_cached(source: str, name: Optional[str]) -> n.Template:
    return _parse_uncached(source, name)


def parse(source: Union[str, Any], name: Optional[str] = None) -> n.Template:
    """Parse template text (cached by text: a second Program with the same text costs a dict lookup)."""
    if not isinstance(source, str):
        raise TypeError(f"a template must be a str, not {type(source).__name__}")
    return _parse_cached(source, name)
