"""Python callables as tools: JSON schemas from signatures, argument validation, and concurrent dispatch.

Why this shape: the model only ever sees a JSON schema and sends back JSON text, so everything between the two is
data handling. Schemas and validation come from one pydantic model built from the function's signature (so what
the model is told and what is accepted can never drift apart), and every fault a call can have (unknown tool, bad
JSON, bad arguments, an exception, a timeout, a user's refusal) becomes a tool result the model can read and
recover from, instead of ending the program.
"""
from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import functools
import inspect
import json
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Annotated, Any, Awaitable, Callable, Mapping, Optional, Sequence, get_origin

import docstring_parser
import pydantic
import pydantic_core
from pydantic import ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import PydanticJsonSchemaWarning

from .models.base import ToolCall

__all__ = [
    "Tool", "ToolCallRecord", "ToolError", "ToolDefinitionError", "ToolArgumentError", "ToolExecutionError",
    "tool", "make_tool", "make_toolset", "dispatch", "format_result",
]

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept
ERROR_MODES = ("feedback", "raise")
DENIED_MESSAGE = "the user denied this call"

# error_type values of ToolCallRecord
UNKNOWN_TOOL = "unknown_tool"
INVALID_JSON = "invalid_json"
INVALID_ARGUMENTS = "invalid_arguments"
EXCEPTION = "exception"
TIMEOUT = "timeout"
DENIED = "denied"


# ---- errors ----------------------------------------------------------------------------------------------------
class ToolError(Exception):
    """Base class of every tool-related error."""


class ToolDefinitionError(ToolError, TypeError):
    """Something offered as a tool cannot be one (bad name, unsupported type, duplicate, not a tool at all)."""


class ToolArgumentError(ToolError, ValueError):
    """Arguments that do not fit the tool's parameters; ``problems`` lists one readable line per bad field."""

    def __init__(self, tool_name: str, problems: list[str]) -> None:
        self.tool_name = tool_name
        self.problems = list(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"invalid arguments for tool '{tool_name}':\n{lines}")


class ToolExecutionError(ToolError):
    """Raised by ``dispatch(errors='raise')`` for the first failed call; ``records`` holds every call's record."""

    def __init__(self, record: "ToolCallRecord", records: Sequence["ToolCallRecord"] = ()) -> None:
        self.record = record
        self.records = list(records)
        super().__init__(f"tool call {record.id!r} to '{record.name}' failed ({record.error_type}): {record.error}")


class _MissingImplementation(ToolError):
    """A schema-only tool was called but no function implements it."""


# ---- what a function looks like as a tool --------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    field: str  # name inside the pydantic model (safe: p0, p1, ...); the parameter name is the field's alias
    name: str
    kind: inspect._ParameterKind
    default: Any
    always_pass: bool = False  # the Python default is a pydantic Field(...): pass the validated default instead


@dataclass(frozen=True)
class _FunctionSpec:
    """Everything derived from one callable's signature and docstring (built once per callable, then cached)."""

    description: str
    parameters: dict
    model: type[pydantic.BaseModel]
    params: tuple[_Param, ...]
    accepts_extra: bool  # the function takes **kwargs: unknown argument keys are passed through


def _callable_name(fn: Any) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__name__", None)
    if isinstance(name, str):
        return name
    return type(target).__name__


def _is_async_callable(fn: Any) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return not inspect.isroutine(fn) and not inspect.isclass(fn) and inspect.iscoroutinefunction(call)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.match(name):
        raise ToolDefinitionError(
            f"tool name {name!r} is not valid: a tool name needs 1-64 letters, digits, '_' or '-'; "
            f"pass name=... to @gl.tool or use a def with a proper name")
    return name


def _annotation_description(annotation: Any) -> tuple[Optional[str], bool]:
    """(description from ``Annotated[T, "text"]``, whether a pydantic ``Field(description=...)`` already has one)."""
    if get_origin(annotation) is not Annotated:
        return None, False
    text: Optional[str] = None
    for meta in annotation.__metadata__:
        if isinstance(meta, FieldInfo) and meta.description:
            return None, True
        if isinstance(meta, str) and text is None:
            text = meta
    return text, False


def _resolved_signature(fn: Any, name: str) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, SyntaxError, TypeError, AttributeError) as exc:
        try:
            inspect.signature(fn)
        except (TypeError, ValueError) as inner:
            raise ToolDefinitionError(f"cannot read the signature of tool '{name}': {inner}") from inner
        raise ToolDefinitionError(
            f"cannot resolve a type annotation of tool '{name}' ({type(exc).__name__}: {exc}); define the types its "
            f"parameters use at module level (string annotations are evaluated in the function's module)") from exc
    except ValueError as exc:
        raise ToolDefinitionError(f"cannot read the signature of tool '{name}': {exc}") from exc


