"""Result: what one run of a program produced, and the handle that resumes a run paused at an ``await``.

A Result knows its run only through the small ``Run`` protocol (implemented by ``program.Execution``), so this
module sits below the program and the interpreter: events and errors can name it without an import cycle.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional, Protocol

from .display import COMPLETED, FAILED, PAUSED, render_html, render_text
from .errors import GuidanceLiteError
from .live import current_cell
from .models.base import Usage
from .runner import run_sync
from .state import ProgramState
from .tracebacks import for_user


class Run(Protocol):
    """What a Result needs of the run it came from: the state, where it paused, and a way to go on or stop."""

    state: ProgramState
    paused_on: Optional[str]
    pauses: int  # how many times the run has paused (identifies the current pause)

    async def drive(self, new_variables: Optional[dict] = None) -> Result: ...

    def cancel(self) -> None: ...

    def cancel_if_paused_at(self, pause: int) -> None: ...


class Result:
    """What a run produced: ``variables``, ``messages``, ``text``, ``usage``, ``tool_calls``, ``generations`` (one
    entry per model call: variable, usage, duration, finish_reason, model, cached) and ``finish_reasons``;
    ``completed`` is False when the program paused at an ``await`` (call the result with the missing values to
    resume)."""

    def __init__(self, run: Run, *, completed: bool, snapshot: bool = False, error: Optional[str] = None) -> None:
        self._run = run
        self._resumed = False
        self.live_cell: Optional[int] = None  # the notebook cell whose live view already shows this result
        self.error = error  # why the run stopped early (``err.partial`` of a failed run), else None
        state = run.state
        if not completed and run.paused_on is not None:
            # nobody can resume a paused run once its latest result is gone: end the suspended task cleanly
            weakref.finalize(self, run.cancel_if_paused_at, run.pauses)
        self.completed = completed
        self.paused_on = run.paused_on
        self.state = state
        if snapshot:  # a paused run goes on changing its state; keep what it was now
            self.variables = _snapshot(state.variables)
            self.messages = [dict(m) for m in state.messages]
            self.text = state.text
            self.tool_calls = list(state.tool_calls)
            self.usage = Usage() + state.usage
            self.generations = list(state.gen_log)
        else:
            self.variables = state.variables
            self.messages = state.messages
            self.text = state.text
            self.tool_calls = state.tool_calls
            self.usage = state.usage
            self.generations = state.gen_log

    @property
    def finish_reasons(self) -> dict[Optional[str], Optional[str]]:
        """Why each variable's latest generation ended: "stop" (the model finished or hit a stop), "length" (it ran
        out of max_tokens: the text is cut), "tool_calls" … Unnamed generations are under None."""
        return {entry["variable"]: entry["finish_reason"] for entry in self.generations}

    # mapping-like access to variables
    def __getitem__(self, name: str) -> Any:
        return self.variables[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.variables.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def __str__(self) -> str:
        return self.text

    @property
    def status(self) -> str:
        """``completed``, ``paused`` (waiting at an ``await``) or ``failed`` (the partial result of an error)."""
        if self.completed:
            return COMPLETED
        return FAILED if self.error is not None or self.paused_on is None else PAUSED

    def __repr__(self) -> str:
        return render_text(self.state, status=self.status, error=self.error)

    def _repr_html_(self) -> str:
        return render_html(self.state, status=self.status, error=self.error)

    def _ipython_display_(self) -> None:
        """Show the result, except in the cell whose live view already shows it (no second copy there); a later
        cell, or ``display(result)`` elsewhere, shows it again."""
        if self.live_cell is not None and self.live_cell == current_cell():
            return
        from IPython.display import display  # optional extra: only reached inside a running IPython

        display({"text/html": self._repr_html_(), "text/plain": repr(self)}, raw=True)

    # resuming
    def _check_resumable(self) -> Run:
        if self.completed:
            raise RuntimeError("this program already finished; call the program again for a new run")
        if self._resumed:
            raise RuntimeError("this paused result was already resumed; resume the newest result instead")
        self._resumed = True
        return self._run

    def cancel(self) -> None:
        """Abandon a paused run (it will never be resumed); a no-op for finished runs."""
        if self.completed or self._resumed:
            return
        self._resumed = True
        self._run.cancel()

    def __call__(self, **variables: Any) -> Result:
        """Resume a paused program with the missing variables (sync; shown live in notebooks unless silent)."""
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        run = self._check_resumable()
        try:
            return run_sync(run.drive(variables))
        except GuidanceLiteError as exc:
            raise for_user(exc) from exc.__cause__

    async def aresume(self, **variables: Any) -> Result:
        """Resume a paused program started with ``arun`` (async)."""
        __tracebackhide__ = True
        run = self._check_resumable()
        try:
            return await run.drive(variables)
        except GuidanceLiteError as exc:
            raise for_user(exc) from exc.__cause__


def _snapshot(value: Any) -> Any:
    """Copy containers (dict, list, tuple, set) all the way down; other objects are shared as they are."""
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_snapshot(v) for v in value)
    if isinstance(value, set):
        return set(value)
    return value
