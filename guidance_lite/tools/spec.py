"""The one tool model backends see: each offered tool as a :class:`ToolSpec`, ``tool_choice`` as a :class:`ToolChoice`.

Why: tools reach a backend as Tool objects (templates), OpenAI schema dicts (hand-written requests) or specs already,
and ``tool_choice`` as ``'auto'``, ``'required'``, ``'none'``, a tool name or OpenAI's ``{"type": "function", ...}``.
They are read here, once: ``tool_specs`` and ``resolve_tool_choice`` accept every form and return typed values (both
pass typed values through), so a backend translates one shape, in one function, and never re-parses a schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from .errors import ToolChoiceError, ToolSchemaError
from .schema import empty_parameters, read_function_schema
from .tool import Tool


@dataclass(frozen=True)
class ToolSpec:
    """One offered tool as a backend needs it.

    ``definition`` is the OpenAI tool definition (``{"type": "function", "function": {...}}``) that is sent or
    rendered into the prompt: built once and shared, so treat it as read-only (``schema()`` gives a copy, as
    ``Tool.schema()`` does). ``tool`` is the Tool behind it (None for a schema given by hand), which dispatch runs.
    """

    name: str
    description: str
    parameters: dict
    definition: dict
    tool: Optional[Tool] = None

    def schema(self) -> dict:
        """A copy of the OpenAI tool definition."""
        return copy.deepcopy(self.definition)

    @classmethod
    def of(cls, tool: Any) -> ToolSpec:
        """The spec of a Tool, an OpenAI tool dict, or any object with a ``schema()`` method returning one."""
        if isinstance(tool, ToolSpec):
            return tool
        if isinstance(tool, Tool):
            return cls(tool.name, tool.description, tool.parameters, tool.schema(), tool)
        if not isinstance(tool, dict) and callable(getattr(tool, "schema", None)):
            tool = tool.schema()
        if not isinstance(tool, dict):
            raise ToolSchemaError(
                f"tools must be OpenAI tool dicts (or objects with .schema()), got {type(tool).__name__}"
            )
        function = dict(read_function_schema(tool))
        function.setdefault("parameters", empty_parameters())
        return cls(
            function["name"],
            function.get("description") or "",
            function["parameters"],
            {"type": "function", "function": function},
        )


def tool_specs(tools: Optional[Iterable[Any]]) -> tuple[ToolSpec, ...]:
    """Specs for ``tools`` (Tools, OpenAI tool dicts, specs; None is no tools), in order."""
    return tuple(ToolSpec.of(t) for t in tools) if tools else ()


MODES = ("auto", "required", "none", "named")


@dataclass(frozen=True, eq=False)
class ToolChoice:
    """``tool_choice`` resolved against the offered tools.

    ``mode`` is 'auto', 'required', 'none' or 'named'. ``name`` is the tool a call must be to, when that is known: the
    named tool, or the only tool offered with 'required' (what every server understands; llama.cpp's ignores
    'required'). ``explicit`` is False when no tool_choice was given (servers then apply their default, 'auto').

    A ToolChoice compares equal to the string a template writes for it ('auto', 'required', 'none' or the tool name;
    None when not given), so recorded requests read naturally: ``mock.last_request.tool_choice == "auto"``.
    """

    mode: str
    name: Optional[str] = None
    explicit: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ToolChoice mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "named" and not self.name:
            raise ValueError("a 'named' ToolChoice needs the tool's name")

    @property
    def forced(self) -> bool:
        """Whether the model must call a tool."""
        return self.mode in ("required", "named")

    @property
    def value(self) -> Optional[str]:
        """The template spelling: 'auto' | 'required' | 'none' | the tool name (None when not given)."""
        if not self.explicit:
            return None
        return self.name if self.mode == "named" else self.mode

    def allowed(self, tools: Sequence[ToolSpec]) -> list[ToolSpec]:
        """The tools a call may be to: the named one, or all."""
        return [t for t in tools if t.name == self.name] if self.mode == "named" else list(tools)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ToolChoice):
            return (self.mode, self.name, self.explicit) == (other.mode, other.name, other.explicit)
        if other is None or isinstance(other, str):
            return self.value == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"ToolChoice({self.mode!r}{name}{'' if self.explicit else ', explicit=False'})"


NOT_GIVEN = ToolChoice("auto", explicit=False)


def resolve_tool_choice(given: Union[ToolChoice, str, dict, None], tools: Sequence[ToolSpec]) -> ToolChoice:
    """``given`` as a ToolChoice for ``tools``; raises ToolChoiceError when it names no offered tool or forces a call
    without tools ('auto' and 'none' are fine without tools)."""
    if given is None:
        return NOT_GIVEN
    if isinstance(given, ToolChoice):
        mode, name = given.mode, given.name if given.mode == "named" else None
        shown: Any = given.value
    elif isinstance(given, dict):
        function = given.get("function")
        name = (function.get("name") if isinstance(function, dict) else None) or given.get("name")
        if not isinstance(name, str) or not name:
            raise ToolChoiceError(
                f"tool_choice {given!r} names no function; use "
                f"{{'type': 'function', 'function': {{'name': ...}}}} or the tool's name"
            )
        mode, shown = "named", name
    elif isinstance(given, str):
        mode, name, shown = (given, None, given) if given in ("auto", "required", "none") else ("named", given, given)
    else:
        raise ToolChoiceError(f"tool_choice must be 'auto', 'required', 'none' or a tool name, not {given!r}")
    if mode in ("auto", "none"):
        return given if isinstance(given, ToolChoice) else ToolChoice(mode)
    if not tools:
        raise ToolChoiceError(f"tool_choice={shown!r} needs tools: pass tools=[...] to gen")
    names = [t.name for t in tools]
    if mode == "required":
        return ToolChoice("required", names[0] if len(names) == 1 else None)
    if name not in names:
        raise ToolChoiceError(
            f"tool_choice={name!r} is not one of the offered tools "
            f"({', '.join(repr(n) for n in names)}): use 'auto', 'required', 'none' or the name of "
            f"a tool in tools=[{', '.join(names)}]"
        )
    return given if isinstance(given, ToolChoice) else ToolChoice("named", name)
