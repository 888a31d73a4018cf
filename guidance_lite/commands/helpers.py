"""Plain helpers of guidance 0.0.64 (``{{add 1 2}}`` or ``{{add(1, 2)}}``)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

from ..control import BreakLoop, ContinueLoop
from ..registry import command


def helper(name: str, fn: Callable[..., Any]) -> None:
    async def call(interp: Any, node: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    call.__name__ = name
    command(name)(call)


def _range(*args: int) -> range:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
        raise TypeError("range takes 1 to 3 integers")
    r = range(*args)
    if len(r) > 10_000_000:
        raise ValueError("range is too large for a template (more than 10,000,000 items)")
    return r


def _contains(container: Any, item: Any) -> bool:
    return item in container


def _strip(value: Any, chars: Any = None) -> str:
    return str(value).strip(chars)


for _name, _fn in {
    "callable": callable,
    "len": len,
    "range": _range,
    "contains": _contains,
    "equal": operator.eq,
    "notequal": operator.ne,
    "greater": operator.gt,
    "less": operator.lt,
    "add": lambda *a: _sum(a),
    "subtract": operator.sub,
    "multiply": lambda *a: _product(a),
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
    "join": lambda items, sep="": str(sep).join(str(i) for i in items),
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "abs": abs,
    "round": round,
}.items():
    helper(_name, cast(Callable[..., Any], _fn))


def _sum(values: tuple) -> Any:
    if not values:
        raise TypeError("add needs at least one argument")
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _product(values: tuple) -> Any:
    if not values:
        raise TypeError("multiply needs at least one argument")
    total = values[0]
    for v in values[1:]:
        total = total * v
    return total


@command("break")
async def break_(interp: Any, node: Any) -> None:
    raise BreakLoop()


@command("continue")
async def continue_(interp: Any, node: Any) -> None:
    raise ContinueLoop()
