"""Partials: ``{{>name args k=v}}`` runs another Program (or a template string) in place."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import TemplateRuntimeError
from ..nodes import Partial

if TYPE_CHECKING:  # pragma: no cover
    from ..interpreter import Interpreter


async def run_partial(interp: "Interpreter", node: Partial, value: Any, args: list, kwargs: dict) -> None:
    from ..parser import parse
    from ..program import Program
    if isinstance(value, Program):
        template, defaults = value.template, value.defaults
    elif isinstance(value, str):
        template, defaults = parse(value, name="<partial>"), {}
    else:
        raise TypeError(f"a partial must be a Program or a template string, got {type(value).__name__}")
    frame = {**defaults, **kwargs, "args": list(args)}
    interp.scopes.append(frame)
    try:
        await interp.render(template.body)
    except TemplateRuntimeError as exc:
        # the line inside the partial means nothing against the program's source: name the partial tag instead
        raise TemplateRuntimeError(f"in partial (its line {exc.line}): {exc.message}", line=node.line, col=node.col,
                                   source=interp.source, hint=exc.hint) from exc
    finally:
        interp.scopes.pop()
