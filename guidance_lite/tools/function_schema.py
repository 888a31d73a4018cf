"""A Python callable as a tool: its JSON schema and the validation of the arguments a model sends, read from its
signature and docstring.

A parameter's type is its annotation; without one, the type its docstring writes (Google, NumPy or reST style:
``str``/``string``, ``int``/``integer``, ``list of X``, ``{'a', 'b'}`` …), else the type of its default value.

Why one pydantic model per callable: the schema the model is told and the validation of what it sends back come from
the same place, so they can never drift apart. Specs are built once per callable and cached.

Imported on first use (``Tool`` asks for it when a function's schema or validation is first needed), so programs
without function tools never import pydantic.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union, get_origin

import docstring_parser
import pydantic
import pydantic_core
from pydantic import ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import PydanticJsonSchemaWarning

from .errors import ToolArgumentError, ToolDefinitionError
from .schema import callable_name, format_problem


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

    def keyword_arguments(self, tool_name: str, arguments: dict) -> dict:
        """``arguments`` checked and coerced (pydantic lax mode: ``"3"`` -> 3), by parameter name: only those given
        (the function's own defaults still apply). Raises ToolArgumentError listing every bad field."""
        try:
            validated = self.model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            raise ToolArgumentError(tool_name, [format_problem(e) for e in exc.errors()]) from None
        given = validated.model_fields_set
        kwargs = {p.name: getattr(validated, p.field) for p in self.params if p.field in given or p.always_pass}
        if self.accepts_extra and validated.model_extra:
            kwargs.update(validated.model_extra)
        return kwargs


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


# docstring type words -> Python types (what ``list of X`` and ``list[X]`` hold is read with the same table)
_DOC_TYPES: dict[str, Any] = {
    "str": str,
    "string": str,
    "text": str,
    "int": int,
    "integer": int,
    "float": float,
    "number": float,
    "bool": bool,
    "boolean": bool,
    "dict": dict,
    "mapping": dict,
    "object": dict,
    "list": list,
    "array": list,
    "sequence": list,
    "tuple": list,
    "none": type(None),
    "any": Any,
}
_SEQUENCE_WORDS = ("list", "array", "sequence", "tuple", "iterable", "set")
_OF = re.compile(rf"(?:{'|'.join(_SEQUENCE_WORDS)}) of (.+)", re.IGNORECASE)
_SUBSCRIPT = re.compile(r"([A-Za-z_.]+)\[(.+)\]")
_NOT_A_TYPE = re.compile(r"optional|default\b.*|defaults\b.*", re.IGNORECASE)


def _top_level_split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets, braces and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for index, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, index) and index >= start:
            parts.append(text[start:index])
            start = index + len(separator)
    parts.append(text[start:])
    return parts


def docstring_type(text: Optional[str]) -> Any:
    """The Python type a docstring writes as text (``str``/``string``, ``int``/``integer``, ``float``/``number``,
    ``bool``/``boolean``, ``list of X``/``list[X]``, ``dict``, ``X or Y``, ``{'a', 'b'}`` for an enum,
    ``X, optional``), or None when the text names no type this knows."""
    if not text or not text.strip():
        return None
    parts = [p.strip() for p in _top_level_split(text.strip(), ",")]
    kept = [p for p in parts if p and not _NOT_A_TYPE.fullmatch(p)]
    if len(kept) != 1:
        return None
    written = kept[0].strip("`").strip()
    if written.startswith("{") and written.endswith("}"):
        return _enum_type(written)
    alternatives = [a.strip() for a in _top_level_split(written, " or ")]
    if len(alternatives) == 1:
        alternatives = [a.strip() for a in _top_level_split(written, "|")]
    if len(alternatives) > 1:
        members = [docstring_type(a) for a in alternatives]
        return None if any(m is None for m in members) else Union[tuple(members)]
    match = _OF.fullmatch(written)
    if match:
        item = docstring_type(match.group(1)) or docstring_type(match.group(1).removesuffix("s"))
        return None if item is None else list[item]  # type: ignore[valid-type]
    match = _SUBSCRIPT.fullmatch(written)
    if match:
        outer = match.group(1).rsplit(".", 1)[-1].lower()
        inner = [docstring_type(i) for i in _top_level_split(match.group(2), ",")]
        if outer == "optional" and len(inner) == 1 and inner[0] is not None:
            return Optional[inner[0]]
        if outer in _SEQUENCE_WORDS and len(inner) == 1 and inner[0] is not None:
            return list[inner[0]]  # type: ignore[valid-type]
        if outer in ("dict", "mapping") and len(inner) == 2 and inner[1] is not None:
            return dict[str, inner[1]]  # type: ignore[valid-type]
        return None
    return _DOC_TYPES.get(written.lower())


def _enum_type(written: str) -> Any:
    """``{'a', 'b'}`` (NumPy's way of listing the allowed values) as ``Literal['a', 'b']``, in the order written."""
    try:
        node = ast.parse(written, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, (ast.Set, ast.Dict)) or (isinstance(node, ast.Dict) and node.keys):
        return None
    try:
        values = [ast.literal_eval(element) for element in getattr(node, "elts", [])]
    except ValueError:
        return None
    if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
        return None
    return Literal[tuple(values)]


def _default_type(default: Any) -> Any:
    """The type a parameter's default value implies (None: it implies none)."""
    for kind in (bool, int, float, str):  # bool before int: True is an int too
        if type(default) is kind:
            return kind
    if isinstance(default, (list, tuple)):
        return list
    if isinstance(default, dict):
        return dict
    return None


def _unannotated_type(param: inspect.Parameter, written: Optional[str]) -> Any:
    """The type of a parameter without an annotation: from its docstring, else from its default (an annotation
    always wins and never reaches here). A None default makes the type optional."""
    has_default = param.default is not inspect.Parameter.empty
    kind = docstring_type(written)
    if kind is None and has_default:
        kind = _default_type(param.default)
    if kind is None or kind is Any:
        return Any
    if has_default and param.default is None:
        return Optional[kind]
    return kind


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
    doc_types = {p.arg_name: p.type_name for p in doc.params if p.type_name}
    fields: dict[str, Any] = {}
    params: list[Param] = []
    accepts_extra = False
    for index, p in enumerate(signature.parameters.values()):
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # the model sends named arguments only
        if p.annotation is inspect.Parameter.empty:
            annotation = _unannotated_type(p, doc_types.get(p.name))
        else:
            annotation = p.annotation
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
