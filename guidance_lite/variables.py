"""Writing variables by dotted path without mutating anything the caller passed in (copy-on-write)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any


class OwnedValues:
    """The containers one run created or copied: only these may be written into, so caller data stays untouched."""

    __slots__ = ("_ids", "_refs")

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._refs: list[Any] = []  # keeps the owned objects alive, so their ids stay unique

    def new(self, value: Any) -> Any:
        """Register a container the run created itself (no copy needed before writing into it)."""
        self._ids.add(id(value))
        self._refs.append(value)
        return value

    def own(self, value: Any) -> Any:
        """A copy of ``value`` this run may mutate (the same object when the run made it)."""
        if id(value) in self._ids:
            return value
        if isinstance(value, Mapping):
            fresh: Any = dict(value)
        elif isinstance(value, list):
            fresh = list(value)
        else:
            fresh = copy.copy(value)
        return self.new(fresh)

    def appended(self, existing: Any, value: Any) -> Any:
        """``existing`` (a list, or None for a new one) with ``value`` appended, as a list this run owns."""
        if existing is None:
            return self.new([value])
        if not isinstance(existing, list):
            raise TypeError(f"list_append needs a list variable, found {type(existing).__name__}")
        target = self.own(existing)
        target.append(value)
        return target


def _get(container: Any, key: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, list) and key.lstrip("-").isdigit():
        return container[int(key)]
    return getattr(container, key, None)


def _set(container: Any, key: str, value: Any) -> None:
    if isinstance(container, MutableMapping):
        container[key] = value
    elif isinstance(container, list) and key.lstrip("-").isdigit():
        container[int(key)] = value
    else:
        if key.startswith("_"):
            raise AttributeError(f"cannot set attribute {key!r} from a template")
        setattr(container, key, value)


def assign_path(
    variables: MutableMapping[str, Any],
    scopes: Sequence[MutableMapping[str, Any]],
    owned: OwnedValues,
    name: str,
    value: Any,
    *,
    append: bool = False,
) -> None:
    """Write ``name`` (``x``, ``this.x``, ``obj.a.b``): into the innermost scope that binds its head name (``this``,
    an each item name …), else into ``variables``; containers on the path are copied before they are written."""
    parts = name.split(".")
    head = parts[0]
    scope = variables
    for candidate in reversed(scopes):
        if head in candidate:
            scope = candidate
            break
    if len(parts) == 1:
        scope[head] = owned.appended(scope.get(head), value) if append else value
        return
    root = scope.get(head)
    root = owned.new({}) if root is None else owned.own(root)
    scope[head] = root
    container = root
    for key in parts[1:-1]:
        child = _get(container, key)
        child = owned.new({}) if child is None else owned.own(child)
        _set(container, key, child)
        container = child
    last = parts[-1]
    _set(container, last, owned.appended(_get(container, last), value) if append else value)
