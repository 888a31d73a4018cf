"""A live, throttled HTML view of a running program in IPython/Jupyter.

Why throttled and never blocking: handlebars-era guidance put a 100 ms floor under every run to redraw; here a
render only happens when at least ``min_interval`` seconds (monotonic clock) passed since the last one and the state
changed, otherwise ``update`` returns after one clock read and a few comparisons. Nothing ever sleeps. IPython is
imported lazily: it is an optional extra, and outside a running shell the view does nothing at all.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Optional

from .display import render_html
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


def _shows_html(shell: Any) -> bool:
    """Terminal IPython prints a display's plain-text repr, so a live HTML view there would only spam the console."""
    return not type(shell).__module__.startswith("IPython.terminal")


class LiveView:
    """Shows ``render_html(state)`` in one notebook output and keeps updating that same output while the run goes on."""

    def __init__(self, state: ProgramState, *, min_interval: float = 0.1, title: str | None = None) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval!r}")
        self.state = state
        self.min_interval = float(min_interval)
        self.title = title
        shell = _running_shell()
        self.active = shell is not None and _shows_html(shell)
        self.renders = 0  # how many times HTML was rendered and published
        self._handle: Any = None
        self._last_render = float("-inf")
        self._last_fingerprint: Optional[tuple] = None
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
        """Re-render if ``min_interval`` passed and the state changed (or ``force``); otherwise return at once."""
        if not self.active or self._closed:
            return
        now = _clock()
        if not force and now - self._last_render < self.min_interval:
            return
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._last_fingerprint:
            return
        self._publish(render_html(self.state, title=self.title, completed=False, running=True))
        self._last_render = now
        self._last_fingerprint = fingerprint

    def close(self, *, completed: bool = True, error: str | None = None) -> None:
        """The final render (always, even right after another one): final text, status and usage footer."""
        if not self.active or self._closed:
            return
        self._publish(render_html(self.state, title=self.title, completed=completed, running=False, error=error))
        self._closed = True

    def _publish(self, markup: str) -> None:
        from IPython.display import HTML, display  # optional extra: imported only when a shell is running

        try:
            if self._handle is None:
                self._handle = display(HTML(markup), display_id=True)
            else:
                self._handle.update(HTML(markup))
        except (OSError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            # The view is a convenience: a broken frontend must not fail the program, but the user should know.
            self.active = False
            warnings.warn(
                f"guidance_lite live view disabled: displaying output failed ({exc!r})", RuntimeWarning, stacklevel=3
            )
            return
        self.renders += 1
