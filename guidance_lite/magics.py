"""IPython cell magics (``%load_ext guidance_lite``): a template written as a notebook cell of its own.

``%%program NAME [model=EXPR] [KEY=EXPR …]`` makes the cell ``NAME = gl.Program(cell, model=…, KEY=…)``;
``%%run_program [NAME] [model=EXPR] [KEY=EXPR …]`` runs the cell at once, with the notebook's variables that the
template reads as its arguments, shows it live and stores the Result in ``NAME``. Each EXPR is Python, evaluated in
the notebook (it may hold spaces: it runs to the next ``KEY=``).

Why errors are re-raised rather than printed: like a Python syntax error in a cell, a template error stops "run all".
They are shown as the cell's own line (the magic line is line 1) with a caret and the hint, highlighted, and without a
Python traceback (IPython's ``_render_traceback_`` protocol). This module imports IPython; only
``guidance_lite.load_ipython_extension`` imports it, so importing the package never does.
"""

from __future__ import annotations

import io
import keyword
import tokenize
import traceback
from typing import Any, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from .analysis import analyze
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .highlight import ERROR, highlighted_excerpt, paint
from .program import OPTION_NAMES, Program

PROGRAM_USAGE = "usage: %%program NAME [model=EXPR] [KEY=EXPR …]  (NAME: the variable that gets the Program)"
RUN_USAGE = "usage: %%run_program [NAME] [model=EXPR] [KEY=EXPR …]  (NAME: the variable that gets the Result)"
_OPENERS, _CLOSERS = "([{", ")]}"


