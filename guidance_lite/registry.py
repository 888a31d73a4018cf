"""The registry of commands (``{{gen …}}``), blocks (``{{#each …}}``) and built-in partials (``{{>@tool_def}}``): one
registration per name, read by every stage that needs to know about them.

Why one place: the parser checks a block's positional arity and separators, ``check`` (``analysis.py``) needs the
variables a command or block writes, display labels the tags whose output is generated model text, and the
interpreter dispatches to the handler. All of that sits on the registration, so a new command or block is one
decorator beside its handler and nothing else changes.

This module is low level on purpose: it imports only the AST node types and the error root, so the parser, analysis
and display read it without importing the interpreter or the commands. The built-in commands register when
``guidance_lite.commands`` is imported, which the package does before any template is parsed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

from . import nodes as n
from .errors import GuidanceLiteError

Handler = Callable[..., Awaitable[Any]]  # async fn(interp, node, *args, **kwargs)

SEPARATORS = frozenset({"else", "elif", "or"})  # the separator tags the grammar knows


@dataclass(frozen=True)
class CallSite:
    """A command call or block tag as written: its argument expressions, not their values (what binders read)."""

    args: tuple[n.Expr, ...]
    kwargs: tuple[tuple[str, n.Expr], ...]

    def argument(self, position: Optional[int], keyword: Optional[str] = None) -> Optional[n.Expr]:
        """The argument at ``position`` when given positionally, else the one given as ``keyword=``."""
        if position is not None and position < len(self.args):
            return self.args[position]
        if keyword is not None:
            for key, value in self.kwargs:
                if key == keyword:
                    return value
        return None

    def string(self, position: Optional[int], keyword: Optional[str] = None) -> Optional[str]:
        """The same argument when it is a string literal (the only names ``check`` can know without running)."""
        return n.string_value(self.argument(position, keyword))


@dataclass(frozen=True, init=False)
class Effects:
    """What one call of a command or block does to names, as far as its literal arguments tell.

    ``reads``: variables it reads by name (``{{await 'x'}}``); ``sets``: variables it writes (a block: before its
    body runs); ``sets_after_body``: variables a block writes once its body ran (``{{#block 'x'}}``); ``scoped``:
    names bound only inside a block's body (a loop's ``item_name``). Empty names (``None``) are dropped, so a binder
    can pass ``site.string(…)`` straight in.
    """

    reads: tuple[str, ...]
    sets: tuple[str, ...]
    sets_after_body: tuple[str, ...]
    scoped: tuple[str, ...]

    def __init__(
        self,
        reads: Iterable[Optional[str]] = (),
        sets: Iterable[Optional[str]] = (),
        sets_after_body: Iterable[Optional[str]] = (),
        scoped: Iterable[Optional[str]] = (),
    ) -> None:
        for field_name, names in (
            ("reads", reads),
            ("sets", sets),
            ("sets_after_body", sets_after_body),
            ("scoped", scoped),
        ):
            object.__setattr__(self, field_name, tuple(name for name in names if name))


NO_EFFECTS = Effects()
Binder = Callable[[CallSite], Effects]


def names_first_argument(site: CallSite) -> Effects:
    """Binder of commands that write the variable named by their first argument or ``name=`` (``select``)."""
    return Effects(sets=(site.string(0, "name"),))


def names_first_argument_after_body(site: CallSite) -> Effects:
    """Binder of blocks that write the variable named by their first argument once the body ran (``block``)."""
    return Effects(sets_after_body=(site.string(0, "name"),))


class ArityError(GuidanceLiteError, TypeError):
    """A command or block given more or fewer positional arguments than it takes, counted as the user wrote them."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> Any:
        return (type(self), (self.message, self.hint))


# How a positional parameter is named in arity messages, when its name alone would not say it.
_PARAMETER_WORDS = {"name": "the variable name"}


def arity_problem(label: str, arity: tuple[int, Optional[int]], count: int, parameters: tuple[str, ...] = ()) -> str:
    """The message for ``label`` (``{{#each}}``, ``gen``) given ``count`` positional arguments, or '' when its
    ``arity`` (min, max) allows them. ``parameters`` (the positional parameters' names) are shown when given."""
    low, high = arity
    if low <= count and (high is None or count <= high):
        return ""
    if high == 0:
        want = "no positional arguments"
    elif low == high:
        want = f"{low} positional argument" + ("s" if low > 1 else "")
    elif count < low:
        want = f"at least {low} positional argument" + ("s" if low > 1 else "")
    else:
        want = f"at most {high} positional argument" + ("s" if high and high > 1 else "")
    if parameters and high != 0:
        want += " (" + ", ".join(_PARAMETER_WORDS.get(p, p) for p in parameters) + ")"
    return f"{label} takes {want}, got {count}"


@dataclass(frozen=True)
class Command:
    """An inline command (``{{name args}}`` or ``{{name(args)}}``): the interpreter calls ``fn(interp, node, *args,
    **kwargs)`` so the command can write text and name template lines. Templates may call it, but not read its
    attributes (``__gl_opaque__``, see ``sandbox.SandboxPolicy``).

    ``binds`` tells ``check`` which variables a call writes or reads by name; ``generates`` marks commands whose
    output is model text (display highlights their tags like generated spans). ``arity`` is (min, max) positional
    arguments as the user writes them (max ``None``: any) and ``parameters`` their names, for the error a wrong call
    gets; ``usage`` is the example its hint shows.
    """

    name: str
    fn: Handler
    binds: Optional[Binder] = None
    generates: bool = False
    arity: tuple[int, Optional[int]] = (0, None)
    parameters: tuple[str, ...] = ()
    usage: str = ""
    __gl_opaque__ = True

    def effects(self, site: CallSite) -> Effects:
        return self.binds(site) if self.binds is not None else NO_EFFECTS

    def check_arity(self, count: int) -> None:
        """Raise ``ArityError`` when ``count`` positional arguments do not fit this command."""
        problem = arity_problem(self.name, self.arity, count, self.parameters)
        if problem:
            example = self.usage or f"{{{{{self.name} …}}}}"
            raise ArityError(problem, f"other arguments go by keyword (key=value); write it as {example}")

    def __repr__(self) -> str:
        return f"<built-in {self.name}>"


@dataclass(frozen=True)
class Block:
    """A block command (``{{#name args}}…{{sep}}…{{/name}}``). Calling it runs the handler:
    ``fn(interp, block_node, *args, **kwargs)``.

    ``arity`` is (min, max) positional arguments (max ``None``: unbounded), checked by the parser; ``separators``
    the ones the block accepts (``else``, ``elif``, ``or``); ``usage`` the example the parser shows when the
    arguments are wrong; ``binds`` and ``generates`` as for ``Command``.
    """

    name: str
    fn: Handler
    arity: tuple[int, Optional[int]] = (0, 0)
    separators: frozenset[str] = frozenset()
    usage: str = ""
    binds: Optional[Binder] = None
    generates: bool = False

    def effects(self, site: CallSite) -> Effects:
        return self.binds(site) if self.binds is not None else NO_EFFECTS

    def __call__(self, interp: Any, node: n.Block, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self.fn(interp, node, *args, **kwargs)

    def arity_problem(self, count: int) -> str:
        """The parser's message for this block given ``count`` positional arguments ('' when they fit)."""
        return arity_problem(f"{{{{#{self.name}}}}}", self.arity, count)


@dataclass(frozen=True)
class BuiltinPartial:
    """A partial the library provides: ``{{>@name args}}`` (or ``{{>name args}}`` when no variable is called
    ``name``) calls ``fn(interp, node, *args, **kwargs)`` instead of rendering a template (``{{>@tool_def}}``).
    ``binds`` as for ``Command``."""

    name: str
    fn: Handler
    binds: Optional[Binder] = None

    def effects(self, site: CallSite) -> Effects:
        return self.binds(site) if self.binds is not None else NO_EFFECTS


COMMANDS: dict[str, Command] = {}
BLOCKS: dict[str, Block] = {}
PARTIALS: dict[str, BuiltinPartial] = {}


def command(
    name: str,
    *,
    binds: Optional[Binder] = None,
    generates: bool = False,
    arity: Optional[tuple[int, Optional[int]]] = None,
    parameters: Optional[tuple[str, ...]] = None,
    usage: str = "",
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the inline command ``name`` (returns ``fn`` unchanged). ``arity`` and ``parameters``
    default to what the handler's signature takes after ``(interp, node)``."""

    def register(fn: Handler) -> Handler:
        counts = arity if arity is not None else positional_arity(fn)
        names = parameters if parameters is not None else positional_parameters(fn)
        COMMANDS[name] = Command(name, fn, binds, generates, counts, names, usage)
        return fn

    return register


def block(
    *names: str,
    separators: Iterable[str] = (),
    arity: Optional[tuple[int, Optional[int]]] = None,
    usage: Optional[str] = None,
    binds: Optional[Binder] = None,
    generates: bool = False,
) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the block command(s) ``names`` (returns ``fn`` unchanged).

    ``arity`` defaults to what the handler's signature accepts after ``(interp, node)``; ``usage`` to
    ``{{#name}}…{{/name}}``.
    """
    accepted = frozenset(separators)
    unknown = accepted - SEPARATORS
    if unknown:
        raise ValueError(
            f"unknown separator(s) {', '.join(sorted(unknown))}: a block may accept " + ", ".join(sorted(SEPARATORS))
        )

    def register(fn: Handler) -> Handler:
        counts = arity if arity is not None else positional_arity(fn)
        for name in names:
            BLOCKS[name] = Block(
                name, fn, counts, accepted, usage or f"{{{{#{name}}}}}…{{{{/{name}}}}}", binds, generates
            )
        return fn

    return register


def partial(name: str, *, binds: Optional[Binder] = None) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the built-in partial ``name`` (``{{>@name}}``; returns ``fn`` unchanged)."""

    def register(fn: Handler) -> Handler:
        PARTIALS[name] = BuiltinPartial(name, fn, binds)
        return fn

    return register


def builtin_partial(name: str) -> BuiltinPartial:
    """The built-in partial ``{{>@name}}`` names (``name`` with or without the ``@``); a clear error if there is
    none."""
    found = PARTIALS.get(name.lstrip("@"))
    if found is None:
        known = ", ".join("@" + known for known in sorted(PARTIALS)) or "none"
        raise LookupError(f"there is no built-in partial {name!r} (built-in partials: {known})")
    return found


def positional_parameters(fn: Callable[..., Any], skip: int = 2) -> tuple[str, ...]:
    """Names of the positional parameters ``fn`` takes after its first ``skip`` (``(interp, node)``)."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def positional_arity(fn: Callable[..., Any], skip: int = 2) -> tuple[int, Optional[int]]:
    """(required, maximum) positional arguments ``fn`` takes after its first ``skip`` (``(interp, node)``);
    maximum ``None``: any (``*args``)."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    unbounded = any(p.kind is p.VAR_POSITIONAL for p in params)
    return required, None if unbounded else len(positional)


__all__ = [
    "Handler",
    "CallSite",
    "Effects",
    "NO_EFFECTS",
    "Binder",
    "Command",
    "Block",
    "BuiltinPartial",
    "COMMANDS",
    "BLOCKS",
    "PARTIALS",
    "command",
    "block",
    "partial",
    "builtin_partial",
    "positional_arity",
    "positional_parameters",
    "arity_problem",
    "ArityError",
    "names_first_argument",
    "names_first_argument_after_body",
    "SEPARATORS",
]
