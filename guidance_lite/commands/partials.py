"""Partials: ``{{>name args k=v}}`` runs another Program (or a template string) in place.

The interpreter resolves the partial's value to a template through the loader the program handed it, so this
module needs neither the parser nor ``Program``.
"""

from __future__ import annotations

from ..context import RunContext
from ..errors import TemplateRuntimeError
from ..limits import LimitExceeded
from ..nodes import Partial, Template


async def run_partial(interp: RunContext, node: Partial, template: Template, frame: dict) -> None:
    """Render ``template`` with ``frame`` (its defaults, the tag's keyword arguments and ``args``) as a new scope."""
    interp.scopes.append(frame)
    try:
        await interp.render(template.body)
    except TemplateRuntimeError as exc:
        # the line inside the partial means nothing against the program's source: name the partial tag instead
        limit = exc.__cause__ if isinstance(exc.__cause__, LimitExceeded) else None
        raise TemplateRuntimeError(
            exc.message if limit is not None else f"in partial (its line {exc.line}): {exc.message}",
            line=node.line,
            col=node.col,
            source=interp.source,
            hint=exc.hint,
        ) from (limit or exc)  # a limit names itself once, not once per partial it passed through
    finally:
        interp.scopes.pop()
