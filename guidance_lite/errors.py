"""Errors written for people: where (line, column, the source line with a caret), what, and what to do."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .program import Result


def source_excerpt(source: str, line: int, col: int) -> str:
    """The offending source line with a caret under column ``col`` (both 1-based)."""
    lines = source.splitlines() or [""]
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].expandtabs(1)
    return f"    {text}\n    {' ' * max(col - 1, 0)}^"


class GuidanceLiteError(Exception):
    """Base class of every error this library raises on purpose."""


class TemplateSyntaxError(GuidanceLiteError):
    """The template text is not valid; raised when the Program is created, never at call time."""

    def __init__(self, message: str, *, line: int, col: int, source: str = "", hint: str = "",
                 text: str = "", name: Optional[str] = None) -> None:
        self.message = message
        self.line = line
        self.col = col
        self.hint = hint
        self.text = text  # the offending text
        self.name = name
        where = f"{name}:" if name else "line "
        parts = [f"{message} ({where}{line}, column {col})"]
        excerpt = source_excerpt(source, line, col) if source else ""
        if excerpt:
            parts.append(excerpt)
        if hint:
            parts.append(f"hint: {hint}")
        super().__init__("\n".join(parts))


class TemplateRuntimeError(GuidanceLiteError):
    """Something failed while the program ran. ``partial`` is the Result so far (variables, messages, text)."""

    def __init__(self, message: str, *, line: int = 0, col: int = 0, source: str = "",
                 partial: Optional["Result"] = None, hint: str = "") -> None:
        self.message = message
        self.line = line
        self.col = col
        self.hint = hint
        self.partial = partial
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [f"{self.message} (template line {self.line})" if self.line else self.message]
        excerpt = source_excerpt(self.source, self.line, self.col) if self.source and self.line else ""
        if excerpt:
            parts.append(excerpt)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)

    def __reduce__(self) -> Any:  # keep pickling (multiprocessing, notebooks) working
        return (_rebuild_runtime_error, (self.message, self.line, self.col, self.hint))


def _rebuild_runtime_error(message: str, line: int, col: int, hint: str) -> TemplateRuntimeError:
    return TemplateRuntimeError(message, line=line, col=col, hint=hint)
