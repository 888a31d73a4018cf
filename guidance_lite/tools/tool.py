"""``Tool``: one tool offered to a model (name, description, JSON-schema parameters, the function behind it), and the
ways to make one: ``@gl.tool``, ``make_tool`` (a function, a Tool or an OpenAI schema dict), ``make_toolset``.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from .errors import MissingImplementation, ToolArgumentError, ToolDefinitionError
from .schema import callable_name, check_name, empty_parameters, is_async_callable, read_function_schema

if TYPE_CHECKING:  # pragma: no cover
    from .function_schema import FunctionSpec


class Tool:
    """One tool offered to a model: its name, description, JSON-schema parameters, and the function behind it.

    Built from a function, the schema and validation come from its signature (computed on first use, then cached);
    built from an OpenAI schema dict, the schema is used as given and arguments are checked against its
    ``required`` / ``additionalProperties`` / top-level ``enum`` and then against the implementing function's own
    signature (which also coerces them).
    """

    __slots__ = (
        "_description",
        "_explicit_description",
        "_parameters",
        "_schema_given",
        "_spec_cache",
        "_strict",
        "fn",
        "is_async",
        "name",
    )
    name: str
    fn: Optional[Callable]
    is_async: bool
    _explicit_description: Optional[str]
    _description: Optional[str]
    _parameters: Optional[dict]
    _schema_given: bool
    _strict: Optional[bool]
    _spec_cache: Optional[FunctionSpec]

    def __init__(
        self,
        name: str,
        fn: Optional[Callable] = None,
        *,
        description: Optional[str] = None,
        parameters: Optional[dict] = None,
        strict: Optional[bool] = None,
    ) -> None:
        check_name(name)
        if fn is not None and not callable(fn):
            raise ToolDefinitionError(f"the implementation of tool '{name}' must be callable, got {type(fn).__name__}")
        if parameters is None and fn is None:
            raise ToolDefinitionError(f"tool '{name}' needs a function or a parameters schema")
        if parameters is not None and not isinstance(parameters, dict):
            raise ToolDefinitionError(
                f"tool '{name}': parameters must be a JSON-schema dict, got {type(parameters).__name__}"
            )
        if parameters is not None and parameters.get("type", "object") != "object":
            raise ToolDefinitionError(
                f"tool '{name}': parameters must be a schema of type 'object' (named "
                f"arguments), got type {parameters.get('type')!r}"
            )
        if description is not None and not isinstance(description, str):
            raise ToolDefinitionError(f"tool '{name}': description must be a string, got {type(description).__name__}")
        init = functools.partial(object.__setattr__, self)
        init("name", name)
        init("fn", fn)
        init("is_async", fn is not None and is_async_callable(fn))
        init("_explicit_description", description)
        init("_description", description)
        init("_parameters", copy.deepcopy(parameters) if parameters is not None else None)
        init("_schema_given", parameters is not None)
        init("_strict", strict)
        init("_spec_cache", None)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"Tool objects are immutable; build a new one (make_tool / gl.tool / "
            f"Tool.with_function) instead of setting {key!r}"
        )

    def __copy__(self) -> Tool:
        return self

    def __deepcopy__(self, memo: dict) -> Tool:
        return self

    def __reduce__(self) -> tuple:
        return (
            _rebuild_tool,
            (
                self.name,
                self.fn,
                self._explicit_description,
                self._parameters if self._schema_given else None,
                self._strict,
            ),
        )

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, parameters={list(self.parameters.get('properties', {}))})"

    def _spec(self) -> Optional[FunctionSpec]:
        """What the implementing function's signature says (None for a schema-only tool)."""
        if self._spec_cache is None and self.fn is not None:
            from .function_schema import function_spec  # pydantic, imported when a function tool is first used

            object.__setattr__(self, "_spec_cache", function_spec(self.fn))
        return self._spec_cache

    @property
    def description(self) -> str:
        if self._description is None:
            spec = self._spec()
            object.__setattr__(self, "_description", spec.description if spec else "")
        return self._description  # type: ignore[return-value]

    @property
    def parameters(self) -> dict:
        """The JSON schema of the arguments (shared: treat as read-only; ``schema()`` returns a copy)."""
        if self._parameters is None:
            object.__setattr__(self, "_parameters", self._spec().parameters)  # type: ignore[union-attr]
        return self._parameters  # type: ignore[return-value]

    def schema(self) -> dict:
        """The OpenAI tool definition: ``{"type": "function", "function": {name, description, parameters}}``."""
        function: dict = {
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(self.parameters),
        }
        if self._strict is not None:
            function["strict"] = self._strict
        return {"type": "function", "function": function}

    def with_function(self, fn: Optional[Callable]) -> Tool:
        """The same definition backed by another implementation (bound methods, wrappers, resolved schemas)."""
        if self._schema_given:
            return Tool(self.name, fn, description=self.description, parameters=self._parameters, strict=self._strict)
        return Tool(self.name, fn, description=self._explicit_description)

    def validate(self, arguments: dict) -> dict:
        """Check and coerce ``arguments`` (pydantic lax mode: ``"3"`` -> 3); returns keyword arguments by name.

        Only the arguments that were given are returned, so the function's own defaults still apply.
        Raises ToolArgumentError listing every bad field.
        """
        if not isinstance(arguments, dict):
            raise ToolArgumentError(self.name, [f"(arguments): expected a JSON object, got {type(arguments).__name__}"])
        if self._schema_given:
            self._check_against_schema(arguments)
        spec = self._spec()
        if spec is None:
            return dict(arguments)
        return spec.keyword_arguments(self.name, arguments)

    def _check_against_schema(self, arguments: dict) -> None:
        schema = self.parameters
        properties = schema.get("properties") or {}
        problems = [
            f"{key}: required argument is missing" for key in schema.get("required", ()) if key not in arguments
        ]
        if schema.get("additionalProperties") is False:
            problems += [
                f"{key}: unexpected argument (not a parameter of this tool)"
                for key in arguments
                if key not in properties
            ]
        for key, value in arguments.items():
            prop = properties.get(key)
            allowed = prop.get("enum") if isinstance(prop, dict) else None
            if isinstance(allowed, list) and value not in allowed:
                problems.append(f"{key}: must be one of {', '.join(json.dumps(a) for a in allowed)} (got {value!r})")
        if problems:
            raise ToolArgumentError(self.name, problems)

    async def invoke(self, arguments: dict) -> Any:
        """Validate, then call: async functions are awaited, sync ones run in their own worker thread."""
        if self.fn is None:
            raise MissingImplementation(
                f"tool '{self.name}' has no implementation; pass a function named '{self.name}' as a program argument"
            )
        args, kwargs = self._split_positional(self.validate(arguments))
        if self.is_async:
            result = await self.fn(*args, **kwargs)
        else:
            result = await _run_in_thread(self.fn, self.name, args, kwargs)
        if inspect.isawaitable(result):  # a sync function that returned a coroutine / future
            result = await result
        return result

    def _split_positional(self, kwargs: dict) -> tuple[list, dict]:
        """Positional-only parameters cannot be passed by name: move them (and defaults before them) into args."""
        spec = self._spec()
        positional_only = [p for p in spec.params if p.kind is inspect.Parameter.POSITIONAL_ONLY] if spec else []
        if not positional_only:
            return [], kwargs
        kwargs = dict(kwargs)
        last_given = max((i for i, p in enumerate(positional_only) if p.name in kwargs), default=-1)
        args = [kwargs.pop(p.name) if p.name in kwargs else p.default for p in positional_only[: last_given + 1]]
        return args, kwargs


