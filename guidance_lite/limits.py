"""Budgets on what one run of a template may consume: ``Limits`` (the numbers, settable per Program and per call)
and ``Budget`` (one run's counters against them), plus the size checks of the operations that can build big values.

Why: a template is code, and code written carelessly or with hostile intent can allocate gigabytes (``'a' *
1000000000``), loop for minutes or recurse until Python gives up. Every such resource has one number here with a
default that real programs never reach, and going past it is an error that names the limit, its value and how to
raise it — never a hang, an out-of-memory kill or a ``RecursionError``.

This module imports only ``errors``: the parser, the expression compiler, the sandbox and the interpreter all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .errors import GuidanceLiteError

_BITS_PER_DIGIT = 3.3219280948873626  # log2(10)
_SIZED = (str, bytes, bytearray, list, tuple)  # the values `+` and `*` build by copying


@dataclass(frozen=True)
class Limits:
    """What one run may consume. Pass ``gl.Program(..., limits=gl.Limits(max_loop_iterations=…))`` or per call
    ``program(limits=…)``; the defaults are far above what real programs use and bound hostile ones."""

    max_value_size: int = field(
        default=10_000_000,
        metadata={
            "doc": "characters of a string, items of a list, bytes built by `+`, `*`, `add`, `multiply`, `join`, "
            "`range` and the padding string methods"
        },
    )
    max_int_digits: int = field(
        default=4_300,
        metadata={"doc": "decimal digits of an int built by `*` or `multiply` (Python prints no longer int)"},
    )
    max_output_size: int = field(
        default=50_000_000, metadata={"doc": "characters of text one run writes (transcript and captured text)"}
    )
    max_loop_iterations: int = field(
        default=100_000,
        metadata={
            "doc": "loop-body runs in one run, over all loops (`each`, `geneach`, and any loop block: they call "
            "`interp.count_iteration(node)`)"
        },
    )
    max_steps: int = field(
        default=10_000_000,
        metadata={"doc": "evaluation steps in one run: template nodes rendered plus calls made"},
    )
    max_parallel: int = field(
        default=16, metadata={"doc": "iterations of `{{#each … parallel=True}}` running at the same time"}
    )
    max_nesting_depth: int = field(
        default=100,
        metadata={
            "doc": "nesting of an expression (brackets, operators, `not`) and of blocks, checked when the Program "
            "is created (partial and `{{parse}}` strings: when they are parsed in the run)"
        },
    )
    max_partial_depth: int = field(
        default=20, metadata={"doc": "partials (`{{>p}}`) and `{{parse}}` templates running inside each other"}
    )
    regex_seconds: float = field(default=1.0, metadata={"doc": "seconds one `stop_regex` or `pattern` match may take"})

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Limits.{spec.name} must be a positive number, got {value!r}")

    @staticmethod
    def documented() -> list[tuple[str, Any, str]]:
        """(name, default, what it bounds) for every limit: what the README and SECURITY.md list."""
        defaults = Limits()
        return [(spec.name, getattr(defaults, spec.name), spec.metadata["doc"]) for spec in fields(Limits)]


DEFAULT_LIMITS = Limits()


class LimitExceeded(GuidanceLiteError, RuntimeError):
    """A run went past one of its ``Limits``. The interpreter turns it into a ``TemplateRuntimeError`` at the
    template line (this error is its ``__cause__``); ``limit`` names the field, ``value`` is its setting."""

    def __init__(self, limit: str, value: Any, what: str) -> None:
        self.limit = limit
        self.value = value
        self.what = what
        shown = f"{value:,}" if isinstance(value, int) else f"{value}"
        super().__init__(f"{what}: over the limit {limit}={shown}")

    @property
    def hint(self) -> str:
        return (
            f"if the program really needs more, raise it: gl.Program(..., limits=gl.Limits({self.limit}=…)) "
            f"or per call program(..., limits=gl.Limits({self.limit}=…))"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.limit, self.value, self.what))


def nesting_hint(limit: int) -> str:
    """The hint of a syntax error for a template nested deeper than ``max_nesting_depth``."""
    return (
        "split the expression or the blocks (e.g. compute parts with {{set}}), or raise the limit: "
        f"gl.Program(..., limits=gl.Limits(max_nesting_depth=…)) (now {limit})"
    )


class Budget:
    """One run's counters against its ``Limits``; shared by the run's interpreter and its parallel forks."""

    __slots__ = ("iterations", "limits", "output", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.iterations = 0
        self.steps = 0
        self.output = 0

    def count_iteration(self, what: str = "loop") -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_loop_iterations:
            raise LimitExceeded(
                "max_loop_iterations", self.limits.max_loop_iterations, f"{what}: too many loop iterations"
            )

    def reserve_iterations(self, count: int, what: str) -> None:
        """Count ``count`` iterations at once (a parallel loop knows its length before it starts)."""
        if self.iterations + count > self.limits.max_loop_iterations:
            raise LimitExceeded(
                "max_loop_iterations",
                self.limits.max_loop_iterations,
                f"{what}: {count:,} iterations would exceed the run's loop budget",
            )
        self.iterations += count

    def count_step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise LimitExceeded("max_steps", self.limits.max_steps, "the run takes too many evaluation steps")

    def count_output(self, size: int) -> None:
        self.output += size
        if self.output > self.limits.max_output_size:
            raise LimitExceeded("max_output_size", self.limits.max_output_size, "the run writes too much text")


# ---- sized operations -----------------------------------------------------------------------------------------------
def check_size(size: int, limits: Limits, what: str) -> None:
    """Refuse to build a value of ``size`` characters/items (checked before the value is allocated)."""
    if size > limits.max_value_size:
        raise LimitExceeded("max_value_size", limits.max_value_size, f"{what} would make a value of {size:,} items")


def _check_int_product(a: int, b: int, limits: Limits, what: str) -> None:
    bits = a.bit_length() + b.bit_length()
    if bits > limits.max_int_digits * _BITS_PER_DIGIT + 4:
        raise LimitExceeded(
            "max_int_digits",
            limits.max_int_digits,
            f"{what} would make an int of about {int(bits / _BITS_PER_DIGIT):,} digits",
        )


def checked_mul(a: Any, b: Any, limits: Limits) -> Any:
    """``a * b``, refused before allocating when the result would be over the size limits."""
    if isinstance(a, int) and isinstance(b, int):
        _check_int_product(a, b, limits, "*")
    elif isinstance(a, _SIZED) and isinstance(b, int):
        check_size(len(a) * b, limits, "*")
    elif isinstance(b, _SIZED) and isinstance(a, int):
        check_size(len(b) * a, limits, "*")
    return a * b


def checked_add(a: Any, b: Any, limits: Limits) -> Any:
    """``a + b``, refused before allocating when a string or list result would be over ``max_value_size``."""
    if isinstance(a, _SIZED) and isinstance(b, _SIZED):
        check_size(len(a) + len(b), limits, "+")
    return a + b


def checked_join(items: Any, separator: Any, limits: Limits) -> str:
    """``separator.join(str(item) for item in items)`` within ``max_value_size``."""
    sep = str(separator)
    parts: list[str] = []
    size = -len(sep)
    for item in items:  # counted as it goes: the check fires before the whole result exists
        part = str(item)
        size += len(part) + len(sep)
        check_size(size, limits, "join")
        parts.append(part)
    return sep.join(parts)


def checked_range(args: tuple, limits: Limits) -> range:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
        raise TypeError("range takes 1 to 3 integers")
    r = range(*args)
    try:
        size = len(r)
    except OverflowError:  # more items than a machine word counts
        size = limits.max_value_size + 1
    check_size(size, limits, "range")
    return r


def limits_from(value: Optional[Limits]) -> Limits:
    """The ``limits=`` option checked (None: the defaults)."""
    if value is None:
        return DEFAULT_LIMITS
    if not isinstance(value, Limits):
        raise TypeError(f"limits= takes a gl.Limits(...), got {type(value).__name__}")
    return value


__all__ = [
    "Limits",
    "DEFAULT_LIMITS",
    "LimitExceeded",
    "Budget",
    "nesting_hint",
    "check_size",
    "checked_mul",
    "checked_add",
    "checked_join",
    "checked_range",
    "limits_from",
]
