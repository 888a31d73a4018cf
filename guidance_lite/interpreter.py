"""Walks the AST and owns control flow. Each built-in command is a small function in ``commands/`` that the
interpreter dispatches to; this module only knows how to visit nodes, resolve names, write to the transcript and
turn failures into errors that name the template line.

What the interpreter needs from the program above it (pausing at an ``await``, loading a partial or a ``{{parse}}``
template) is handed in as callables, so it never imports ``program`` or the parser; commands see it through the
``context.RunContext`` protocol.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Optional

from . import nodes as n
from .answer import ToolResults
from .commands.partials import run_partial
from .control import NOTHING, BreakLoop, LoopControl
from .errors import TemplateRuntimeError
from .events import Event, TemplateText, VariableSet
from .expressions import MissingVariable, maybe_await
from .limits import Budget, LimitExceeded, limits_from
from .models.base import Model
from .observe import RunWatch
from .options import reserved_hint
from .registry import BLOCKS, COMMANDS, PARTIALS, ArityError, BuiltinPartial, Command, builtin_partial
from .sandbox import POLICY, SandboxError
from .state import TEXT, TOOL_RESULT, VALUE, ProgramState, Span
from .tools import ToolError
from .variables import OwnedValues, assign_path

PauseFn = Callable[[str], Awaitable[None]]  # stop the run until the named variable is given
# a partial's value (a Program or template text) and a name for errors -> (template to run, its defaults)
TemplateLoader = Callable[[Any, str], "tuple[n.Template, dict]"]


class Interpreter:
    """Executes one program run against a ``ProgramState``; paused runs keep this object (no re-parsing)."""

    def __init__(
        self,
        state: ProgramState,
        model: Any,
        source: str,
        options: dict,
        *,
        pause: PauseFn,
        load_template: TemplateLoader,
    ) -> None:
        self.state = state
        self._model = model  # a Model, or a zero-argument function that finds one on first use
        self.source = source
        self.options = options
        self._pause = pause
        self.load_template = load_template
        self.scopes: list[dict[str, Any]] = []
        self.captures: list[list[Span]] = []
        self.listeners: list[Callable[[Event], None]] = []
        self.watch: Optional[RunWatch] = None  # the run's observers (None: nobody observes, nothing is reported)
        self.owned = OwnedValues()  # containers this interpreter made or copied (copy-on-write writes)
        self.limits = limits_from(options.get("limits"))
        self.budget = Budget(self.limits)  # the run's counters (loop iterations, steps, output), shared with forks
        self.template_depth = 0  # partials and {{parse}} templates running inside each other here
        self._top_output: Optional[n.Output] = None  # the {{tag}} being rendered
        self._visit: dict[type, Callable] = {
            n.Text: self.visit_text,
            n.Output: self.visit_output,
            n.Block: self.visit_block,
            n.Partial: self.visit_partial,
        }

    @property
    def model(self) -> Optional[Model]:
        """The model, resolved on the first generation (so programs that never generate need none)."""
        if self._model is not None and not isinstance(self._model, Model):
            self._model = self._model()
        return self._model

    def fork(self, frame: dict) -> Interpreter:
        """A child interpreter for one parallel-each iteration: shared state, own scope and output capture."""
        child = Interpreter(
            self.state, self._model, self.source, self.options, pause=self._pause, load_template=self.load_template
        )
        child.scopes = [*self.scopes, frame]
        child.captures = [[]]
        child.listeners = self.listeners
        child.budget = self.budget
        child.template_depth = self.template_depth
        child.watch = self.watch
        return child

    async def pause(self, variable: str) -> None:
        """Stop the run here until ``variable`` is given (``{{await}}``, or a missing name with ``await_missing``)."""
        await self._pause(variable)

    # ---- events ----------------------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    # ---- names -------------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        variables = self.state.variables
        if name in variables:
            return variables[name]
        if name == "@prefix":
            return self.state.text
        command = COMMANDS.get(name)
        if command is not None:
            return command
        raise MissingVariable(name)

    def variable(self, name: str) -> Any:
        """A program argument or captured variable only (never a helper): what ``tools=`` names resolve to."""
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return self.state.variables.get(name)

    def known_names(self) -> list[str]:
        names = set(self.state.variables) | set(COMMANDS)
        for scope in self.scopes:
            names |= set(scope)
        return sorted(names)

    def assign(self, name: str, value: Any, *, append: bool = False) -> None:
        """Write a variable; dotted names (``this.x``, ``obj.x``) write into copies, never into caller data."""
        assign_path(self.state.variables, self.scopes, self.owned, name, value, append=append)

    def set_variable(self, name: str, value: Any, *, append: bool = False) -> None:
        """``assign`` and tell the listeners (``VariableSet``): how commands store what the template asked for."""
        self.assign(name, value, append=append)
        self.emit(VariableSet(name, value))

    # ---- calls from expressions ----------------------------------------------------------------------------------
    async def call(self, func: Any, args: list, kwargs: dict, node: n.Call) -> Any:
        self.budget.count_step()
        if isinstance(func, Command):
            func.check_arity(len(args))
            return await func.fn(self, node, *args, **kwargs)
        if not callable(func):
            raise TypeError(f"{_describe_callee(node)} is a {type(func).__name__}, not something to call")
        POLICY.check_call(func, args, kwargs, self.limits)
        return POLICY.check_result(await maybe_await(func(*args, **kwargs)), _describe_callee(node))

    # ---- budgets -----------------------------------------------------------------------------------------------
    def count_iteration(self, node: n.Node) -> None:
        """Count one run of a loop body against ``Limits.max_loop_iterations`` (every loop block calls it)."""
        self.budget.count_iteration(f"the loop on line {node.line}" if node.line else "a loop")

    def is_top_level(self, node: n.Expr) -> bool:
        """True when ``node`` is the whole expression of the tag being rendered (so a command may write text)."""
        top = self._top_output
        return top is not None and node is top.expr

    def surrounding_text(self, node: n.Expr) -> tuple[str, str]:
        """The literal template text right before and after the tag whose whole expression is ``node`` (("", "")
        for a nested call)."""
        top = self._top_output
        if top is None or node is not top.expr:
            return "", ""
        return top.before, top.after

    # ---- writing ---------------------------------------------------------------------------------------------------
    def write(
        self, text: str, kind: str = TEXT, variable: Optional[str] = None, meta: Optional[dict] = None, line: int = 0
    ) -> None:
        if text:
            self.budget.count_output(len(text))
        self.place(text, kind, variable, meta, line)

    def replay(self, spans: list[Span]) -> None:
        """Write spans a fork captured (already counted against the output budget when the fork wrote them)."""
        for span in spans:
            self.place(span.text, span.kind, span.variable, span.meta)

    def place(
        self, text: str, kind: str = TEXT, variable: Optional[str] = None, meta: Optional[dict] = None, line: int = 0
    ) -> None:
        """Put text in the open capture or the transcript (``write`` without counting it)."""
        if self.captures:
            if text or kind == TOOL_RESULT:
                self.captures[-1].append(Span(text, kind, variable, 0, None, meta))
            return
        span = self.state.append(text, kind, variable, meta, line)
        if span is not None and self.listeners and kind in (TEXT, VALUE):
            self.emit(TemplateText(text))

    def begin_capture(self) -> None:
        self.captures.append([])

    def end_capture(self) -> list[Span]:
        return self.captures.pop()

    async def render_to_string(self, body: tuple[n.Node, ...]) -> str:
        """Render nodes without writing them to the transcript (select options, block arguments)."""
        self.begin_capture()
        try:
            await self.render(body)
        finally:
            spans = self.end_capture()
        return "".join(s.text for s in spans)

    # ---- visiting ----------------------------------------------------------------------------------------------------
    async def run(self, body: tuple[n.Node, ...]) -> None:
        try:
            await self.render(body)
        except LoopControl as exc:
            word = "break" if isinstance(exc, BreakLoop) else "continue"
            line, col = (exc.node.line, exc.node.col) if exc.node is not None else (0, 0)
            raise TemplateRuntimeError(
                f"{{{{{word}}}}} outside of a loop",
                source=self.source,
                line=line,
                col=col,
                hint="use it inside {{#each}} or {{#geneach}}",
            ) from None

    async def render(self, body: tuple[n.Node, ...]) -> None:
        visit = self._visit
        budget = self.budget
        for node in body:
            budget.count_step()
            await visit[type(node)](node)

    async def visit_text(self, node: n.Text) -> None:
        self.write(node.text, TEXT, line=node.line)

    async def visit_output(self, node: n.Output) -> None:
        while True:
            previous = self._top_output
            self._top_output = node
            failures = self.failures_at(node, retry_missing=True)
            try:
                with failures:
                    value = node.fn(self)
                    if node.is_async:
                        value = await value
                    if isinstance(value, Command) and isinstance(node.expr, n.Var):  # {{break}}, {{gen}}: no-arg call
                        value.check_arity(0)
                        value = await value.fn(self, node.expr)
                    break
            finally:
                self._top_output = previous
            await self.pause(failures.missing)
        await self.output_value(value, node)

    async def output_value(self, value: Any, node: n.Node) -> None:
        if value is None or value is NOTHING:
            return
        if isinstance(value, ToolResults):
            for record in value:
                self.write(record.content, TOOL_RESULT, record.variable, {"record": record}, node.line)
            return
        self.write(value if isinstance(value, str) else str(value), VALUE, line=node.line)

    async def evaluate_at(self, node: n.Node, evaluator: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run an async evaluator for ``node``: a missing name pauses (with ``await_missing``) and is retried;
        any other failure becomes an error naming ``node``'s line."""
        while True:
            failures = self.failures_at(node, retry_missing=True)
            with failures:
                return await evaluator(self)
            await self.pause(failures.missing)

    async def visit_block(self, node: n.Block) -> None:
        handler = BLOCKS[node.name]
        args, kwargs = await self.evaluate_at(node, node.args_fn)
        with self.failures_at(node):
            await handler(self, node, *args, **kwargs)

    async def visit_partial(self, node: n.Partial) -> None:
        target = node.target

        async def target_value(interp: Interpreter) -> Any:
            if not isinstance(target, n.Var):
                return target.value  # type: ignore[attr-defined]
            return builtin_partial(target.name) if target.name.startswith("@") else interp.partial_value(target.name)

        value = await self.evaluate_at(node, target_value)
        args, kwargs = await self.evaluate_at(node, node.args_fn)
        with self.failures_at(node):
            if isinstance(value, BuiltinPartial):
                await value.fn(self, node, *args, **kwargs)
                return
            template, defaults = self.load_template(value, "<partial>")
            with self.nested_template():
                await run_partial(self, node, template, {**defaults, **kwargs, "args": list(args)})

    @contextmanager
    def nested_template(self) -> Iterator[None]:
        """Run a partial or a ``{{parse}}`` template one level deeper (``Limits.max_partial_depth``)."""
        if self.template_depth >= self.limits.max_partial_depth:
            raise LimitExceeded(
                "max_partial_depth",
                self.limits.max_partial_depth,
                "partials and {{parse}} templates nested too deeply (does a partial include itself?)",
            )
        self.template_depth += 1
        try:
            yield
        finally:
            self.template_depth -= 1

    def partial_value(self, name: str) -> Any:
        """What ``{{>name}}`` renders: the variable ``name``, else the built-in partial of that name."""
        try:
            return self.lookup(name)
        except MissingVariable:
            if name in PARTIALS:
                return PARTIALS[name]
            raise

    # ---- errors ------------------------------------------------------------------------------------------------------
    def failures_at(self, node: n.Node, *, retry_missing: bool = False) -> FailuresAt:
        """A context manager: any failure inside becomes a ``TemplateRuntimeError`` naming ``node``'s line (loop
        signals and errors that already name a line pass through). With ``retry_missing`` and the ``await_missing``
        option a missing name is kept in ``.missing`` instead, for the caller to pause on and retry."""
        return FailuresAt(self, node, retry_missing=retry_missing)

    def error_for(self, exc: BaseException, node: n.Node) -> TemplateRuntimeError:
        hint = ""
        if isinstance(exc, MissingVariable):
            name = exc.name or ""
            message = f"variable or helper {name!r} is not defined"
            close = difflib.get_close_matches(name, self.known_names(), n=3)
            hint = reserved_hint(name) or (
                (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
                + "pass it as a program argument, e.g. program("
                + name.lstrip("@")
                + "=…)"
            )
        elif isinstance(exc, SandboxError):
            message = f"not allowed: {exc}"
            hint = exc.hint
        elif isinstance(exc, (LimitExceeded, ArityError)):
            message, hint = str(exc), exc.hint
        elif isinstance(exc, RecursionError):
            message = "the template nests too deeply to run (Python's recursion limit)"
            hint = "nest fewer blocks, partials and calls inside each other"
        elif isinstance(exc, ToolError):
            message = str(exc)
        elif isinstance(exc, KeyError):
            message = f"key {exc.args[0]!r} not found" if exc.args else "key not found"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return TemplateRuntimeError(message, line=node.line, col=node.col, source=self.source, hint=hint)


class FailuresAt:
    """``interp.failures_at(node)``: turns a failure into a ``TemplateRuntimeError`` naming the node's line.

    With ``retry_missing`` and the ``await_missing`` option, a missing name is swallowed and kept in ``missing`` so
    the caller can pause until it is given and try again. A class rather than ``@contextmanager``: it runs for every
    ``{{tag}}``, and this costs one small object.
    """

    __slots__ = ("_interp", "_node", "_retry_missing", "missing")

    def __init__(self, interp: Interpreter, node: n.Node, *, retry_missing: bool = False) -> None:
        self._interp = interp
        self._node = node
        self._retry_missing = retry_missing
        self.missing = ""

    def __enter__(self) -> FailuresAt:
        return self

    def __exit__(
        self, kind: Optional[type[BaseException]], exc: Optional[BaseException], traceback: Optional[TracebackType]
    ) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, TemplateRuntimeError):
            return False
        if isinstance(exc, LoopControl):
            if exc.node is None:
                exc.node = self._node
            return False
        interp = self._interp
        if isinstance(exc, MissingVariable):
            if self._retry_missing and interp.options.get("await_missing"):
                self.missing = exc.name or ""
                return True
            raise interp.error_for(exc, self._node) from None
        raise interp.error_for(exc, self._node) from exc


def _describe_callee(node: n.Call) -> str:
    func = node.func
    if isinstance(func, n.Var):
        return repr(func.name)
    if isinstance(func, n.Attr):
        return repr(func.name)
    return "the value"
