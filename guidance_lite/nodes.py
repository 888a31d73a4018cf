"""AST node types. Immutable, so one parsed template is shared by every Program made from the same text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Optional


@dataclass(frozen=True, slots=True)
class Node:
    """Base: every node knows where it starts in the template (1-based line and column)."""

    line: int
    col: int


# ---- expressions ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Expr(Node):
    """Base of expression nodes."""


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """A literal value."""

    value: Any


@dataclass(frozen=True, slots=True)
class Var(Expr):
    """A name: a variable, a helper, ``this`` or an ``@`` name (``@index``, ``@prefix`` …)."""

    name: str


@dataclass(frozen=True, slots=True)
class Attr(Expr):
    """``obj.name`` (mapping keys win over attributes)."""

    obj: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """``obj[key]``."""

    obj: Expr
    key: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A call, written ``f(a, k=v)`` or handlebars-style ``f a k=v``; ``command`` marks the latter."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    command: bool = False


@dataclass(frozen=True, slots=True)
class BinOp(Expr):
    """Arithmetic and comparison: ``op`` is the Python operator text."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    """A comparison chain with Python's meaning: ``a < b < c`` is ``a < b and b < c`` (``b`` evaluated once)."""

    first: Expr
    rest: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class BoolOp(Expr):
    """``and`` / ``or`` with short-circuit."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class UnaryOp(Expr):
    """``not``, unary ``-`` and ``+``."""

    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class ListLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class DictLit(Expr):
    items: tuple[tuple[Expr, Expr], ...]


# ---- template nodes --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Text(Node):
    """Literal template text (whitespace control already applied)."""

    text: str


@dataclass(frozen=True, slots=True)
class Output(Node):
    """``{{expr}}`` or ``{{command args}}``: evaluates and inserts the value (commands may emit text themselves).

    ``before`` / ``after`` are the literal template text right before and after the tag in the same section ("" when
    a tag, a block or the section's edge is there): what ``gen`` reads to infer its stop, as guidance 0.0.64 did."""

    expr: Expr
    source: str = ""
    fn: Any = field(default=None, compare=False, repr=False)  # compiled evaluator (expressions.compile_expr)
    is_async: bool = field(default=False, compare=False, repr=False)
    before: str = field(default="", compare=False, repr=False)
    after: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Branch(Node):
    """A section of a block after a separator: ``{{else}}``, ``{{elif cond}}`` or ``{{or}}``."""

    kind: str  # 'else' | 'elif' | 'or'
    cond: Optional[Expr]
    body: tuple[Node, ...]
    cond_fn: Any = field(default=None, compare=False, repr=False)  # async evaluator of ``cond``


@dataclass(frozen=True, slots=True)
class Block(Node):
    """``{{#name args}} body {{sep}} … {{/name}}``."""

    name: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    body: tuple[Node, ...]
    branches: tuple[Branch, ...] = ()
    end_line: int = 0
    args_fn: Any = field(default=None, compare=False, repr=False)  # async: ctx -> (args list, kwargs dict)


@dataclass(frozen=True, slots=True)
class Partial(Node):
    """``{{>name args}}``: runs another Program or template string in place."""

    target: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    args_fn: Any = field(default=None, compare=False, repr=False)  # async: ctx -> (args list, kwargs dict)


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: the root node list plus facts the tools (`check`, display) want."""

    body: tuple[Node, ...]
    source: str = field(repr=False, default="")


# ---- walking -------------------------------------------------------------------------------------------------
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    """Names of the fields of ``cls`` that may hold child nodes: not names, operators or flags (``str``, ``int``,
    ``bool``), nor compiled evaluators (not compared)."""
    names = _CHILD_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls) if f.compare and f.type not in ("str", "int", "bool"))
        _CHILD_FIELDS[cls] = names
    return names


def iter_child_nodes(node: Node) -> Iterator[Node]:
    """The direct child nodes of ``node`` in source (and evaluation) order, as Jinja2's ``iter_child_nodes``: a
    call's function then its arguments, a block's arguments, body and then branches. Names and operators are not
    nodes; ``(name, expr)`` keyword pairs and ``(key, value)`` dict items yield their expressions."""
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item
                elif isinstance(item, tuple):
                    for part in item:
                        if isinstance(part, Node):
                            yield part


def path_of(expr: Optional[Node]) -> Optional[str]:
    """The dotted name a plain path expression reads (``xs``, ``obj.items``, ``d["k"]`` → ``d.k``, ``xs[0]`` →
    ``xs.0``), the form variable writes take; None for anything else (a call, an ``@`` name, a key with a dot)."""
    if isinstance(expr, Var):
        return expr.name if not expr.name.startswith("@") else None
    if isinstance(expr, Attr):
        base = path_of(expr.obj)
        return f"{base}.{expr.name}" if base is not None else None
    if isinstance(expr, Index) and isinstance(expr.key, Const) and type(expr.key.value) in (str, int):
        base, key = path_of(expr.obj), str(expr.key.value)
        return f"{base}.{key}" if base is not None and key and "." not in key else None
    return None


def string_value(expr: Optional[Node]) -> Optional[str]:
    """The value of a string literal node, else None (what static tools can know of a name without running)."""
    return expr.value if isinstance(expr, Const) and isinstance(expr.value, str) else None
