"""What a ``gen`` with tools captures when the model asks for tool calls: a callable answer object.

``callable(answer)`` is true, ``answer.tool_calls`` lists the calls, ``{{answer()}}`` runs them all concurrently and
yields their results (``ToolResults``), which a ``{{#function}}`` block turns into one ``tool`` message per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional

from .models.base import ToolCall
from .tools import ToolCallRecord

Dispatcher = Callable[[Sequence[ToolCall], dict], Awaitable["ToolResults"]]


class ToolResults(list):
    """The records of one ``answer()`` call, in call order; ``str()`` is their contents, one per line."""

    def __str__(self) -> str:
        return "\n".join(r.content for r in self)

    @property
    def results(self) -> list[Any]:
        return [r.result for r in self]


class ToolCallAnswer:
    """The model asked for tool calls instead of (or besides) answering in text."""

    def __init__(
        self, tool_calls: list[ToolCall], content: str, dispatcher: Dispatcher, variable: Optional[str] = None
    ) -> None:
        self.tool_calls = list(tool_calls)
        self.content = content or ""
        self.variable = variable
        self._dispatcher = dispatcher
        self.results: Optional[ToolResults] = None

    def _single(self) -> ToolCall:
        if len(self.tool_calls) != 1:
            names = ", ".join(c.name for c in self.tool_calls)
            raise AttributeError(
                f"the model asked for {len(self.tool_calls)} tool calls ({names}); use "
                "answer.tool_calls to inspect them one by one, or {{answer()}} to run them all"
            )
        return self.tool_calls[0]

    @property
    def function_name(self) -> str:
        """The called function's name: of the one call, or of several calls to the same function (guidance 0.0.64's
        ``{{#function name=answer.function_name}}`` then answers them all)."""
        if self.tool_calls and len({c.name for c in self.tool_calls}) == 1:
            return self.tool_calls[0].name
        return self._single().name

    @property
    def __name__(self) -> str:
        return self._single().name

    @property
    def function_args(self) -> dict:
        return self._single().arguments

    def __call__(self, **overrides: Any) -> Awaitable[ToolResults]:
        """Run every call of the message concurrently (``overrides`` replace arguments of every call)."""
        return self._run(overrides)

    async def _run(self, overrides: dict) -> ToolResults:
        results = await self._dispatcher(self.tool_calls, overrides)
        self.results = results
        return results

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        calls = ", ".join(f"{c.name}({c.arguments_json})" for c in self.tool_calls)
        return f"<ToolCallAnswer {calls}>"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.content == other
        return self is other

    __hash__ = object.__hash__


__all__ = ["ToolCallAnswer", "ToolResults", "ToolCallRecord"]