def _docstring(fn: Any) -> docstring_parser.Docstring:
    doc = inspect.getdoc(fn.func if isinstance(fn, functools.partial) else fn) or ""
    try:
        return docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        return docstring_parser.parse("")


def _description_of(doc: docstring_parser.Docstring) -> str:
    parts = [p.strip() for p in (doc.short_description, doc.long_description) if p and p.strip()]
    return "\n\n".join(parts)


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keywords, never a property that happens to be called "title"."""
    if isinstance(schema, list):
        return [_strip_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas"):
            cleaned[key] = {k: _strip_titles(v) for k, v in value.items()} if isinstance(value, dict) else value
        elif key in ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
                     "anyOf", "oneOf", "allOf", "prefixItems"):
            cleaned[key] = _strip_titles(value)
        else:
            cleaned[key] = value  # default / enum / const / examples are data, kept verbatim
    return cleaned


def _openai_parameters(raw: dict, accepts_extra: bool) -> dict:
    raw = _strip_titles(raw)
    parameters: dict = {"type": "object", "properties": raw.get("properties", {}), "required": raw.get("required", [])}
    parameters["additionalProperties"] = accepts_extra
    if "$defs" in raw:
        parameters["$defs"] = raw["$defs"]
    return parameters


def _build_function_spec(fn: Any) -> _FunctionSpec:
    name = _callable_name(fn)
    signature = _resolved_signature(fn, name)
    doc = _docstring(fn)
    doc_params = {p.arg_name: p.description for p in doc.params if p.description}
    fields: dict[str, Any] = {}
    params: list[_Param] = []
    accepts_extra = False
    for index, p in enumerate(signature.parameters.values()):
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # the model sends named arguments only
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        text, has_field_description = _annotation_description(annotation)
        field_default = isinstance(p.default, FieldInfo)  # def f(x: int = Field(3, description=...))
        if field_default:
            annotation = Annotated[annotation, p.default]
            has_field_description = has_field_description or bool(p.default.description)
            default = pydantic_core.PydanticUndefined
        else:
            default = pydantic_core.PydanticUndefined if p.default is inspect.Parameter.empty else p.default
        description = None if has_field_description else (text or doc_params.get(p.name))
        field_name = f"p{index}"
        extra = {"description": description} if description else {}  # never blank out a Field(description=...)
        fields[field_name] = (annotation, Field(default, alias=p.name, **extra))
        params.append(_Param(field_name, p.name, p.kind, p.default, field_default))
    config = ConfigDict(extra="allow" if accepts_extra else "forbid", protected_namespaces=(),
                        arbitrary_types_allowed=False)
    try:
        model = create_model(f"{name}_arguments", __config__=config, **fields)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(
            f"tool '{name}' has a parameter type pydantic cannot validate ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}); use JSON-friendly types (str, int, float, bool, list, dict, Literal, "
            f"Enum) or pydantic models") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)  # unserializable defaults are just omitted
            raw = model.model_json_schema()
    except pydantic.PydanticInvalidForJsonSchema as exc:
        raise ToolDefinitionError(
            f"tool '{name}' has a parameter type with no JSON schema ({exc}); use JSON-friendly types or pydantic "
            f"models") from exc
    return _FunctionSpec(_description_of(doc), _openai_parameters(raw, accepts_extra), model, tuple(params),
                         accepts_extra)


@functools.lru_cache(maxsize=1024)
def _cached_function_spec(fn: Any) -> _FunctionSpec:
    return _build_function_spec(fn)


def _function_spec(fn: Any) -> _FunctionSpec:
    try:
        return _cached_function_spec(fn)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _build_function_spec(fn)


def _format_problem(error: Mapping[str, Any]) -> str:
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


# ---- Tool ------------------------------------------------------------------------------------------------------
class Tool:
    """One tool offered to a model: its name, description, JSON-schema parameters, and the function behind it.

    Built from a function, the schema and validation come from its signature (computed on first use, then cached);
    built from an OpenAI schema dict, the schema is used as given and arguments are checked against its
    ``required`` / ``additionalProperties`` / top-level ``enum`` and then against the implementing function's own
    signature (which also coerces them).
    """

    __slots__ = ("name", "fn", "is_async", "_description", "_explicit_description", "_parameters", "_schema_given",
                 "_strict", "_spec_cache")

    def __init__(self, name: str, fn: Optional[Callable] = None, *, description: Optional[str] = None,
                 parameters: Optional[dict] = None, strict: Optional[bool] = None) -> None:
        _check_name(name)
        if fn is not None and not callable(fn):
            raise ToolDefinitionError(f"the implementation of tool '{name}' must be callable, got "
                                      f"{type(fn).__name__}")
        if parameters is None and fn is None:
            raise ToolDefinitionError(f"tool '{name}' needs a function or a parameters schema")
        if parameters is not None and not isinstance(parameters, dict):
            raise ToolDefinitionError(f"tool '{name}': parameters must be a JSON-schema dict, got "
                                      f"{type(parameters).__name__}")
        if parameters is not None and parameters.get("type", "object") != "object":
            raise ToolDefinitionError(f"tool '{name}': parameters must be a schema of type 'object' (named "
                                      f"arguments), got type {parameters.get('type')!r}")
        if description is not None and not isinstance(description, str):
            raise ToolDefinitionError(f"tool '{name}': description must be a string, got "
                                      f"{type(description).__name__}")
        init = functools.partial(object.__setattr__, self)
        init("name", name)
        init("fn", fn)
        init("is_async", fn is not None and _is_async_callable(fn))
        init("_explicit_description", description)
        init("_description", description)
        init("_parameters", copy.deepcopy(parameters) if parameters is not None else None)
        init("_schema_given", parameters is not None)
        init("_strict", strict)
        init("_spec_cache", None)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Tool objects are immutable; build a new one (make_tool / gl.tool / "
                             f"Tool.with_function) instead of setting {key!r}")

    def __copy__(self) -> "Tool":
        return self

    def __deepcopy__(self, memo: dict) -> "Tool":
        return self

    def __reduce__(self) -> tuple:
        return (_rebuild_tool, (self.name, self.fn, self._explicit_description,
                                self._parameters if self._schema_given else None, self._strict))

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, parameters={list(self.parameters.get('properties', {}))})"

    def _spec(self) -> Optional[_FunctionSpec]:
        """What the implementing function's signature says (None for a schema-only tool)."""
        if self._spec_cache is None and self.fn is not None:
            object.__setattr__(self, "_spec_cache", _function_spec(self.fn))
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
        function: dict = {"name": self.name, "description": self.description,
                          "parameters": copy.deepcopy(self.parameters)}
        if self._strict is not None:
            function["strict"] = self._strict
        return {"type": "function", "function": function}

    def with_function(self, fn: Optional[Callable]) -> "Tool":
        """The same definition backed by another implementation (bound methods, wrappers, resolved schemas)."""
        if self._schema_given:
            return Tool(self.name, fn, description=self.description, parameters=self._parameters,
                        strict=self._strict)
        return Tool(self.name, fn, description=self._explicit_description)

    def validate(self, arguments: dict) -> dict:
        """Check and coerce ``arguments`` (pydantic lax mode: ``"3"`` -> 3); returns keyword arguments by name.

        Only the arguments that were given are returned, so the function's own defaults still apply.
        Raises ToolArgumentError listing every bad field.
        """
        if not isinstance(arguments, dict):
            raise ToolArgumentError(self.name, [f"(arguments): expected a JSON object, got "
                                                f"{type(arguments).__name__}"])
        if self._schema_given:
            self._check_against_schema(arguments)
        spec = self._spec()
        if spec is None:
            return dict(arguments)
        try:
            validated = spec.model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            raise ToolArgumentError(self.name, [_format_problem(e) for e in exc.errors()]) from None
        given = validated.model_fields_set
        kwargs = {p.name: getattr(validated, p.field) for p in spec.params if p.field in given or p.always_pass}
        if spec.accepts_extra and validated.model_extra:
            kwargs.update(validated.model_extra)
        return kwargs

    def _check_against_schema(self, arguments: dict) -> None:
        schema = self.parameters
        properties = schema.get("properties") or {}
        problems = [f"{key}: required argument is missing" for key in schema.get("required", ())
                    if key not in arguments]
        if schema.get("additionalProperties") is False:
            problems += [f"{key}: unexpected argument (not a parameter of this tool)"
                         for key in arguments if key not in properties]
        for key, value in arguments.items():
            prop = properties.get(key)
            allowed = prop.get("enum") if isinstance(prop, dict) else None
            if isinstance(allowed, list) and value not in allowed:
                problems.append(f"{key}: must be one of {', '.join(json.dumps(a) for a in allowed)} "
                                f"(got {value!r})")
        if problems:
            raise ToolArgumentError(self.name, problems)

    async def invoke(self, arguments: dict) -> Any:
        """Validate, then call: async functions are awaited, sync ones run in their own worker thread."""
        if self.fn is None:
            raise _MissingImplementation(
                f"tool '{self.name}' has no implementation; pass a function named '{self.name}' as a program "
                f"argument")
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
        args = [kwargs.pop(p.name) if p.name in kwargs else p.default for p in positional_only[:last_given + 1]]
        return args, kwargs


