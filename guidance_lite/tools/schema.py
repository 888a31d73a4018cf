"""What a tool looks like to the API: valid tool names, the function definition inside an OpenAI tool schema dict, and
argument problems worded for the model. Reading a Python callable's signature into a schema is ``function_schema``
(it needs pydantic, imported only when a tool built from a function is first used).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping
from typing import Any

from .errors import ToolDefinitionError, ToolSchemaError

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept


def callable_name(fn: Any) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__name__", None)
    if isinstance(name, str):
        return name
    return type(target).__name__


def is_async_callable(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - the bound __call__ itself, to ask whether it is async
    return not inspect.isroutine(fn) and not inspect.isclass(fn) and inspect.iscoroutinefunction(call)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.match(name):
        raise ToolDefinitionError(
            f"tool name {name!r} is not valid: a tool name needs 1-64 letters, digits, '_' or '-'; "
            f"pass name=... to @gl.tool or use a def with a proper name"
        )
    return name


def format_problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "(arguments)"
    kind = error.get("type")
    if kind == "missing":
        return f"{where}: required argument is missing"
    if kind == "extra_forbidden":
        return f"{where}: unexpected argument (not a parameter of this tool)"
    text = f"{where}: {error.get('msg', 'invalid value')}"
    if "input" in error:
        shown = repr(error["input"])
        text += f" (got {shown[:80] + '...' if len(shown) > 80 else shown})"
    return text


def empty_parameters() -> dict:
    """The parameters schema of a tool that takes no arguments (a fresh dict each time)."""
    return {"type": "object", "properties": {}}


def read_function_schema(obj: dict) -> dict:
    """The function definition inside an OpenAI tool dict (``{"type": "function", "function": {...}}``) or a bare
    ``{"name": ..., "parameters": ...}``; raises ToolSchemaError for anything else."""
    if obj.get("type", "function") != "function":
        raise ToolSchemaError(f"only function tools are supported; got a tool schema of type {obj['type']!r}")
    function = obj["function"] if isinstance(obj.get("function"), dict) else obj
    if not function.get("name"):
        raise ToolSchemaError(
            f"tool schema {obj!r:.120} has no function name; a tool schema dict needs a name: "
            "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}} "
            "or {'name': ..., 'parameters': {...}}"
        )
    return function
