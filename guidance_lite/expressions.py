"""Expression evaluation, compiled to closures once per template, inside a sandbox.

Names resolve only through the program's variables and the built-in helpers (no Python builtins, no globals); every
attribute and item goes through the sandbox policy (``sandbox.POLICY``), and ``+`` and ``*`` are checked against the
run's size limits (``limits``) before they allocate. Values are never evaluated as code.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import nodes as n
from .errors import GuidanceLiteError
from .limits import Limits, checked_add, checked_mul
from .sandbox import POLICY

Evaluator = Callable[["EvalContext"], Any]  # returns the value, or an awaitable when compiled to await


class EvalContext(Protocol):
    """What an expression needs from the running interpreter."""

    limits: Limits  # the run's size limits (``+`` and ``*`` check them)

    def lookup(self, name: str) -> Any: ...

    async def call(self, func: Any, args: list, kwargs: dict, node: n.Call) -> Any: ...


class MissingVariable(GuidanceLiteError, NameError):
    """A name that is neither a variable nor a helper."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


# `+` and `*` are in _SIZED_BINOPS: they can build big values, so they get the run's limits
_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "-": operator.sub,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": POLICY.modulo,  # '%' on a string is printf formatting, which the sandbox refuses
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": operator.is_,
    "is not": operator.is_not,
}


_SIZED_BINOPS: dict[str, Callable[[Any, Any, Limits], Any]] = {"+": checked_add, "*": checked_mul}


_UNARY: dict[str, Callable[[Any], Any]] = {"not": operator.not_, "-": operator.neg, "+": operator.pos}


def has_call(expr: n.Expr) -> bool:
    """True when evaluating ``expr`` may await (it calls something)."""
    if isinstance(expr, n.Call):
        return True
    return any(isinstance(child, n.Expr) and has_call(child) for child in n.iter_child_nodes(expr))


def compile_expr(expr: n.Expr) -> tuple[Evaluator, bool]:
    """Compile to ``(fn, is_async)``; ``fn(ctx)`` returns the value, or a coroutine when ``is_async``."""
    is_async = has_call(expr)
    return _compile(expr, is_async), is_async


def _compile(e: n.Expr, awaits: bool) -> Evaluator:
    """One compiler for both kinds of evaluator. With ``awaits`` every evaluator returns an awaitable (only calls
    really await; a call-free subtree is compiled plain and wrapped once), without it a plain value — so
    expressions that call nothing, the common case, never pay for a coroutine."""
    if awaits and not has_call(e):
        return _lift(_compile(e, False))
    if isinstance(e, n.Const):
        value = e.value
        return lambda ctx: value
    if isinstance(e, n.Var):
        name = e.name
        return lambda ctx: ctx.lookup(name)
    if isinstance(e, n.Call):  # only reached when awaiting: a call always may
        return _compile_call(e)
    if isinstance(e, n.BoolOp):
        left, right = _compile(e.left, awaits), _compile(e.right, awaits)
        return (_bool_async if awaits else _bool_sync)(e.op == "and", left, right)
    if isinstance(e, n.UnaryOp) and e.op == "not" and not awaits:  # `{{#if not done}}`: no call for `not`
        operand = _compile(e.operand, False)
        return lambda ctx: not operand(ctx)
    if isinstance(e, n.Compare):
        first = _compile(e.first, awaits)
        rest = [(_BINOPS[op], _compile(x, awaits)) for op, x in e.rest]
        return (_compare_async if awaits else _compare_sync)(first, rest)
    if isinstance(e, n.ListLit):
        items = [_compile(x, awaits) for x in e.items]
        return _list_async(items) if awaits else lambda ctx: [item(ctx) for item in items]
    if isinstance(e, n.DictLit):
        pairs = [(_compile(k, awaits), _compile(v, awaits)) for k, v in e.items]
        return _dict_async(pairs) if awaits else lambda ctx: {k(ctx): v(ctx) for k, v in pairs}
    if isinstance(e, n.BinOp) and e.op in _SIZED_BINOPS:
        return _sized(_SIZED_BINOPS[e.op], _compile(e.left, awaits), _compile(e.right, awaits), awaits)
    op, children, constants = _operation(e)
    return (_apply_async if awaits else _apply_sync)(op, [_compile(child, awaits) for child in children], constants)


def _operation(e: n.Expr) -> tuple[Callable[..., Any], list[n.Expr], tuple]:
    """What a node of one or two children computes: ``op(*child values, *constants)`` (only a one-child node has
    constants: an attribute's name)."""
    if isinstance(e, n.Attr):
        return POLICY.getattr, [e.obj], (e.name,)
    if isinstance(e, n.Index):
        return POLICY.getitem, [e.obj, e.key], ()
    if isinstance(e, n.BinOp):
        return _BINOPS[e.op], [e.left, e.right], ()
    if isinstance(e, n.UnaryOp):
        return _UNARY[e.op], [e.operand], ()
    raise TypeError(f"cannot compile {type(e).__name__}")  # pragma: no cover - grammar makes no other nodes


