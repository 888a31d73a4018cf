"""Errors written for people: where (line, column, the source line with a caret), what, and what to do.

Every exception class the package defines inherits from ``GuidanceLiteError`` (and from the builtin it resembles),
so ``except gl.GuidanceLiteError`` catches all of them. This module imports only ``tracebacks`` (which imports nothing
from the package): every other module may import it.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

from .tracebacks import ipython_traceback

EXCERPT_WIDTH = 160  # a longer source line is shown as a window around the column, so errors stay short


def source_excerpt(source: str, line: int, col: int) -> str:
    """The offending source line with a caret under column ``col`` (both 1-based); a long line is cut to a window
    around the column, marked with '…'."""
    lines = source.splitlines() or [""]
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].expandtabs(1)
    caret = max(col - 1, 0)
    if len(text) > EXCERPT_WIDTH:
        start = max(0, min(caret - EXCERPT_WIDTH // 2, len(text) - EXCERPT_WIDTH))
        end = start + EXCERPT_WIDTH
        head, tail = ("…" if start else ""), ("…" if end < len(text) else "")
        text = head + text[start:end] + tail
        caret = caret - start + len(head)
    return f"    {text}\n    {' ' * caret}^"


class GuidanceLiteError(Exception):
    """Base class of every error this library raises on purpose."""

    def _render_traceback_(self) -> list[str]:
        """IPython's hook for exceptions that render themselves: the message and the user's frames, not ours."""
        return ipython_traceback(self)


class PartialResult(Protocol):
    """What ``TemplateRuntimeError.partial`` holds: the ``gl.Result`` of the run so far (declared here as a protocol
    so that this module imports nothing)."""

    completed: bool
    variables: dict[str, Any]
    messages: list[dict]
    text: str


class TemplateSyntaxError(GuidanceLiteError):
    """The template text is not valid; raised when the Program is created, never at call time."""

    def __init__(
        self,
        message: str,
        *,
        line: int,
        col: int,
        source: str = "",
        hint: str = "",
        text: str = "",
        name: Optional[str] = None,
    ) -> None:
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

    def __reduce__(self) -> Any:  # pickling (multiprocessing, notebooks) without calling __init__ again
        return (_unpickle, (type(self), self.args, dict(self.__dict__)))


class TemplateRuntimeError(GuidanceLiteError):
    """Something failed while the program ran. ``partial`` is the Result so far (variables, messages, text)."""

    def __init__(
        self,
        message: str,
        *,
        line: int = 0,
        col: int = 0,
        source: str = "",
        partial: Optional[PartialResult] = None,
        hint: str = "",
    ) -> None:
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

    def __reduce__(self) -> Any:  # pickling keeps the message; the partial Result (a live run) stays behind
        return (_unpickle, (type(self), self.args, {**self.__dict__, "partial": None}))


def _unpickle(cls: type[BaseException], args: tuple, attributes: dict) -> BaseException:
    error = cls.__new__(cls)
    BaseException.__init__(error, *args)
    error.__dict__.update(attributes)
    return error
