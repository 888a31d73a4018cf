"""Built-in commands. Inline commands (``{{gen …}}``) live in ``COMMANDS``, block commands (``{{#each}}``) in
``BLOCKS``; each is a small async function ``fn(interp, node, *args, **kwargs)`` the interpreter dispatches to.
Plain helpers (``len``, ``add`` …) are ordinary functions wrapped so templates can call them either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

CommandFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """A built-in the interpreter calls with itself and the call node (so it can write text and name lines)."""

    name: str
    fn: CommandFn
    __gl_opaque__ = True  # templates may call it but not read its attributes (see expressions.safe_getattr)

    def __repr__(self) -> str:
        return f"<built-in {self.name}>"


COMMANDS: dict[str, Command] = {}
BLOCKS: dict[str, CommandFn] = {}


def command(name: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        COMMANDS[name] = Command(name, fn)
        return fn
    return register


def block(*names: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        for name in names:
            BLOCKS[name] = fn
        return fn
    return register


# registration happens on import
from . import helpers, roles, flow, variables, gen, select, loops  # noqa: E402,F401
