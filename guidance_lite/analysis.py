"""Static analysis of a template: the inputs it reads, the variables it sets, the commands and blocks it uses.

Why its own module: ``guidance-lite check`` prints this report, and editors, notebooks or a program's own tests want it
without a CLI (``gl.analyze(template)``). The walk is generic (``nodes.iter_child_nodes``); what a command or block does
to names comes from its registration (``registry``), so a new block is analysed correctly without touching this file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

from . import (
    commands,  # noqa: F401 - registers the built-in commands and blocks before any template is parsed
)
from . import nodes as n
from .parser import parse
from .registry import BLOCKS, COMMANDS, NO_EFFECTS, PARTIALS, CallSite, Effects


@dataclass
class TemplateReport:
    """What a template needs and does, in order of first appearance.

    ``variables``: names read before anything in the template sets them (the program's inputs, including tools and
    partials passed as arguments and names it ``await``s); ``sets``: variables it writes; ``commands``: inline
    commands and helpers it calls; ``blocks``: block commands it opens.
    """

    variables: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def analyze(template: Union[str, n.Template]) -> TemplateReport:
    """The inputs a template reads, what it sets, and the commands and blocks it uses (template text is parsed
    first, so a syntax error raises ``TemplateSyntaxError``)."""
    if isinstance(template, str):
        template = parse(template)
    analyzer = _Analyzer()
    analyzer.visit_all(template.body)
    return analyzer.report


def _add(items: list[str], name: str) -> None:
    if name not in items:
        items.append(name)


class _Analyzer:
    """Walks the AST in execution order, tracking which names are bound (set earlier, or scoped by a block)."""

    def __init__(self) -> None:
        self.report = TemplateReport()
        self.bound: set[str] = {"this"}
        self.scopes: list[set[str]] = []
        self.literal_reads: list[list[str]] = []  # per call being walked: names its string literals stand for

    # ---- names ----
    def is_bound(self, name: str) -> bool:
        return name.startswith("@") or name in self.bound or any(name in scope for scope in self.scopes)

    def read(self, name: str) -> None:
        if self.is_bound(name):
            return
        _add(self.report.commands if name in COMMANDS else self.report.variables, name)

    def bind(self, name: str) -> None:
        """A variable written by the template (a dotted name writes into its root, creating it when missing)."""
        root = name.split(".", 1)[0]
        if root == "this" or root.startswith("@") or any(root in scope for scope in self.scopes):
            return  # this.x, item.x inside a loop: writes into the loop's value
        self.bound.add(root)
        _add(self.report.sets, root)

    # ---- nodes ----
    def visit_all(self, nodes: Iterable[n.Node]) -> None:
        for node in nodes:
            self.visit(node)

    def visit(self, node: n.Node) -> None:
        if isinstance(node, n.Var):
            self.read(node.name)
        elif isinstance(node, n.Const):
            pending = self.literal_reads[-1] if self.literal_reads else None
            if pending and node.value in pending:  # tools=['get_time']: the string names a program argument
                pending.remove(node.value)
                self.read(node.value)
        elif isinstance(node, n.Call):
            self.call(node)
        elif isinstance(node, n.Block):
            self.block(node)
        elif isinstance(node, n.Partial):
            self.partial(node)
        else:
            self.visit_all(n.iter_child_nodes(node))

    def arguments(self, children: Iterable[n.Node], effects: Effects) -> None:
        """Visit a call's or block's arguments in order; a name the registration says it reads is read where its
        string literal appears (else after the arguments), then the names it sets are bound."""
        self.literal_reads.append(list(effects.reads))
        try:
            self.visit_all(children)
        finally:
            unread = self.literal_reads.pop()
        for name in unread:
            self.read(name)
        for name in effects.sets:
            self.bind(name)

    def call(self, node: n.Call) -> None:
        func = node.func.name if isinstance(node.func, n.Var) else None
        spec = COMMANDS.get(func) if func is not None and not self.is_bound(func) else None
        effects = spec.effects(CallSite(node.args, node.kwargs)) if spec is not None else NO_EFFECTS
        self.arguments(n.iter_child_nodes(node), effects)

    def partial(self, node: n.Partial) -> None:
        """``{{>@tool_def}}`` (and ``{{>tool_def}}`` when nothing binds that name) is a built-in partial: what it
        reads comes from its registration; any other target is a template passed in, read like a variable."""
        name = node.target.name if isinstance(node.target, n.Var) else None
        builtin = None
        if name is not None and (name.startswith("@") or not self.is_bound(name)):
            builtin = PARTIALS.get(name.lstrip("@"))
        if builtin is None:
            self.visit_all(n.iter_child_nodes(node))
            return
        self.arguments(
            (*node.args, *(value for _, value in node.kwargs)), builtin.effects(CallSite(node.args, node.kwargs))
        )

    def block(self, node: n.Block) -> None:
        _add(self.report.blocks, node.name)
        spec = BLOCKS.get(node.name)
        effects = spec.effects(CallSite(node.args, node.kwargs)) if spec is not None else NO_EFFECTS
        self.arguments((*node.args, *(value for _, value in node.kwargs)), effects)
        self.scopes.append(set(effects.scoped))
        try:
            self.visit_all(node.body)
        finally:
            self.scopes.pop()
        self.visit_all(node.branches)
        for name in effects.sets_after_body:
            self.bind(name)
