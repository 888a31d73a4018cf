"""Writing variables by dotted path without mutating anything the caller passed in (copy-on-write)."""
from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .interpreter import Interpreter


def _owned(interp: "Interpreter") -> set[int]:
    owned = getattr(interp, "_owned_ids", None)
    if owned is None:
        owned = set()
        interp._owned_ids = owned  # type: ignore[attr-defined]
        interp._owned_refs = []  # type: ignore[attr-defined]  # keep copies alive so ids stay unique
    return owned


def _own(interp: "Interpreter", value: Any) -> Any:
    """A copy of ``value`` this run may mutate (the same object when the run made it)."""
    owned = _owned(interp)
    if id(value) in owned:
        return value
    if isinstance(value, Mapping):
        fresh: Any = dict(value)
    elif isinstance(value, list):
        fresh = list(value)
    else:
        fresh = copy.copy(value)
    owned.add(id(fresh))
    interp._owned_refs.append(fresh)  # type: ignore[attr-defined]
    return fresh


def new_owned(interp: "Interpreter", value: Any) -> Any:
    """Register a container the run created itself (no copy needed before writing into it)."""
    _owned(interp).add(id(value))
    interp._owned_refs.append(value)  # type: ignore[attr-defined]
    return value


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


def _appended(interp: "Interpreter", existing: Any, value: Any) -> Any:
    if existing is None:
        return new_owned(interp, [value])
    if not isinstance(existing, list):
        raise TypeError(f"list_append needs a list variable, found {type(existing).__name__}")
    target = _own(interp, existing)
    target.append(value)
    return target


def assign_path(interp: "Interpreter", name: str, value: Any, *, append: bool = False) -> None:
    parts = name.split(".")
    head = parts[0]
    # the innermost scope that binds the head name (this, an each item name, …) owns it; otherwise the globals
    scope: MutableMapping[str, Any] = interp.state.variables
    for candidate in reversed(interp.scopes):
        if head in candidate:
            scope = candidate
            break
    if len(parts) == 1:
        scope[head] = _appended(interp, scope.get(head), value) if append else value
        return
    root = scope.get(head)
    if root is None:
        root = new_owned(interp, {})
    else:
        root = _own(interp, root)
    scope[head] = root
    container = root
    for key in parts[1:-1]:
        child = _get(container, key)
        child = new_owned(interp, {}) if child is None else _own(interp, child)
        _set(container, key, child)
        container = child
    last = parts[-1]
    _set(container, last, _appended(interp, _get(container, last), value) if append else value)
