"""Plain helpers of guidance 0.0.64 (``{{add 1 2}}`` or ``{{add(1, 2)}}``)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

from ..context import RunContext
from ..control import BreakLoop, ContinueLoop
from ..limits import Limits, checked_add, checked_join, checked_mul, checked_range
from ..registry import command, positional_arity, positional_parameters


def helper(name: str, fn: Callable[..., Any]) -> None:
    """Register a plain function as a command; its arity (when Python can tell it) is checked as for commands."""

    async def call(interp: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    call.__name__ = name
    try:
        arity, parameters = positional_arity(fn, skip=0), positional_parameters(fn, skip=0)
    except (TypeError, ValueError):  # builtins without a signature: Python's own message counts right
        arity, parameters = (0, None), ()
    command(name, arity=arity, parameters=parameters)(call)


# ---- helpers that build values: checked against the run's size limits before they allocate
@command("range")
async def range_(interp: RunContext, node: Any, *args: int) -> range:
    return checked_range(args, interp.limits)


@command("add")
async def add(interp: RunContext, node: Any, *values: Any) -> Any:
    return _fold("add", values, checked_add, interp.limits)


@command("multiply")
async def multiply(interp: RunContext, node: Any, *values: Any) -> Any:
    return _fold("multiply", values, checked_mul, interp.limits)


def _fold(name: str, values: tuple, op: Callable[[Any, Any, Limits], Any], limits: Limits) -> Any:
    """``values[0] op values[1] op …`` left to right, each step checked against the size limits."""
    if not values:
        raise TypeError(f"{name} needs at least one argument")
    total = values[0]
    for value in values[1:]:
        total = op(total, value, limits)
    return total


@command("join")
async def join(interp: RunContext, node: Any, items: Any, sep: Any = "") -> str:
    return checked_join(items, sep, interp.limits)


def _contains(container: Any, item: Any) -> bool:
    return item in container


def _strip(value: Any, chars: Any = None) -> str:
    return str(value).strip(chars)


for _name, _fn in {
    "callable": callable,
    "len": len,
    "contains": _contains,
    "equal": operator.eq,
    "notequal": operator.ne,
    "greater": operator.gt,
    "less": operator.lt,
    "subtract": operator.sub,
    "strip": _strip,
    "not": operator.not_,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "min": min,
    "max": max,
    "sorted": sorted,
    "enumerate": lambda x: list(enumerate(x)),
    "zip": lambda *a: list(zip(*a)),
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "abs": abs,
    "round": round,
}.items():
    helper(_name, cast(Callable[..., Any], _fn))


@command("break")
async def break_(interp: Any, node: Any) -> None:
    raise BreakLoop()


@command("continue")
async def continue_(interp: Any, node: Any) -> None:
    raise ContinueLoop()