def _sized(op: Callable[[Any, Any, Limits], Any], left: Evaluator, right: Evaluator, awaits: bool) -> Evaluator:
    """``+`` and ``*``: the operation gets the run's limits, so it can refuse a value too big before building it."""
    if awaits:

        async def sized(ctx: EvalContext) -> Any:
            return op(await left(ctx), await right(ctx), ctx.limits)

        return sized
    return lambda ctx: op(left(ctx), right(ctx), ctx.limits)


def _apply_sync(op: Callable[..., Any], children: list[Evaluator], constants: tuple) -> Evaluator:
    if len(children) == 2:
        left, right = children
        return lambda ctx: op(left(ctx), right(ctx))
    (only,) = children
    if constants:
        (constant,) = constants
        return lambda ctx: op(only(ctx), constant)
    return lambda ctx: op(only(ctx))


def _apply_async(op: Callable[..., Any], children: list[Evaluator], constants: tuple) -> Evaluator:
    if len(children) == 2:
        left, right = children

        async def apply2(ctx: EvalContext) -> Any:
            return op(await left(ctx), await right(ctx))

        return apply2
    (only,) = children
    constant = constants[0] if constants else None

    async def apply1(ctx: EvalContext) -> Any:
        return op(await only(ctx), constant) if constants else op(await only(ctx))

    return apply1


def _list_async(items: list[Evaluator]) -> Evaluator:
    async def list_lit(ctx: EvalContext) -> Any:
        values = []
        for item in items:  # a loop, not a comprehension: an awaiting comprehension is one more coroutine
            values.append(await item(ctx))
        return values

    return list_lit


def _dict_async(pairs: list[tuple[Evaluator, Evaluator]]) -> Evaluator:
    async def dict_lit(ctx: EvalContext) -> Any:
        values = {}
        for key, value in pairs:
            k = await key(ctx)  # the key first, as in Python's own dict displays
            values[k] = await value(ctx)
        return values

    return dict_lit


def _lift(sync: Evaluator) -> Evaluator:
    async def plain(ctx: EvalContext) -> Any:
        return sync(ctx)

    return plain


def _compile_call(e: n.Call) -> Evaluator:
    func = _compile(e.func, True)
    args = [_compile(a, True) for a in e.args]
    kwargs = [(k, _compile(v, True)) for k, v in e.kwargs]

    async def call(ctx: EvalContext) -> Any:
        f = await func(ctx)
        values = [await a(ctx) for a in args]
        kw = {k: await v(ctx) for k, v in kwargs}
        return await ctx.call(f, values, kw, e)

    return call


def _bool_sync(is_and: bool, left: Evaluator, right: Evaluator) -> Evaluator:
    if is_and:
        return lambda ctx: left(ctx) and right(ctx)
    return lambda ctx: left(ctx) or right(ctx)


def _bool_async(is_and: bool, left: Evaluator, right: Evaluator) -> Evaluator:
    async def boolop(ctx: EvalContext) -> Any:
        value = await left(ctx)
        if bool(value) != is_and:
            return value
        return await right(ctx)

    return boolop


def _compare_sync(first: Evaluator, rest: list[tuple[Callable[[Any, Any], Any], Evaluator]]) -> Evaluator:
    def compare(ctx: EvalContext) -> Any:
        left = first(ctx)
        result: Any = True
        for fn, operand in rest:
            right = operand(ctx)
            result = fn(left, right)
            if not result:
                return result
            left = right
        return result

    return compare


def _compare_async(first: Evaluator, rest: list[tuple[Callable[[Any, Any], Any], Evaluator]]) -> Evaluator:
    async def compare(ctx: EvalContext) -> Any:
        left = await first(ctx)
        result: Any = True
        for fn, operand in rest:
            right = await operand(ctx)
            result = fn(left, right)
            if not result:
                return result
            left = right
        return result

    return compare


def compile_args(
    args: tuple[n.Expr, ...], kwargs: tuple[tuple[str, n.Expr], ...]
) -> Callable[[EvalContext], Awaitable[tuple[list, dict]]]:
    """One async evaluator for a block's or partial's arguments."""
    pos = [_compile(a, True) for a in args]
    kw = [(k, _compile(v, True)) for k, v in kwargs]

    async def evaluate(ctx: EvalContext) -> tuple[list, dict]:
        return [await a(ctx) for a in pos], {k: await v(ctx) for k, v in kw}

    return evaluate


def compile_async(expr: n.Expr) -> Callable[[EvalContext], Awaitable[Any]]:
    """An async evaluator whatever the expression (for conditions and other rarely hot places)."""
    return _compile(expr, True)


async def maybe_await(value: Any) -> Any:
    """Await coroutines and other awaitables returned by helpers (async def helpers)."""
    while inspect.isawaitable(value):
        value = await value
    return value