def _rebuild_tool(name: str, fn: Optional[Callable], description: Optional[str], parameters: Optional[dict],
                  strict: Optional[bool]) -> Tool:
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
        marked = Tool(name if name is not None else _callable_name(target), target, description=description)
        try:
            target.__gl_tool__ = marked  # type: ignore[attr-defined]
        except (AttributeError, TypeError) as exc:
            raise ToolDefinitionError(
                f"cannot mark {target!r} as a tool ({exc}); wrap it in a def, or use make_tool(...) to get a "
                f"Tool object") from exc
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
    return Tool(_callable_name(fn), fn)


def _schema_parts(obj: dict) -> dict:
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        return obj["function"]
    if "type" in obj and "name" not in obj:
        raise ToolDefinitionError(f"only function tools are supported; got a tool schema of type {obj['type']!r}")
    if "name" not in obj:
        raise ToolDefinitionError(
            "a tool schema dict needs a name: {'type': 'function', 'function': {'name': ..., 'parameters': {...}}} "
            f"or {{'name': ..., 'parameters': {{...}}}}; got keys {sorted(obj)}")
    return obj


def _tool_from_schema(obj: dict, resolve: Optional[Callable[[str], Any]]) -> Tool:
    parts = _schema_parts(obj)
    name = _check_name(parts.get("name"))
    parameters = parts.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
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
            f"{type(implementation).__name__}, not a function")
    description = parts.get("description") or ""
    return Tool(name, implementation, description=description, parameters=parameters, strict=parts.get("strict"))


