"""``{{>tool_def}}`` / ``{{>@tool_def}}``: declare the program's tools once, as guidance 0.0.64's function calling did.

Why program-wide definitions: 0.0.64 programs pass ``functions=[…]`` (OpenAI function schemas, implementations passed by
name) to the program and write ``{{>@tool_def}}`` in the system prompt; each ``{{gen … function_call="auto"}}`` then
offers those tools. Here the partial reads the definitions once into ``state.program_tools`` (schema dicts keep the
schema as written, enum and all; callables get one from their signature and docstring) and writes a readable line
into ``text``, which is not part of any message: chat backends send the definitions as native ``tools``, and
completion and local backends render them in the model family's own tool format, where that family expects them.
"""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..nodes import Partial
from ..registry import CallSite, Effects, partial
from ..state import TOOL_DEF
from ..tools import Tool, make_toolset


def _reads_functions(site: CallSite) -> Effects:
    """Without ``functions=`` the partial reads the program argument ``functions``."""
    return Effects(reads=() if site.argument(None, "functions") is not None else ("functions",))


@partial("tool_def", binds=_reads_functions)
async def tool_def(interp: RunContext, node: Partial, *args: Any, functions: Any = None) -> None:
    if args:
        raise TypeError("{{>tool_def}} takes no positional arguments: write {{>tool_def functions=[…]}}")
    if functions is None:
        functions = interp.variable("functions")
    if functions is None:
        raise ValueError(
            "{{>tool_def}} declares the program's tools but found none: pass functions=[…] to the program "
            "(OpenAI function schemas or functions) or write {{>tool_def functions=[…]}}"
        )
    declared = make_toolset(functions, resolve=interp.variable)
    interp.state.program_tools.update(declared)
    if declared:
        interp.write(readable_line(list(declared.values())), TOOL_DEF, line=node.line)


def readable_line(tools: list[Tool]) -> str:
    """What ``text`` shows of the declared tools: ``[tools: get_weather(city: string, unit?: "c" | "f")]``."""
    return "[tools: " + ", ".join(_signature(tool) for tool in tools) + "]"


def _signature(tool: Tool) -> str:
    parameters = tool.parameters
    required = set(parameters.get("required") or ())
    shown = [
        f"{name}{'' if name in required else '?'}: {_type_text(schema)}"
        for name, schema in (parameters.get("properties") or {}).items()
    ]
    return f"{tool.name}({', '.join(shown)})"


def _type_text(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if isinstance(schema.get("enum"), list):
        return " | ".join(f'"{value}"' if isinstance(value, str) else str(value) for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"{_type_text(schema.get('items'))}[]"
    return str(kind) if kind else "any"


__all__ = ["tool_def", "readable_line"]
