"""A live, throttled HTML view of a running program in IPython/Jupyter.

Why throttled and never blocking: handlebars-era guidance put a 100 ms floor under every run to redraw; here a
render only happens when at least ``min_interval`` seconds (monotonic clock) passed since the last one and the state
changed, otherwise ``update`` returns after one clock read and a few comparisons. Nothing ever sleeps. An update that
comes too soon is not lost: it arms one timer on the running event loop that draws the state ``min_interval`` after
the last render (a trailing render), so the messages sent before a slow first token, or a tool's result, appear
while the run waits. The final states (completed, paused, failed, interrupted) always render. IPython is imported
lazily: it is an optional extra, and outside a running shell the view does nothing at all.
"""

from __future__ import annotations

import asyncio
import sys
import time
import warnings
from typing import Any, Optional

from .display import COMPLETED, RUNNING, render_html, render_text
from .state import ProgramState

_clock = time.monotonic  # the throttle's clock (module-level so tests can drive it)


def _running_shell() -> Any:
    """The running IPython shell, or None; never imports IPython (a running shell has already imported it)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if get_ipython is not None else None


def in_ipython() -> bool:
    """True only inside a running IPython kernel or shell (IPython merely being installed or imported is not enough)."""
    return _running_shell() is not None


def current_cell() -> Optional[int]:
    """The execution count of the cell running now (None outside IPython): a live view belongs to one cell."""
    count = getattr(_running_shell(), "execution_count", None)
    return count if isinstance(count, int) else None


def _shows_html(shell: Any) -> bool:
    """Terminal IPython prints a display's plain-text repr, so a live HTML view there would only spam the console."""
    return not type(shell).__module__.startswith("IPython.terminal")


class LiveView:
    """Shows ``render_html(state)`` in one notebook output and keeps updating that same output while the run goes on.

    The output also carries the text transcript as its ``text/plain`` form (what a saved notebook, a terminal or an
    export without HTML shows). Call ``update`` on every change from the event loop that runs the program, and
    ``close`` once with the final status.
    """

    def __init__(self, state: ProgramState, *, min_interval: float = 0.1, title: str | None = None) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval!r}")
        self.state = state
        self.min_interval = float(min_interval)
        self.title = title
        shell = _running_shell()
        self.active = shell is not None and _shows_html(shell)
        self.cell = current_cell() if self.active else None  # the cell whose output this view is
        self.renders = 0  # how many times HTML was rendered and published
        self.status: Optional[str] = None  # the final status once closed
        self._handle: Any = None
        self._last_render = float("-inf")
        self._last_fingerprint: Optional[tuple] = None
        self._trailing: Optional[asyncio.TimerHandle] = None
        self._closed = False

    def _fingerprint(self) -> tuple:
        """Cheap signature of the state (append-only lists + the growing last span) to skip redundant renders."""
        state = self.state
        spans = state.spans
        streaming = getattr(state, "streaming", None)
        return (
            len(spans),
            len(spans[-1].text) if spans else 0,
            len(state.records),
            len(state.open_roles),
            len(state.gen_log),
            len(state.tool_calls),
            len(streaming[1]) if streaming else -1,
        )

    def update(self, force: bool = False) -> None:
        """Re-render if ``min_interval`` passed and the state changed (or ``force``); otherwise return at once, after
        arming a trailing render for this state when none is armed."""
        if not self.active or self._closed:
            return
        now = _clock()
        wait = self.min_interval - (now - self._last_render)
        if not force and wait > 0:
            self._arm_trailing(wait)
            return
        self._render_running(force)

    def _render_running(self, force: bool) -> None:
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._last_fingerprint:
            return
        self._cancel_trailing()
        self._publish(RUNNING, None)
        self._last_render = _clock()
        self._last_fingerprint = fingerprint

    def _arm_trailing(self, delay: float) -> None:
        """Draw the state at the end of the throttle window, unless a render happens first; needs a running loop
        (updates come from the program's loop; without one the next update or ``close`` draws the state)."""
        if self._trailing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._trailing = loop.call_later(delay, self._fire_trailing)

    def _fire_trailing(self) -> None:
        self._trailing = None
        if self.active and not self._closed:
            self._render_running(force=False)

    def _cancel_trailing(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None

    @property
    def pending(self) -> bool:
        """True while a trailing render is armed (a state newer than the one shown is waiting to be drawn)."""
        return self._trailing is not None

    def close(self, status: str = COMPLETED, *, error: str | None = None) -> None:
        """The final render (always, even right after another one): final text, status and usage footer."""
        if not self.active or self._closed:
            return
        self._cancel_trailing()
        self._closed = True
        self.status = status
        self._publish(status, error)

    def _publish(self, status: str, error: Optional[str]) -> None:
        from IPython.display import display, update_display  # optional extra: imported only when a shell is running

        data = {
            "text/html": render_html(self.state, title=self.title, status=status, error=error),
            "text/plain": render_text(self.state, status=status, error=error),
        }
        try:
            if self._handle is None:
                self._handle = display(data, raw=True, display_id=True)
            else:
                update_display(data, raw=True, display_id=self._handle.display_id)
        except (OSError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            # The view is a convenience: a broken frontend must not fail the program, but the user should know.
            self.active = False
            self._cancel_trailing()
            warnings.warn(
                f"guidance_lite live view disabled: displaying output failed ({exc!r})", RuntimeWarning, stacklevel=3
            )
            return
        self.renders += 1
