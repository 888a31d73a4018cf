"""Every tool-related error: a tool that can't be defined, arguments that don't fit, a call that failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import GuidanceLiteError

if TYPE_CHECKING:  # pragma: no cover
    from .records import ToolCallRecord


class ToolError(GuidanceLiteError):
    """Base class of every tool-related error."""


class ToolDefinitionError(ToolError, TypeError):
    """Something offered as a tool cannot be one (bad name, unsupported type, duplicate, not a tool at all)."""


class ToolSchemaError(ToolDefinitionError, ValueError):
    """A tool schema dict that can't be read (no function name, not a function tool). Also a ``ValueError``: the
    backends' tool formats have always reported bad schemas that way."""


class ToolChoiceError(ToolError, ValueError):
    """A ``tool_choice`` that does not fit the offered tools (names no offered tool, or forces a call without tools)."""


class ToolArgumentError(ToolError, ValueError):
    """Arguments that do not fit the tool's parameters; ``problems`` lists one readable line per bad field."""

    def __init__(self, tool_name: str, problems: list[str]) -> None:
        self.tool_name = tool_name
        self.problems = list(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"invalid arguments for tool '{tool_name}':\n{lines}")


class ToolExecutionError(ToolError):
    """Raised by ``dispatch(errors='raise')`` for the first failed call; ``records`` holds every call's record."""

    def __init__(self, record: ToolCallRecord, records: Sequence[ToolCallRecord] = ()) -> None:
        self.record = record
        self.records = list(records)
        super().__init__(f"tool call {record.id!r} to '{record.name}' failed ({record.error_type}): {record.error}")


class MissingImplementation(ToolError):
    """A schema-only tool was called but no function implements it."""
