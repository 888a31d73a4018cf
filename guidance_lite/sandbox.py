"""The sandbox policy: the one place that decides what a template may read and call.

In the spirit of Jinja2's ``SandboxedEnvironment`` (``is_safe_attribute``, ``is_safe_callable``) and
``ImmutableSandboxedEnvironment`` (no mutating methods of lists, dicts, sets …). Templates reach Python objects only
through the values a program is given; from those they may read public data and call what they were handed, but:

- no attribute starting with ``_`` and none of the introspection attributes (``mro``, frames, code, globals);
- no attribute or item whose value is a module, a frame, code, a traceback, a closure cell or a module's globals
  (so a passed ``datetime`` or ``pathlib`` is not a door to ``sys`` or ``os``);
- nothing ``functools.partial`` wraps (``func``, ``args``, ``keywords``);
- no method that changes a list, dict, set, deque, bytearray or array in place: templates never change what they are
  given; ``{{set}}`` and ``{{gen 'obj.x'}}`` write into the run's own copy;
- no ``str.format`` / ``%``-formatting (a way into object internals), no ``eval``/``exec``/``open``/``getattr``-like
  builtins even when passed in, and no padding method asked for a string over the size limit.

``expressions.py`` asks it for every attribute and item; the interpreter asks it before every call.
"""

from __future__ import annotations

import array
import builtins
import collections
import functools
import sys
import types
from collections import abc
from collections.abc import Mapping
from typing import Any, Optional

from .errors import GuidanceLiteError
from .limits import Limits, check_size