def _is_schema_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and (isinstance(obj.get("name"), str) or isinstance(obj.get("function"), dict)
                                      or isinstance(obj.get("type"), str))


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
        f"{type(obj).__name__} ({shown[:60] + '...' if len(shown) > 60 else shown})")


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
                f"two tools are named '{made.name}'; tool names must be unique (rename one with "
                f"@gl.tool(name=...))")
        toolset[made.name] = made
    if isinstance(value, Mapping) and not _is_schema_dict(value):
        for key, made in zip(value.keys(), toolset.values()):
            if key != made.name:
                raise ToolDefinitionError(f"the tools mapping has key {key!r} for the tool named '{made.name}'; "
                                          f"keys must equal tool names (or pass a list)")
    return toolset


# ---- results ---------------------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def format_result(value: Any) -> str:
    """The text a tool's return value becomes in the tool message sent back to the model."""
    if isinstance(value, str):
        return str.__str__(value)  # a str-based Enum gives its value, not "Color.RED"
    if value is None:
        return ""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    return str(value)


@dataclass
class ToolCallRecord:
    """One tool call made during a run (what ``result.tool_calls`` lists).

    ``arguments`` are the arguments actually used (after ``on_tool_call`` replacements and ``overrides``; None
    when they could not be parsed); ``arguments_json`` is exactly what the model sent. ``started_at`` is
    ``time.perf_counter()`` when the tool began running (after the hook), ``duration`` how long it ran.
    """

    id: str
    name: str
    arguments: Optional[dict]
    arguments_json: str
    result: Any = None
    content: str = ""
    error: Optional[str] = None
    error_type: Optional[str] = None
    duration: float = 0.0
    started_at: float = 0.0
    variable: Optional[str] = None
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)  # for errors='raise'

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, error_type: str, message: str, exception: Optional[BaseException] = None) -> "ToolCallRecord":
        self.error_type = error_type
        self.error = message
        self.content = message
        self.exception = exception
        return self

    def to_dict(self) -> dict:
        """JSON-friendly form (the result converted with pydantic's JSON rules, ``str`` as a fallback)."""
        return {
            "id": self.id, "name": self.name,
            "arguments": pydantic_core.to_jsonable_python(self.arguments, fallback=str),
            "arguments_json": self.arguments_json,
            "result": pydantic_core.to_jsonable_python(self.result, fallback=str),
            "content": self.content, "error": self.error, "error_type": self.error_type,
            "duration": self.duration, "started_at": self.started_at, "variable": self.variable,
        }


# ---- dispatch --------------------------------------------------------------------------------------------------
HookResult = Any  # True / None (run), False (deny), dict (replacement arguments)


async def _ask_hook(hook: Callable[[ToolCall], HookResult | Awaitable[HookResult]], call: ToolCall) -> HookResult:
    answer = hook(call)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer


