"""Signals between commands and the interpreter that are not errors: loop control and "already written"."""

from __future__ import annotations

from typing import Any

from .errors import GuidanceLiteError


class LoopControl(GuidanceLiteError):
    """Base of ``{{break}}`` / ``{{continue}}`` signals; ``node`` is the tag that raised it (for error lines).

    Not an error: the enclosing loop catches it, and outside a loop the interpreter turns it into a
    ``TemplateRuntimeError``. It shares the package's exception root so that nothing the package raises escapes
    ``except gl.GuidanceLiteError``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.node: Any = None


class BreakLoop(LoopControl):
    pass


class ContinueLoop(LoopControl):
    pass


class _Nothing:
    """Returned by commands that already wrote their output (so the tag inserts nothing more)."""

    def __repr__(self) -> str:
        return "<nothing>"


NOTHING = _Nothing()
