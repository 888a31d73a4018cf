"""Conditionals: ``{{#if}}`` with ``{{elif}}``/``{{else}}``, and ``{{#unless}}``."""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..nodes import Block
from ..registry import block


@block("if", separators=("else", "elif"), usage="{{#if condition}}…{{/if}}")
async def if_block(interp: RunContext, node: Block, condition: Any, **kwargs: Any) -> None:
    _no_kwargs("if", kwargs)
    if condition:
        await interp.render(node.body)
        return
    for branch in node.branches:
        if branch.kind == "else" or await interp.evaluate_at(branch, branch.cond_fn):
            await interp.render(branch.body)
            return


@block("unless", separators=("else",), usage="{{#unless condition}}…{{/unless}}")
async def unless_block(interp: RunContext, node: Block, condition: Any, **kwargs: Any) -> None:
    _no_kwargs("unless", kwargs)
    if not condition:
        await interp.render(node.body)
    elif node.branches:
        await interp.render(node.branches[0].body)


def _no_kwargs(name: str, kwargs: dict) -> None:
    if kwargs:
        raise TypeError(f"{{{{#{name}}}}} takes no keyword arguments (got {', '.join(kwargs)})")