def _rebuild_tool(
    name: str, fn: Optional[Callable], description: Optional[str], parameters: Optional[dict], strict: Optional[bool]
) -> Tool:
    return Tool(name, fn, description=description, parameters=parameters, strict=strict)


async def _run_in_thread(fn: Callable, name: str, args: Sequence, kwargs: dict) -> Any:
    """Run a sync tool in its own daemon thread.

    Why not ``asyncio.to_thread``: the default executor has only ``cpu_count + 4`` workers (6 on 2 cores), so
    8 parallel calls would not all run at once, and a call that timed out would keep a pool worker busy and make
    ``asyncio.run`` wait for it at shutdown. A daemon thread per call runs everything concurrently and can be
    abandoned on timeout. Context variables are copied, like ``to_thread`` does.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()
    context = contextvars.copy_context()

    def deliver(outcome: BaseException | None, value: Any) -> None:
        if future.done():  # the caller gave up (timeout / cancellation)
            return
        if outcome is not None:
            future.set_exception(outcome)
        else:
            future.set_result(value)

    def target() -> None:
        error: BaseException | None = None
        value: Any = None
        try:
            value = context.run(fn, *args, **kwargs)
        except StopIteration as exc:  # futures cannot carry StopIteration
            error = RuntimeError(f"StopIteration: {exc}")
        except BaseException as exc:  # delivered to the awaiting coroutine, which decides what it means
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, error, value)
        except RuntimeError:
            return  # the event loop closed while an abandoned (timed-out) call was still running: nobody waits

    threading.Thread(target=target, name=f"guidance_lite-tool-{name}", daemon=True).start()
    return await future


# ---- building tools --------------------------------------------------------------------------------------------
def tool(fn: Optional[Callable] = None, *, name: Optional[str] = None, description: Optional[str] = None) -> Any:
    """Mark a function as a tool: ``@gl.tool``, ``@gl.tool(name=..., description=...)`` or ``@gl.tool("name")``.

    Returns the function itself (still callable as before) with a ``__gl_tool__`` attribute holding its Tool.
    """
    if isinstance(fn, str):  # @gl.tool("name")
        if name is not None:
            raise ToolDefinitionError("give the tool name once: @gl.tool('name') or @gl.tool(name='name')")
        name, fn = fn, None

    def decorate(target: Callable) -> Callable:
        if not callable(target):
            raise ToolDefinitionError(f"@gl.tool decorates functions, got {type(target).__name__}")
        marked = Tool(name if name is not None else callable_name(target), target, description=description)
        try:
            target.__gl_tool__ = marked  # type: ignore[attr-defined]
        except (AttributeError, TypeError) as exc:
            raise ToolDefinitionError(
                f"cannot mark {target!r} as a tool ({exc}); wrap it in a def, or use make_tool(...) to get a "
                f"Tool object"
            ) from exc
        return target

    return decorate if fn is None else decorate(fn)


@functools.lru_cache(maxsize=1024)
def _cached_tool_for(fn: Any) -> Tool:
    return _tool_for_callable(fn)


def _tool_for_callable(fn: Any) -> Tool:
    marker = getattr(fn, "__gl_tool__", None)
    if isinstance(marker, Tool):
        if marker.fn is fn:
            return marker
        # a bound method of a decorated function, or a functools.wraps wrapper that copied the marker
        return marker.with_function(fn)
    return Tool(callable_name(fn), fn)


def _tool_from_schema(obj: dict, resolve: Optional[Callable[[str], Any]]) -> Tool:
    parts = read_function_schema(obj)
    name = check_name(parts.get("name"))
    parameters = parts.get("parameters")
    if parameters is None:
        parameters = empty_parameters()
    implementation: Any = None
    if resolve is not None:
        try:
            implementation = resolve(name)
        except LookupError:
            implementation = None
    if isinstance(implementation, Tool):
        implementation = implementation.fn
    if implementation is not None and not callable(implementation):
        raise ToolDefinitionError(
            f"the program argument '{name}' should implement the tool schema '{name}' but is a "
            f"{type(implementation).__name__}, not a function"
        )
    description = parts.get("description") or ""
    return Tool(name, implementation, description=description, parameters=parameters, strict=parts.get("strict"))


def _is_schema_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and (
        isinstance(obj.get("name"), str) or isinstance(obj.get("function"), dict) or isinstance(obj.get("type"), str)
    )


def make_tool(obj: Any, *, resolve: Optional[Callable[[str], Any]] = None) -> Tool:
    """Turn a function, a ``@gl.tool`` function, a Tool, or an OpenAI tool schema dict into a Tool.

    ``resolve(name)`` finds the implementation of a schema dict (usually: the program argument of that name);
    it may return None when there is none. Tools for functions are cached, so offering the same function
    many times costs a dictionary lookup.
    """
    if isinstance(obj, Tool):
        return obj
    if isinstance(obj, dict):
        return _tool_from_schema(obj, resolve)
    if callable(obj):
        marker = getattr(obj, "__gl_tool__", None)
        if isinstance(marker, Tool) and marker.fn is obj:  # decorated: reuse its Tool (even if re-decorated)
            return marker
        try:
            return _cached_tool_for(obj)
        except TypeError as exc:
            if "unhashable" not in str(exc):
                raise
            return _tool_for_callable(obj)
    shown = repr(obj)
    raise ToolDefinitionError(
        f"a tool must be a function, a @gl.tool function, a Tool, or an OpenAI tool schema dict; got "
        f"{type(obj).__name__} ({shown[:60] + '...' if len(shown) > 60 else shown})"
    )


def make_toolset(value: Any, *, resolve: Optional[Callable[[str], Any]] = None) -> dict[str, Tool]:
    """Tools by name, in the order given, from a list/tuple of tool-likes, a single one, or a name->tool mapping."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, Mapping) and not _is_schema_dict(value):
        items = list(value.values())
    else:
        items = [value]
    toolset: dict[str, Tool] = {}
    for item in items:
        made = make_tool(item, resolve=resolve)
        if made.name in toolset:
            raise ToolDefinitionError(
                f"two tools are named '{made.name}'; tool names must be unique (rename one with @gl.tool(name=...))"
            )
        toolset[made.name] = made
    if isinstance(value, Mapping) and not _is_schema_dict(value):
        for key, made in zip(value.keys(), toolset.values()):
            if key != made.name:
                raise ToolDefinitionError(
                    f"the tools mapping has key {key!r} for the tool named '{made.name}'; "
                    f"keys must equal tool names (or pass a list)"
                )
    return toolset
