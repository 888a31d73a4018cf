"""Errors as the people who call the API see them: the message, the template line and the cause, without the frames
of this library, asyncio, ``concurrent.futures`` or the HTTP SDK.

Why at the boundary: an HTTP 400 used to print 228 lines, mostly SDK internals, and a template syntax error 45 lines
of parser internals, when the message already says what happened and what to change. The public entry points
(``Program(...)``, ``program(...)``, ``arun``, resuming, streaming, ``map``) pass the errors they raise through
``for_user``, and mark their own frames with ``__tracebackhide__`` (IPython leaves those out). Nothing is lost that a
user needs: every link of the chain stays reachable (``err.__cause__`` is still the tool's exception, the SDK's
``BadRequestError`` …) and keeps the frames of the user's own code (a helper or tool that raised). An unexpected
exception raised inside this library (a bug, not one of its errors) keeps all its frames, for the bug report.

In IPython the raising frame itself would still show (IPython never hides the last frame), so our errors render
themselves there (``GuidanceLiteError._render_traceback_`` calls ``ipython_traceback``) with the user's frames only.
This module imports nothing from the package, so ``errors`` can use it.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import TracebackType
from typing import Any, Optional, TypeVar

E = TypeVar("E", bound=BaseException)

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _library_dirs() -> tuple[str, ...]:
    """This package, the standard library and installed packages: frames there are not the user's code."""
    paths = {_PACKAGE_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            paths.add(os.path.abspath(path) + os.sep)
    for entry in sys.path:
        if entry.endswith(("site-packages", "dist-packages")):
            paths.add(os.path.abspath(entry) + os.sep)
    return tuple(sorted(paths))


_LIBRARY_DIRS = _library_dirs()


def is_library_frame(filename: str) -> bool:
    """True for code of this package, the standard library or an installed package (``<frozen …>`` included)."""
    if filename.startswith("<frozen"):
        return True
    return os.path.abspath(filename).startswith(_LIBRARY_DIRS)


def user_frames(tb: Optional[TracebackType]) -> Optional[TracebackType]:
    """The same traceback with only the frames of the user's code (a new chain; the frames are shared)."""
    kept: list[TracebackType] = []
    while tb is not None:
        if not is_library_frame(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt: Optional[TracebackType] = None
    for item in reversed(kept):
        rebuilt = TracebackType(rebuilt, item.tb_frame, item.tb_lasti, item.tb_lineno)
    return rebuilt


def is_ours(exc: BaseException) -> bool:
    """One of the errors this library raises on purpose (every one inherits ``GuidanceLiteError``, defined in a
    ``guidance_lite`` module; checked by module so that this module imports nothing)."""
    return any(
        klass.__name__ == "GuidanceLiteError" and klass.__module__.startswith("guidance_lite.")
        for klass in type(exc).__mro__
    )


def _is_internal_bug(exc: BaseException) -> bool:
    """An exception that is not one of ours, raised by this package's own code: its frames are what a fix needs."""
    if is_ours(exc):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)


def for_user(exc: E) -> E:
    """Trim ``exc`` for display and return it (to be raised at the boundary): its own traceback restarts there; each
    linked exception keeps only the user's frames (all of them for an internal bug); the implicit context of our own
    errors (internal plumbing: the explicit ``__cause__`` is what matters) is no longer printed but stays reachable."""
    exc.__traceback__ = None
    seen: set[int] = set()
    link: Optional[BaseException] = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if link is not exc and not _is_internal_bug(link):
            link.__traceback__ = user_frames(link.__traceback__)
        if is_ours(link) and link.__cause__ is None:
            link.__suppress_context__ = True
        if link.__cause__ is not None:
            link = link.__cause__
        else:
            link = None if link.__suppress_context__ else link.__context__
    return exc


def ipython_traceback(exc: BaseException) -> list[str]:
    """IPython's rendering of ``exc`` (honouring ``%xmode``) from the user's frames only: the cell that called the API
    and the user's own functions, not the frame of ours that raised nor IPython's own."""
    shell = _running_shell()
    tb = user_frames(exc.__traceback__)
    if shell is None:
        import traceback

        return traceback.format_exception(type(exc), exc, tb)
    return list(shell.InteractiveTB.structured_traceback(type(exc), exc, tb, tb_offset=0))


def _running_shell() -> Any:
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if get_ipython is not None else None