async def _run_call(call: ToolCall, tools: Mapping[str, Tool], timeout: Optional[float],
                    hook: Optional[Callable], overrides: Mapping[str, Any]) -> ToolCallRecord:
    record = ToolCallRecord(id=call.id, name=call.name, arguments=None, arguments_json=call.arguments_json,
                            started_at=time.perf_counter())
    chosen = tools.get(call.name)
    if chosen is None:
        available = ", ".join(tools) or "none"
        return record.fail(UNKNOWN_TOOL, f"unknown tool {call.name!r}; available: {available}")
    try:
        arguments = call.arguments
    except json.JSONDecodeError as exc:
        return record.fail(INVALID_JSON, f"arguments are not valid JSON: {exc}", exc)
    except ValueError as exc:  # valid JSON, but not an object
        return record.fail(INVALID_ARGUMENTS, str(exc), exc)
    if hook is not None:
        try:
            answer = await _ask_hook(hook, call)
        except Exception as exc:  # a failing hook fails this call only, as data
            return record.fail(EXCEPTION, f"{type(exc).__name__}: {exc}", exc)
        if answer is False:
            record.arguments = arguments
            return record.fail(DENIED, DENIED_MESSAGE)
        if isinstance(answer, dict):
            arguments = dict(answer)
        elif answer is not True and answer is not None:
            return record.fail(EXCEPTION, f"on_tool_call returned {type(answer).__name__}; it must return True or "
                                          f"None (run), False (deny) or a dict of replacement arguments")
    if overrides:
        arguments = {**arguments, **overrides}
    record.arguments = arguments
    record.started_at = time.perf_counter()
    try:
        if timeout is None:
            value = await chosen.invoke(arguments)
        else:
            value = await asyncio.wait_for(chosen.invoke(arguments), timeout)
    except ToolArgumentError as exc:
        return _finish(record).fail(INVALID_ARGUMENTS, str(exc), exc)
    except asyncio.TimeoutError as exc:
        return _finish(record).fail(TIMEOUT, f"timed out after {timeout:g}s", exc)
    except _MissingImplementation as exc:
        return _finish(record).fail(EXCEPTION, str(exc), exc)
    except Exception as exc:  # the tool's own failure is reported to the model, not raised
        return _finish(record).fail(EXCEPTION, f"{type(exc).__name__}: {exc}", exc)
    _finish(record)
    record.result = value
    try:
        record.content = format_result(value)
    except Exception as exc:  # e.g. a __str__ that raises: the call still fails as data
        return record.fail(EXCEPTION, f"could not turn the result into text: {type(exc).__name__}: {exc}", exc)
    return record


def _finish(record: ToolCallRecord) -> ToolCallRecord:
    record.duration = time.perf_counter() - record.started_at
    return record


async def dispatch(calls: Sequence[ToolCall], tools: Mapping[str, Tool], *, timeout: Optional[float] = None,
                   errors: str = "feedback", on_tool_call: Optional[Callable] = None,
                   overrides: Optional[Mapping[str, Any]] = None) -> list[ToolCallRecord]:
    """Run every call concurrently; return one record per call, in call order.

    Only tools in ``tools`` can run. Faults become error records (``error``/``error_type`` set and the message
    in ``content``); with ``errors='raise'`` a ToolExecutionError for the first failed call is raised after
    all calls have finished. ``on_tool_call(call)`` (sync or async; asked only about calls to an offered tool
    whose arguments parse) may approve (True/None), deny (False) or replace the arguments (dict); ``overrides``
    replace/add argument keys of every call (after the hook, before validation). ``timeout`` bounds each call's
    validation + run, not the hook (a person may take a while to answer).
    """
    if errors not in ERROR_MODES:
        raise ValueError(f"errors={errors!r} is not supported; use 'feedback' (faults go back to the model as "
                         f"tool results) or 'raise'")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not isinstance(tools, Mapping):
        tools = make_toolset(tools)
    bad = [name for name, value in tools.items() if not isinstance(value, Tool)]
    if bad:
        raise ToolDefinitionError(f"dispatch needs Tool objects by name (see make_toolset); not a Tool: "
                                  f"{', '.join(map(repr, bad))}")
    overrides = dict(overrides or {})
    records = list(await asyncio.gather(*(_run_call(call, tools, timeout, on_tool_call, overrides)
                                          for call in calls)))
    if errors == "raise":
        failed = next((r for r in records if r.error is not None), None)
        if failed is not None:
            raise ToolExecutionError(failed, records) from failed.exception
    return records
