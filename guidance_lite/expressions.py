"""Expression evaluation, compiled to closures once per template, inside a sandbox.

The sandbox: names resolve only through the program's variables and the built-in helpers (no Python builtins, no
globals); attributes starting with ``_`` and the known introspection attributes (frames, code, globals, ``mro``,
``str.format``) are refused, so a template cannot reach Python internals. Values are never evaluated as code.
"""
from __future__ import annotations

import inspect
import operator
from collections.abc import Mapping
from typing import Any, Awaitable, Callable, Protocol, Union

from . import nodes as n

Evaluator = Callable[["EvalContext"], Any]  # returns the value, or an awaitable when compiled async


class EvalContext(Protocol):
    """What an expression needs from the running interpreter."""

    def lookup(self, name: str) -> Any: ...

    async def call(self, func: Any, args: list, kwargs: dict, node: n.Call) -> Any: ...


class SandboxError(AttributeError):
    """An expression tried to reach something the sandbox refuses."""


class MissingVariable(NameError):
    """A name that is neither a variable nor a helper."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_INTERNAL_ATTRS = frozenset({
    "mro", "format", "format_map", "func_globals", "func_code", "func_closure", "gi_frame", "gi_code",
    "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await", "f_globals", "f_locals",
    "f_builtins", "f_back", "f_code", "tb_frame", "tb_next", "co_code", "im_func", "im_self", "im_class",
})


def safe_getattr(obj: Any, name: str) -> Any:
    """``obj.name`` as templates see it: mapping keys first, then public attributes only."""
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
    if name.startswith("_") or name in _INTERNAL_ATTRS or getattr(type(obj), "__gl_opaque__", False):
        raise SandboxError(f"access to attribute {name!r} is not allowed in templates")
    try:
        return getattr(obj, name)
    except AttributeError:
        if getattr(type(obj), name, None) is not None:  # a property that raised: its message says why
            raise
        if isinstance(obj, Mapping):
            raise KeyError(name) from None
        raise AttributeError(f"{type(obj).__name__} value has no attribute or key {name!r}") from None


def safe_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and not isinstance(obj, Mapping) and key.startswith("_"):
        raise SandboxError(f"access to {key!r} is not allowed in templates")
    return obj[key]


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
    "%": operator.mod, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
    "is": operator.is_, "is not": operator.is_not,
}


def _check_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):  # '%' on a string is printf formatting: a way into object internals
        raise SandboxError("string formatting with % is not allowed in templates")
    return left % right


_BINOPS["%"] = _check_mod


def has_call(expr: n.Expr) -> bool:
    """True when evaluating ``expr`` may await (it calls something)."""
    if isinstance(expr, n.Call):
        return True
    if isinstance(expr, (n.Attr,)):
        return has_call(expr.obj)
    if isinstance(expr, n.Index):
        return has_call(expr.obj) or has_call(expr.key)
    if isinstance(expr, (n.BinOp, n.BoolOp)):
        return has_call(expr.left) or has_call(expr.right)
    if isinstance(expr, n.Compare):
        return has_call(expr.first) or any(has_call(e) for _, e in expr.rest)
    if isinstance(expr, n.UnaryOp):
        return has_call(expr.operand)
    if isinstance(expr, n.ListLit):
        return any(has_call(i) for i in expr.items)
    if isinstance(expr, n.DictLit):
        return any(has_call(k) or has_call(v) for k, v in expr.items)
    return False


def compile_expr(expr: n.Expr) -> tuple[Evaluator, bool]:
    """Compile to ``(fn, is_async)``; ``fn(ctx)`` returns the value, or a coroutine when ``is_async``."""
    if has_call(expr):
        return _compile_async(expr), True
    return _compile_sync(expr), False


def _compile_sync(e: n.Expr) -> Evaluator:
    if isinstance(e, n.Const):
        value = e.value
        return lambda ctx: value
    if isinstance(e, n.Var):
        name = e.name
        return lambda ctx: ctx.lookup(name)
    if isinstance(e, n.Attr):
        obj, attr = _compile_sync(e.obj), e.name
        return lambda ctx: safe_getattr(obj(ctx), attr)
    if isinstance(e, n.Index):
        obj, key = _compile_sync(e.obj), _compile_sync(e.key)
        return lambda ctx: safe_getitem(obj(ctx), key(ctx))
    if isinstance(e, n.BinOp):
        fn, left, right = _BINOPS[e.op], _compile_sync(e.left), _compile_sync(e.right)
        return lambda ctx: fn(left(ctx), right(ctx))
    if isinstance(e, n.Compare):
        first = _compile_sync(e.first)
        rest = [(_BINOPS[op], _compile_sync(x)) for op, x in e.rest]

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
    if isinstance(e, n.BoolOp):
        left, right = _compile_sync(e.left), _compile_sync(e.right)
        if e.op == "and":
            return lambda ctx: left(ctx) and right(ctx)
        return lambda ctx: left(ctx) or right(ctx)
    if isinstance(e, n.UnaryOp):
        operand = _compile_sync(e.operand)
        if e.op == "not":
            return lambda ctx: not operand(ctx)
        if e.op == "-":
            return lambda ctx: -operand(ctx)
        return lambda ctx: +operand(ctx)
    if isinstance(e, n.ListLit):
        items = [_compile_sync(i) for i in e.items]
        return lambda ctx: [i(ctx) for i in items]
    if isinstance(e, n.DictLit):
        pairs = [(_compile_sync(k), _compile_sync(v)) for k, v in e.items]
        return lambda ctx: {k(ctx): v(ctx) for k, v in pairs}
    raise TypeError(f"cannot compile {type(e).__name__}")  # pragma: no cover - grammar makes no other nodes


def _compile_async(e: n.Expr) -> Callable[["EvalContext"], Awaitable[Any]]:
    if not has_call(e):
        sync = _compile_sync(e)

        async def const_path(ctx: EvalContext) -> Any:
            return sync(ctx)
        return const_path
    if isinstance(e, n.Call):
        func = _compile_async(e.func)
        args = [_compile_async(a) for a in e.args]
        kwargs = [(k, _compile_async(v)) for k, v in e.kwargs]
        node = e

        async def call(ctx: EvalContext) -> Any:
            f = await func(ctx)
            values = [await a(ctx) for a in args]
            kw = {k: await v(ctx) for k, v in kwargs}
            return await ctx.call(f, values, kw, node)
        return call
    if isinstance(e, n.Attr):
        obj, attr = _compile_async(e.obj), e.name

        async def get_attr(ctx: EvalContext) -> Any:
            return safe_getattr(await obj(ctx), attr)
        return get_attr
    if isinstance(e, n.Index):
        obj, key = _compile_async(e.obj), _compile_async(e.key)

        async def get_item(ctx: EvalContext) -> Any:
            return safe_getitem(await obj(ctx), await key(ctx))
        return get_item
    if isinstance(e, n.BinOp):
        fn, left, right = _BINOPS[e.op], _compile_async(e.left), _compile_async(e.right)

        async def binop(ctx: EvalContext) -> Any:
            return fn(await left(ctx), await right(ctx))
        return binop
    if isinstance(e, n.Compare):
        afirst = _compile_async(e.first)
        arest = [(_BINOPS[op], _compile_async(x)) for op, x in e.rest]

        async def acompare(ctx: EvalContext) -> Any:
            left = await afirst(ctx)
            result: Any = True
            for fn, operand in arest:
                right = await operand(ctx)
                result = fn(left, right)
                if not result:
                    return result
                left = right
            return result
        return acompare
    if isinstance(e, n.BoolOp):
        left, right = _compile_async(e.left), _compile_async(e.right)
        is_and = e.op == "and"

        async def boolop(ctx: EvalContext) -> Any:
            value = await left(ctx)
            if bool(value) != is_and:
                return value
            return await right(ctx)
        return boolop
    if isinstance(e, n.UnaryOp):
        operand, op = _compile_async(e.operand), e.op

        async def unary(ctx: EvalContext) -> Any:
            value = await operand(ctx)
            return (not value) if op == "not" else (-value if op == "-" else +value)
        return unary
    if isinstance(e, n.ListLit):
        items = [_compile_async(i) for i in e.items]

        async def list_lit(ctx: EvalContext) -> Any:
            return [await i(ctx) for i in items]
        return list_lit
    if isinstance(e, n.DictLit):
        pairs = [(_compile_async(k), _compile_async(v)) for k, v in e.items]

        async def dict_lit(ctx: EvalContext) -> Any:
            return {await k(ctx): await v(ctx) for k, v in pairs}
        return dict_lit
    raise TypeError(f"cannot compile {type(e).__name__}")  # pragma: no cover


def compile_args(args: tuple[n.Expr, ...], kwargs: tuple[tuple[str, n.Expr], ...]
                 ) -> Callable[["EvalContext"], Awaitable[tuple[list, dict]]]:
    """One async evaluator for a block's or partial's arguments."""
    pos = [_compile_async(a) for a in args]
    kw = [(k, _compile_async(v)) for k, v in kwargs]

    async def evaluate(ctx: EvalContext) -> tuple[list, dict]:
        return [await a(ctx) for a in pos], {k: await v(ctx) for k, v in kw}
    return evaluate


def compile_async(expr: n.Expr) -> Callable[["EvalContext"], Awaitable[Any]]:
    """An async evaluator whatever the expression (for conditions and other rarely hot places)."""
    return _compile_async(expr)


async def maybe_await(value: Any) -> Any:
    """Await coroutines and other awaitables returned by helpers (async def helpers)."""
    while inspect.isawaitable(value):
        value = await value
    return value


Compiled = Union[Evaluator, Callable[["EvalContext"], Awaitable[Any]]]