class SandboxError(GuidanceLiteError, AttributeError):
    """An expression tried to reach something the sandbox refuses; ``hint`` says what to write instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.hint))


# Attributes that lead into the interpreter's internals (besides every name starting with "_").
INTERNAL_ATTRIBUTES = frozenset(
    {
        "mro",
        "format",
        "format_map",
        "func_globals",
        "func_code",
        "func_closure",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "tb_frame",
        "tb_next",
        "co_code",
        "im_func",
        "im_self",
        "im_class",
    }
)

# Values a template may never hold: they lead to the interpreter, the file system or the whole process.
UNREACHABLE_TYPES: tuple[type, ...] = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.CellType,
)

# What a wrapper exposes of what it wraps.
_WRAPPER_ATTRIBUTES: tuple[tuple[type, frozenset[str]], ...] = (
    (functools.partial, frozenset({"func", "args", "keywords"})),
    (functools.partialmethod, frozenset({"func", "args", "keywords"})),
)

# Methods that change a container in place (Jinja2's ``_mutable_spec``, plus what later Python added).
_SET_MUTATORS = frozenset(
    {"add", "clear", "difference_update", "discard", "pop", "remove", "symmetric_difference_update", "update"}
    | {"intersection_update"}
)
_MAPPING_MUTATORS = frozenset({"clear", "pop", "popitem", "setdefault", "update", "move_to_end", "subtract"})
_SEQUENCE_MUTATORS = frozenset({"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"})
MUTATING_METHODS: tuple[tuple[Any, frozenset[str]], ...] = (
    (abc.MutableSet, _SET_MUTATORS),
    (abc.MutableMapping, _MAPPING_MUTATORS),
    (abc.MutableSequence, _SEQUENCE_MUTATORS),
    (collections.deque, _SEQUENCE_MUTATORS | {"appendleft", "extendleft", "popleft", "rotate"}),
    (bytearray, _SEQUENCE_MUTATORS),
    (
        array.array,
        _SEQUENCE_MUTATORS | {"byteswap", "frombytes", "fromfile", "fromlist", "fromunicode"},
    ),
)

_ALL_MUTATORS = frozenset().union(*(methods for _, methods in MUTATING_METHODS))
_WRAPPED_NAMES = frozenset().union(*(names for _, names in _WRAPPER_ATTRIBUTES))

# Builtins that evaluate code, import, open files, or reach attributes around the sandbox.
_UNSAFE_BUILTINS = frozenset(
    id(getattr(builtins, name))
    for name in (
        "eval",
        "exec",
        "compile",
        "__import__",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "input",
        "help",
        "exit",
        "quit",
        "memoryview",  # a writable view of a caller's bytearray
    )
    if hasattr(builtins, name)
)

# String and bytes methods that pad to a width the caller gives.
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})

_WRITE_HINT = (
    "templates never change values in place: build a new value and store it with {{set 'name' value}} "
    "(e.g. {{set 'items' items + [x]}}), or write one field with {{gen 'obj.x'}} (both go to the run's own copy)"
)


def _is_globals(value: Any) -> bool:
    """A module's namespace dict (a function's ``__globals__``, reachable through some attribute)."""
    if not isinstance(value, dict) or "__name__" not in value:
        return False
    module = sys.modules.get(value.get("__name__"))  # type: ignore[arg-type]
    return "__builtins__" in value or (module is not None and getattr(module, "__dict__", None) is value)


def mutating_method(obj: Any, name: str) -> bool:
    """True when ``obj.name`` is a method that changes ``obj`` in place (``list.append``, ``dict.update`` …; also
    the unbound ``list.append`` of the class)."""
    if name not in _ALL_MUTATORS:
        return False
    if isinstance(obj, type):
        return any(issubclass(obj, kind) and name in methods for kind, methods in MUTATING_METHODS)
    return any(isinstance(obj, kind) and name in methods for kind, methods in MUTATING_METHODS)


class SandboxPolicy:
    """Decides attribute access, item access and calls for templates (one instance, ``POLICY``, serves all runs)."""

    # ---- reading ------------------------------------------------------------------------------------------------
    def attribute_refusal(self, obj: Any, name: str) -> Optional[SandboxError]:
        """Why ``obj.name`` may not be read before looking it up (None: it may)."""
        if name.startswith("_") or name in INTERNAL_ATTRIBUTES or getattr(type(obj), "__gl_opaque__", False):
            return SandboxError(f"access to attribute {name!r} is not allowed in templates")
        for kind, hidden in _WRAPPER_ATTRIBUTES if name in _WRAPPED_NAMES else ():
            if isinstance(obj, kind) and name in hidden:
                return SandboxError(
                    f"access to {name!r} of a {kind.__name__} is not allowed in templates (it exposes what it wraps)",
                    "call it instead: {{f()}}",
                )
        if mutating_method(obj, name):
            return SandboxError(f"calling {type(obj).__name__}.{name} is not allowed in templates", _WRITE_HINT)
        return None

    def value_refusal(self, value: Any, where: str) -> Optional[SandboxError]:
        """Why a value read from an attribute or item may not reach the template (None: it may)."""
        if isinstance(value, UNREACHABLE_TYPES):
            kind = "module" if isinstance(value, types.ModuleType) else type(value).__name__
            return SandboxError(
                f"{where} is a {kind}, which templates can't reach",
                "pass the functions or values the template needs as program arguments instead",
            )
        if _is_globals(value):
            return SandboxError(f"{where} is a module's globals, which templates can't reach")
        return None

    def getattr(self, obj: Any, name: str) -> Any:
        """``obj.name`` as templates see it: mapping keys first, then public attributes that lead to data."""
        if isinstance(obj, Mapping) and name in obj:
            value = obj[name]
        else:
            refusal = self.attribute_refusal(obj, name)
            if refusal is not None:
                raise refusal
            try:
                value = getattr(obj, name)
            except AttributeError:
                if getattr(type(obj), name, None) is not None:  # a property that raised: its message says why
                    raise
                if isinstance(obj, Mapping):
                    raise KeyError(name) from None
                raise AttributeError(f"{type(obj).__name__} value has no attribute or key {name!r}") from None
        refusal = self.value_refusal(value, f"attribute {name!r}")
        if refusal is not None:
            raise refusal
        return value

    def getitem(self, obj: Any, key: Any) -> Any:
        """``obj[key]``: no private names of objects, no defaultdict insertion, no unreachable values."""
        if isinstance(key, str) and not isinstance(obj, Mapping) and key.startswith("_"):
            raise SandboxError(f"access to {key!r} is not allowed in templates")
        if isinstance(obj, collections.defaultdict) and key not in obj:
            # reading a defaultdict inserts the default: give the default without changing the caller's dict
            if obj.default_factory is None:
                raise KeyError(key)
            return obj.default_factory()
        value = obj[key]
        refusal = self.value_refusal(value, f"item {key!r}")
        if refusal is not None:
            raise refusal
        return value

    def check_result(self, value: Any, callee: str) -> Any:
        """A call's result, unless it is a value templates can't reach (a module, a frame, globals …)."""
        refusal = self.value_refusal(value, f"the result of {callee}")
        if refusal is not None:
            raise refusal
        return value

    def modulo(self, left: Any, right: Any) -> Any:
        """``left % right``: arithmetic only; on a string it is printf formatting, a way into object internals."""
        if isinstance(left, str):
            raise SandboxError("string formatting with % is not allowed in templates", "join the parts with +")
        return left % right

    # ---- calling ------------------------------------------------------------------------------------------------
    def check_call(self, func: Any, args: list, kwargs: dict, limits: Limits) -> None:
        """Refuse a call the sandbox does not allow (raises SandboxError, or LimitExceeded for a size)."""
        if id(func) in _UNSAFE_BUILTINS:  # builtins live as long as the interpreter: their ids stay theirs
            raise SandboxError(
                f"calling {getattr(func, '__name__', 'this builtin')} is not allowed in templates",
                "pass a function that does only what the template needs",
            )
        owner = getattr(func, "__self__", None)
        name = getattr(func, "__name__", "")
        if owner is None or isinstance(owner, types.ModuleType) or not isinstance(name, str):
            return
        if mutating_method(owner, name):
            raise SandboxError(f"calling {type(owner).__name__}.{name} is not allowed in templates", _WRITE_HINT)
        if isinstance(owner, (str, bytes, bytearray)):
            _check_string_method(owner, name, args, kwargs, limits)
        elif isinstance(owner, int) and name == "to_bytes":
            length = args[0] if args else kwargs.get("length", 1)
            if isinstance(length, int):
                check_size(length, limits, "int.to_bytes")


def _check_string_method(owner: Any, name: str, args: list, kwargs: dict, limits: Limits) -> None:
    """Pre-check the methods of str/bytes whose result can be much larger than the string itself."""
    method = f"{type(owner).__name__}.{name}"
    if name in _PADDING_METHODS:
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            check_size(width, limits, method)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            check_size(
                len(owner) + owner.count(b"\t" if isinstance(owner, (bytes, bytearray)) else "\t") * size,
                limits,
                method,
            )
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, (str, bytes, bytearray)) and isinstance(new, (str, bytes, bytearray)):
            matches = len(owner) + 1 if not old else owner.count(old)
            check_size(len(owner) + matches * len(new), limits, method)
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):
            size = sum(len(i) for i in items if isinstance(i, (str, bytes, bytearray)))
            check_size(size + len(owner) * max(len(items) - 1, 0), limits, method)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, (str, bytes))), default=1)
        check_size(len(owner) * max(longest, 1), limits, method)


POLICY = SandboxPolicy()

__all__ = [
    "SandboxError",
    "SandboxPolicy",
    "POLICY",
    "INTERNAL_ATTRIBUTES",
    "UNREACHABLE_TYPES",
    "MUTATING_METHODS",
    "mutating_method",
]
