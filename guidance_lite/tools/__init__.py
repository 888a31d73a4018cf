"""Python callables as tools: JSON schemas from signatures (``schema``), the ``Tool`` object (``tool``), what backends
see of an offered tool (``spec``), and running calls concurrently (``dispatch``, ``records``).

Why this shape: the model only ever sees a JSON schema and sends back JSON text, so everything between the two is
data handling, and every fault a call can have becomes a tool result the model can read and recover from.
"""

from __future__ import annotations

from .call import MAX_ARGUMENT_DEPTH, ToolCall, make_call_ids_unique, new_call_id, unique_call_id
from .dispatch import DEFAULT_TOOL_TIMEOUT, DENIED_MESSAGE, ERROR_MODES, HookResult, dispatch
from .errors import (
    MissingImplementation,
    ToolArgumentError,
    ToolChoiceError,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    ToolSchemaError,
)
from .records import (
    DENIED,
    EXCEPTION,
    INVALID_ARGUMENTS,
    INVALID_JSON,
    TIMEOUT,
    UNKNOWN_TOOL,
    ToolCallRecord,
    format_result,
)
from .schema import TOOL_NAME_PATTERN
from .spec import ToolChoice, ToolSpec, resolve_tool_choice, tool_specs
from .tool import Tool, make_tool, make_toolset, tool

__all__ = [
    "Tool",
    "ToolCallRecord",
    "ToolError",
    "ToolDefinitionError",
    "ToolArgumentError",
    "ToolExecutionError",
    "tool",
    "make_tool",
    "make_toolset",
    "dispatch",
    "format_result",
    # the tool model backends see, and the rest of the package's public names
    "ToolCall",
    "new_call_id",
    "unique_call_id",
    "make_call_ids_unique",
    "ToolSpec",
    "ToolChoice",
    "tool_specs",
    "resolve_tool_choice",
    "ToolSchemaError",
    "ToolChoiceError",
    "MissingImplementation",
    "HookResult",
    "ERROR_MODES",
    "DENIED_MESSAGE",
    "DEFAULT_TOOL_TIMEOUT",
    "MAX_ARGUMENT_DEPTH",
    "TOOL_NAME_PATTERN",
    "UNKNOWN_TOOL",
    "INVALID_JSON",
    "INVALID_ARGUMENTS",
    "EXCEPTION",
    "TIMEOUT",
    "DENIED",
]
