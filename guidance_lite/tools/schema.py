"""What a tool looks like as JSON schema: read from a Python callable's signature and docstring, or from an OpenAI
tool schema dict.

Why one pydantic model per callable: the schema the model is told and the validation of what it sends back come from
the same place, so they can never drift apart. Specs are built once per callable and cached.
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Optional, get_origin

import docstring_parser
import pydantic
import pydantic_core
from pydantic import ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import PydanticJsonSchemaWarning

from .errors import ToolDefinitionError, ToolSchemaError

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept


@dataclass(frozen=True)
class Param:
    field: str  # name inside the pydantic model (safe: p0, p1, ...); the parameter name is the field's alias
    name: str
    kind: inspect._ParameterKind
    default: Any
    always_pass: bool = False  # the Python default is a pydantic Field(...): pass the validated default instead


@dataclass(frozen=True)
class FunctionSpec:
    """Everything derived from one callable's signature and docstring (built once per callable, then cached)."""

    description: str
    parameters: dict
    model: type[pydantic.BaseModel]
    params: tuple[Param, ...]
    accepts_extra: bool  # the function takes **kwargs: unknown argument keys are passed through


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
            f"parameters use at module level (string annotations are evaluated in the function's module)"
        ) from exc
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
        elif key in (
            "items",
            "additionalProperties",
            "not",
            "contains",
            "propertyNames",
            "if",
            "then",
            "else",
            "anyOf",
            "oneOf",
            "allOf",
            "prefixItems",
        ):
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


def _build_function_spec(fn: Any) -> FunctionSpec:
    name = callable_name(fn)
    signature = _resolved_signature(fn, name)
    doc = _docstring(fn)
    doc_params = {p.arg_name: p.description for p in doc.params if p.description}
    fields: dict[str, Any] = {}
    params: list[Param] = []
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
        # never blank out a Field(description=...)
        extra: dict[str, Any] = {"description": description} if description else {}
        fields[field_name] = (annotation, Field(default, alias=p.name, **extra))
        params.append(Param(field_name, p.name, p.kind, p.default, field_default))
    config = ConfigDict(
        extra="allow" if accepts_extra else "forbid", protected_namespaces=(), arbitrary_types_allowed=False
    )
    try:
        model = create_model(f"{name}_arguments", __config__=config, **fields)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
        raise ToolDefinitionError(
            f"tool '{name}' has a parameter type pydantic cannot validate ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}); use JSON-friendly types (str, int, float, bool, list, dict, Literal, "
            f"Enum) or pydantic models"
        ) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)  # unserializable defaults are just omitted
            raw = model.model_json_schema()
    except pydantic.PydanticInvalidForJsonSchema as exc:
        raise ToolDefinitionError(
            f"tool '{name}' has a parameter type with no JSON schema ({exc}); use JSON-friendly types or pydantic "
            f"models"
        ) from exc
    return FunctionSpec(
        _description_of(doc), _openai_parameters(raw, accepts_extra), model, tuple(params), accepts_extra
    )


@functools.lru_cache(maxsize=1024)
def _cached_function_spec(fn: Any) -> FunctionSpec:
    return _build_function_spec(fn)


def function_spec(fn: Any) -> FunctionSpec:
    try:
        return _cached_function_spec(fn)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _build_function_spec(fn)


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
