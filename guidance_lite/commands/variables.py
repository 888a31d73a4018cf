"""Variables: ``set``, ``await`` (pause until a value arrives), ``{{#block}}`` and ``parse``."""

from __future__ import annotations

from typing import Any, Optional

from ..context import RunContext
from ..control import NOTHING
from ..nodes import Block, DictLit, Node, string_value
from ..registry import CallSite, Effects, block, command, names_first_argument_after_body
from ..state import MARKER, VALUE


def _set_names(site: CallSite) -> Effects:
    """``{{set 'x' v}}`` sets x; ``{{set {'x': 1, 'y': 2}}}`` sets every literal key."""
    first = site.argument(0, "name")
    if isinstance(first, DictLit):
        return Effects(sets=tuple(string_value(key) for key, _ in first.items))
    return Effects(sets=(site.string(0, "name"),))


@command("set", binds=_set_names, usage="{{set 'name' value}} or {{set {'a': 1, 'b': 2}}}")
async def set_(interp: RunContext, node: Node, name: Any, value: Any = NOTHING, *, hidden: bool = True) -> Any:
    """``{{set 'x' value}}`` or ``{{set {'x': 1, 'y': 2}}}``; ``hidden=False`` also inserts the value."""
    if value is NOTHING:
        if not isinstance(name, dict):
            raise TypeError("set needs a name and a value ({{set 'x' 1}}) or a dict ({{set {'x': 1}}})")
        pairs = list(name.items())
    else:
        if not isinstance(name, str):
            raise TypeError(f"set's first argument must be a variable name string, got {type(name).__name__}")
        pairs = [(name, value)]
    for key, val in pairs:
        interp.set_variable(key, val)
    if not hidden and interp.is_top_level(node):
        interp.write("".join(str(v) for _, v in pairs), VALUE)
    return NOTHING


@command("await", binds=lambda site: Effects(reads=(site.string(0, "name"),)), usage="{{await 'name'}}")
async def await_(interp: RunContext, node: Node, name: str) -> Any:
    """Return the variable's value and consume it; pause the program until it is given when missing."""
    if not isinstance(name, str):
        raise TypeError("await takes a variable name string, e.g. {{await 'user_input'}}")
    while name not in interp.state.variables:
        await interp.pause(name)
    return interp.state.variables.pop(name)


@block("block", binds=names_first_argument_after_body, usage="{{#block 'name' hidden=True}}…{{/block}}")
async def block_(interp: RunContext, node: Block, name: Optional[str] = None, *, hidden: bool = False) -> None:
    """Render the body; ``name`` captures its text into a variable; ``hidden`` keeps it out of later context."""
    state = interp.state
    start = len(state.spans)
    capture_start = len(interp.captures[-1]) if interp.captures else None
    with state.hidden(hidden) as scope:
        await interp.render(node.body)
    if name is not None:
        if capture_start is not None:
            text = "".join(s.text for s in interp.captures[-1][capture_start:])
        else:
            visible = state.visible_scopes() | ({scope} if scope is not None else set())
            text = "".join(s.text for s in state.spans[start:] if s.kind != MARKER and s.scope in visible)
        interp.set_variable(name, text)


@command("parse", binds=lambda site: Effects(sets=(site.string(None, "name"),)), usage="{{parse template name='x'}}")
async def parse_(interp: RunContext, node: Node, template: Any, *, name: Optional[str] = None) -> Any:
    """Run a string as template code: the one deliberate way to do so (values are otherwise always data)."""
    if not isinstance(template, str):
        raise TypeError(f"parse takes a template string, got {type(template).__name__}")
    parsed, _ = interp.load_template(template, "<parse>")
    start = len(interp.state.spans)
    with interp.nested_template():
        await interp.render(parsed.body)
    if name is not None:
        interp.assign(name, interp.state.visible_text_since(start))
    return NOTHING
