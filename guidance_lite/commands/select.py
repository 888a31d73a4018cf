"""``select``: the model picks one of several options (``options=[…]`` or ``{{#select}}a{{or}}b{{/select}}``).
Backends that can constrain generation (llama.cpp, Mock) only ever produce an option; for the others the reply is
matched to the options and anything else is an error, never a silent guess."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from ..control import NOTHING
from ..generation import GenerationError, build_request, gen_meta, run_model
from ..models.base import GenParams
from ..nodes import Block
from ..registry import block, command, names_first_argument, names_first_argument_after_body
from ..state import GEN

if TYPE_CHECKING:  # pragma: no cover
    from ..context import RunContext as Interpreter
    from ..nodes import Node


def match_option(text: str, options: Sequence[str]) -> str:
    """The option a reply names: exact, then ignoring surrounding space, then the longest option it starts with."""
    if text in options:
        return text
    stripped = text.strip()
    for option in options:
        if option.strip() == stripped:
            return option
    for option in sorted(options, key=len, reverse=True):
        if option.strip() and stripped.startswith(option.strip()):
            return option
    candidates = [o for o in options if stripped and o.strip().startswith(stripped)]
    if len(candidates) == 1:
        return candidates[0]
    loose = _loose(text)  # "No." or "YES" from a model that can't be constrained
    candidates = [o for o in options if loose and _loose(o) == loose]
    if len(candidates) == 1:
        return candidates[0]
    raise GenerationError(f"the model answered {text[:60]!r}, which is none of the options {list(options)!r}")


def _loose(text: str) -> str:
    return text.strip().strip(".!?,;:'\"`").strip().casefold()


async def choose(
    interp: Interpreter, node: Node, options: Sequence[str], variable: Optional[str], **params: Any
) -> str:
    options = [str(o) for o in options]
    if not options:
        raise ValueError("select needs at least one option")
    if len(options) == 1:
        return options[0]
    request = build_request(
        interp,
        node,
        GenParams(
            options=options,
            temperature=params.pop("temperature", 0.0),
            max_tokens=params.pop("max_tokens", None),
            extra=params,
        ),
    )
    completion = await run_model(interp, request, variable)
    return match_option(completion.choices[0].text, options)


async def _select(
    interp: Interpreter,
    node: Node,
    name: Optional[str],
    options: Sequence[str],
    hidden: bool,
    list_append: bool,
    params: dict,
    top: bool,
) -> Any:
    chosen = await choose(interp, node, options, name, **params)
    if top:
        with interp.state.hidden(hidden):
            interp.write(chosen, GEN, name, gen_meta(interp))
    if name is not None:
        interp.set_variable(name, chosen, append=list_append)
    return NOTHING if top else chosen


@command("select", binds=names_first_argument, generates=True, usage="{{select 'name' options=['a', 'b']}}")
async def select(
    interp: Interpreter,
    node: Node,
    name: Optional[str] = None,
    options: Any = None,
    *,
    hidden: bool = False,
    list_append: bool = False,
    logprobs: Any = None,
    **params: Any,
) -> Any:
    if options is None:
        raise ValueError("select needs options=[…] (or use the block form {{#select 'x'}}a{{or}}b{{/select}})")
    if isinstance(options, str) or not hasattr(options, "__iter__"):
        raise TypeError(f"select options must be a list of strings, got {type(options).__name__}")
    return await _select(interp, node, name, list(options), hidden, list_append, params, interp.is_top_level(node))


@block(
    "select",
    separators=("or",),
    binds=names_first_argument_after_body,
    generates=True,
    usage="{{#select 'name'}}a{{or}}b{{/select}}",
)
async def select_block(
    interp: Interpreter,
    node: Block,
    name: Optional[str] = None,
    *,
    hidden: bool = False,
    list_append: bool = False,
    **params: Any,
) -> None:
    options = [await interp.render_to_string(node.body)]
    for branch in node.branches:
        options.append(await interp.render_to_string(branch.body))
    await _select(interp, node, name, options, hidden, list_append, params, True)


__all__ = ["select", "select_block", "choose", "match_option", "GenerationError"]
