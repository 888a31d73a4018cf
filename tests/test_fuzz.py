"""Random templates never crash the library: they run, or fail with TemplateSyntaxError at creation or
TemplateRuntimeError (with partial state) at run time — never an internal exception or a hang."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import guidance_lite as gl

PIECES = [
    "text ",
    "\n",
    "{{",
    "}}",
    "{{~",
    "~}}",
    "{{x}}",
    "{{items}}",
    "{{#each items}}",
    "{{/each}}",
    "{{#if x}}",
    "{{/if}}",
    "{{else}}",
    "{{elif y}}",
    "{{gen 'g'}}",
    "{{gen 'this.a' stop='.'}}",
    "{{select 'c' options=['a','b']}}",
    "{{#select 'd'}}p{{or}}q{{/select}}",
    "{{#user}}",
    "{{/user}}",
    "{{#assistant}}",
    "{{/assistant}}",
    "{{#system}}",
    "{{/system}}",
    "{{#function}}",
    "{{/function}}",
    "{{break}}",
    "{{continue}}",
    "{{@index}}",
    "{{this}}",
    "{{set 'x' 3}}",
    "{{await 'z'}}",
    "{{add x 1}}",
    "{{x.__class__}}",
    "{{len(items)}}",
    "{{#geneach 'gs' num_iterations=2}}",
    "{{/geneach}}",
    "{{#block 'b' hidden=True}}",
    "{{/block}}",
    "{{!-- c --}}",
    "\\{{",
    "{{parse 'ok {{x}}'}}",
    "{{>part}}",
    "{{missing}}",
    "{{items[5]}}",
    "{{1/0}}",
    "{{gen 'h' tools=[tool] max_rounds=1}}",
    "{{#unless x}}",
    "{{/unless}}",
    "{{'s' + x}}",
]


def tool(n: int = 1) -> int:
    """A tool."""
    return n


def _program(source: str) -> gl.Program:
    return gl.Program(
        source, model=gl.models.Mock(["a", {"tool_calls": [{"name": "tool", "arguments": {}}]}]), silent=True
    )


def _run_or_fail_cleanly(program: gl.Program) -> None:
    """Run with a time limit: success (a paused run is cancelled) or a TemplateRuntimeError with partial state."""

    async def run() -> None:
        try:
            result = await asyncio.wait_for(program.arun(x=1, y=0, items=[1, 2], part="P{{x}}", tool=tool), 10)
        except gl.TemplateRuntimeError as exc:
            assert exc.partial is not None and isinstance(exc.partial.text, str) and str(exc)
            return
        assert isinstance(result.text, str) and isinstance(result.messages, list)
        if not result.completed:
            result.cancel()

    asyncio.run(run())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_random_templates_run_or_fail_with_library_errors(pieces):
    source = "".join(pieces)
    try:
        program = _program(source)
    except gl.TemplateSyntaxError as exc:
        assert exc.line >= 1 and str(exc)
        return
    _run_or_fail_cleanly(program)


LEAVES = [
    p
    for p in PIECES
    if p.count("{{") == p.count("}}") and not p.startswith(("{{#", "{{/")) and p not in ("{{else}}", "{{elif y}}")
]
BLOCKS = [
    ("{{#each items}}", "{{/each}}"),
    ("{{#if x}}", "{{else}}", "{{/if}}"),
    ("{{#if y}}", "{{elif x}}", "{{/if}}"),
    ("{{#user}}", "{{/user}}"),
    ("{{#assistant}}", "{{/assistant}}"),
    ("{{#system}}", "{{/system}}"),
    ("{{#function}}", "{{/function}}"),
    ("{{#geneach 'gs' num_iterations=2}}", "{{/geneach}}"),
    ("{{#block 'b' hidden=True}}", "{{/block}}"),
    ("{{#unless x}}", "{{/unless}}"),
    ("{{#each items parallel=True}}", "{{/each}}"),
]


def _wrap(block: tuple, bodies: list[str]) -> str:
    parts = list(block)
    out = parts[0] + (bodies[0] if bodies else "")
    for sep, body in zip(parts[1:-1], bodies[1:]):
        out += sep + body
    return out + parts[-1]


WELL_FORMED = st.recursive(
    st.sampled_from(LEAVES),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(BLOCKS), st.lists(children, min_size=1, max_size=3)).map(lambda t: _wrap(*t)),
        st.lists(children, min_size=1, max_size=4).map("".join),
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WELL_FORMED)
def test_random_well_formed_templates_run_or_fail_with_library_errors(source):
    _run_or_fail_cleanly(_program(source))
