"""What commands and generation see of a running program: the ``RunContext`` protocol.

The interpreter implements it; ``commands/`` and ``generation.py`` are typed against it and never import the
interpreter. That keeps the pipeline one-way (program -> interpreter -> commands -> generation -> models) with no
import cycle, not even under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Optional, Protocol

from .events import Event
from .expressions import EvalContext
from .limits import Budget, Limits
from .models.base import Model
from .nodes import Node, Template
from .observe import RunWatch
from .state import TEXT, ProgramState, Span
from .variables import OwnedValues


class RunContext(EvalContext, Protocol):
    """One program run as a command handler ``fn(interp, node, *args, **kwargs)`` uses it."""

    state: ProgramState
    source: str  # the template text (for error excerpts)
    options: dict  # the run's options (await_missing, on_tool_call, tool_errors, tool_timeout, silent)
    scopes: list[dict[str, Any]]  # loop and partial frames, innermost last
    captures: list[list[Span]]  # open output captures (select options, tool blocks, parallel-each forks)
    listeners: list[Callable[[Event], None]]
    watch: Optional[RunWatch]  # the run's observers; None when nobody observes
    owned: OwnedValues  # containers this run may write into
    limits: Limits  # the run's limits (``gl.Limits``)
    budget: Budget  # the run's counters against them

    @property
    def model(self) -> Optional[Model]: ...

    # ---- variables and events
    def emit(self, event: Event) -> None: ...

    def variable(self, name: str) -> Any: ...

    def assign(self, name: str, value: Any, *, append: bool = False) -> None: ...

    def set_variable(self, name: str, value: Any, *, append: bool = False) -> None: ...

    async def pause(self, variable: str) -> None: ...

    def load_template(self, value: Any, name: str) -> tuple[Template, dict]: ...

    # ---- budgets
    def count_iteration(self, node: Node) -> None:
        """Count one run of a loop body (raises ``LimitExceeded`` past ``Limits.max_loop_iterations``)."""

    def nested_template(self) -> AbstractContextManager[None]:
        """Run a partial or parsed template one level deeper (``Limits.max_partial_depth``)."""

    # ---- output
    def write(
        self, text: str, kind: str = TEXT, variable: Optional[str] = None, meta: Optional[dict] = None, line: int = 0
    ) -> None: ...

    def replay(self, spans: list[Span]) -> None:
        """Write spans a parallel fork captured (their text was counted when the fork wrote it)."""

    def begin_capture(self) -> None: ...

    def end_capture(self) -> list[Span]: ...

    def is_top_level(self, node: Any) -> bool: ...

    def surrounding_text(self, node: Any) -> tuple[str, str]: ...

    # ---- rendering
    async def render(self, body: tuple[Node, ...]) -> None: ...

    async def render_to_string(self, body: tuple[Node, ...]) -> str: ...

    async def evaluate_at(self, node: Node, evaluator: Callable[[Any], Awaitable[Any]]) -> Any: ...

    def fork(self, frame: dict) -> RunContext: ...