def parse_magic_line(line: str, usage: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The words before the first ``KEY=``, and each ``KEY=EXPR`` as (key, expression text). An expression runs to the
    next ``KEY=`` outside brackets, so ``model=gl.models.Mock("a b")`` is one value."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.type != tokenize.ENDMARKER]
    except (tokenize.TokenError, SyntaxError) as exc:
        raise UsageError(f"cannot read the magic's arguments {line!r}: {exc}\n{usage}") from None
    words: list[str] = []
    pairs: list[tuple[str, int]] = []  # (key, offset where its expression starts)
    ends: list[int] = []  # where each pair's expression ends (the next key's start)
    depth = 0
    for i, token in enumerate(tokens):
        if token.type == tokenize.OP and token.string in _OPENERS:
            depth += 1
        elif token.type == tokenize.OP and token.string in _CLOSERS:
            depth -= 1
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if depth == 0 and token.type == tokenize.NAME and following is not None and following.string == "=":
            if pairs:
                ends.append(token.start[1])
            pairs.append((token.string, following.end[1]))
        elif not pairs and token.type not in (tokenize.NEWLINE, tokenize.NL):
            if token.type != tokenize.NAME:
                raise UsageError(f"unexpected {token.string!r} in the magic's arguments\n{usage}")
            words.append(token.string)
    ends.append(len(line))
    options = []
    for (key, start), end in zip(pairs, ends):
        expression = line[start:end].strip()
        if not expression:
            raise UsageError(f"{key}= needs a value\n{usage}")
        options.append((key, expression))
    return words, options


def _variable_name(words: list[str], usage: str, required: bool) -> Optional[str]:
    if len(words) > 1 or (required and not words):
        raise UsageError(usage)
    if not words:
        return None
    name = words[0]
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{name!r} is not a Python variable name\n{usage}")
    return name


class CellSyntaxError(TemplateSyntaxError):
    """A syntax error in a template cell, numbered by the cell's own lines (the magic line is line 1)."""

    def __init__(self, error: TemplateSyntaxError, cell: str) -> None:
        super().__init__(
            error.message,
            line=error.line + 1,
            col=error.col,
            source=cell,
            hint=error.hint,
            text=error.text,
            name=error.name,
        )
        self.cell = cell  # the whole cell, magic line included

    def _render_traceback_(self) -> list[str]:
        return _cell_report("TemplateSyntaxError", self.message, self.line, self.col, self.hint, self.cell)


class CellRuntimeError(TemplateRuntimeError):
    """A template cell that failed while it ran (``partial`` holds the Result so far), numbered by the cell's lines."""

    def __init__(self, error: TemplateRuntimeError, cell: str) -> None:
        super().__init__(
            error.message,
            line=error.line + 1 if error.line else 0,
            col=error.col,
            source=cell,
            partial=error.partial,
            hint=error.hint,
        )

    def _render_traceback_(self) -> list[str]:
        lines = _cell_report("TemplateRuntimeError", self.message, self.line, self.col, self.hint, self.source)
        cause = self.__cause__
        if cause is not None and not isinstance(cause, GuidanceLiteError):  # a bug in the notebook's own code
            lines += ["", "caused by:", *"".join(traceback.format_exception(cause)).rstrip().splitlines()]
        return lines


def _cell_report(kind: str, message: str, line: int, col: int, hint: str, cell: str) -> list[str]:
    where = f" (cell line {line}, column {col})" if line else ""
    lines = [f"{paint(ERROR, kind)}: {message}{where}"]
    excerpt = highlighted_excerpt(cell, line, col) if line else ""
    if excerpt:
        lines.extend(excerpt.splitlines())
    if hint:
        lines.append(f"hint: {hint}")
    return lines


@magics_class
class TemplateMagics(Magics):
    """``%%program`` and ``%%run_program``."""

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables (the shell is always set once the magics are registered)."""
        assert self.shell is not None
        return self.shell.user_ns

    @cell_magic
    def program(self, line: str, cell: str) -> None:
        """%%program NAME [model=EXPR] [KEY=EXPR …]: NAME = gl.Program(<this cell>, model=…, KEY=…)."""
        words, options = parse_magic_line(line, PROGRAM_USAGE)
        name = _variable_name(words, PROGRAM_USAGE, required=True)
        assert name is not None
        kwargs = {"template_name": name, **self._evaluate(options, PROGRAM_USAGE)}
        self.namespace[name] = _make_program(f"%%program {line}", cell, kwargs)

    @cell_magic
    def run_program(self, line: str, cell: str) -> Any:
        """%%run_program [NAME] [model=EXPR] [KEY=EXPR …]: run this cell's template with the notebook's variables."""
        words, options = parse_magic_line(line, RUN_USAGE)
        name = _variable_name(words, RUN_USAGE, required=False)
        kwargs = self._evaluate(options, RUN_USAGE)
        magic_line = f"%%run_program {line}"
        program = _make_program(magic_line, cell, {"template_name": name, **kwargs} if name else kwargs)
        reserved = {"model", *OPTION_NAMES, *kwargs}
        namespace = self.namespace
        arguments = {
            variable: namespace[variable]
            for variable in analyze(program.template).variables
            if variable in namespace and variable not in reserved
        }
        try:
            result = program(**arguments)
        except TemplateRuntimeError as exc:
            raise CellRuntimeError(exc, f"{magic_line}\n{cell}") from exc.__cause__
        if name is not None:
            namespace[name] = result
        return result

    def _evaluate(self, options: list[tuple[str, str]], usage: str) -> dict[str, Any]:
        values = {}
        for key, expression in options:
            try:
                values[key] = eval(expression, self.namespace)  # what the user typed in their own notebook
            except Exception as exc:
                raise UsageError(f"{key}={expression}: {type(exc).__name__}: {exc}\n{usage}") from None
        return values


def _make_program(magic_line: str, cell: str, kwargs: dict[str, Any]) -> Program:
    try:
        return Program(cell, **kwargs)
    except TemplateSyntaxError as exc:
        raise CellSyntaxError(exc, f"{magic_line}\n{cell}") from None
    except (TypeError, ValueError) as exc:  # options the Program refuses (tool_errors='nope', an unknown keyword)
        raise UsageError(f"{type(exc).__name__}: {exc}") from None


def register(ipython: Any) -> None:
    """Register the magics with a running IPython shell (what ``%load_ext guidance_lite`` calls)."""
    ipython.register_magics(TemplateMagics)


__all__ = ["register", "TemplateMagics", "CellSyntaxError", "CellRuntimeError", "parse_magic_line"]
