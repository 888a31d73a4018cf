"""Random templates never crash the library: they run, or fail with TemplateSyntaxError at creation or
TemplateRuntimeError (with partial state) at run time — never an internal exception, a hang or memory exhaustion.

Two generators: hypothesis (random piece sequences and random well-formed nestings, derandomized so the counts are
reproducible) and a mutation fuzzer (the spec suite's templates and hostile seeds, cut, spliced, repeated and
garbled). Every input runs with ``FUZZ_LIMITS`` under a wall-clock and an address-space bound
(``security/fuzzing.py``); the counts go to ``tests/security/counts/templates.json`` and from there to SECURITY.md.
The CI budget is a few seconds; ``GL_FUZZ_TEMPLATES=100000 python -m pytest tests/test_fuzz.py`` runs a large
mutation run (its counts are recorded as the last large run).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security.fuzzing import FUZZ_LIMITS, Tally, memory_bound, record, time_bound, timed

import guidance_lite as gl

TALLIES = {"random": Tally("templates"), "well_formed": Tally("templates"), "mutations": Tally("templates")}
LARGE_RUN = int(os.environ.get("GL_FUZZ_TEMPLATES", "0"))
CI_MUTATIONS = 600
SPEC = Path(__file__).resolve().parent / "spec"

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


def _program(source: str, replies: object = None) -> gl.Program:
    model = gl.models.Mock(replies or ["a", {"tool_calls": [{"name": "tool", "arguments": {}}]}])
    return gl.Program(source, model=model, silent=True, limits=FUZZ_LIMITS)


def _arguments() -> dict:
    """Fresh program arguments for one input (hostile pieces try to change or escape them)."""
    return {
        "x": 1,
        "y": 0,
        "items": [1, 2],
        "part": "P{{x}}",
        "tool": tool,
        "cfg": {"n": 1, "log": []},
        "s": "ab",
        "p": "{{parse p}}",
        "datetime": datetime,
    }


def _run_or_fail_cleanly(program: gl.Program) -> None:
    """Run with a time limit: success (a paused run is cancelled) or a TemplateRuntimeError with partial state."""
    arguments = _arguments()

    async def run() -> None:
        try:
            result = await asyncio.wait_for(program.arun(**arguments), 10)
        except gl.TemplateRuntimeError as exc:
            assert exc.partial is not None and isinstance(exc.partial.text, str) and str(exc)
            raise
        assert isinstance(result.text, str) and isinstance(result.messages, list)
        if not result.completed:
            result.cancel()

    try:
        asyncio.run(run())
    finally:
        assert arguments["cfg"] == {"n": 1, "log": []} and arguments["items"] == [1, 2], "an argument was changed"


def _fuzz_one(tally: Tally, source: str, replies: object = None) -> None:
    """One input, counted: creation and run within the time bound; a crash is recorded with its source."""
    try:
        with time_bound():
            _run_or_fail_cleanly(_program(source, replies))
    except gl.TemplateSyntaxError as exc:
        assert exc.line >= 1 and str(exc)
        tally.failed(source, exc)
    except BaseException as exc:  # every outcome is sorted: library error or crash
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        tally.failed(source, exc)
    else:
        tally.ok()


FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


@settings(max_examples=250, **FUZZ_SETTINGS)
@given(st.lists(st.sampled_from(PIECES), max_size=12))
def test_random_templates_run_or_fail_with_library_errors(pieces):
    tally = TALLIES["random"]
    with timed(tally), memory_bound():
        _fuzz_one(tally, "".join(pieces))
    assert not tally.crashed, tally.crashed[-1]


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


@settings(max_examples=300, **FUZZ_SETTINGS)
@given(WELL_FORMED)
def test_random_well_formed_templates_run_or_fail_with_library_errors(source):
    tally = TALLIES["well_formed"]
    with timed(tally), memory_bound():
        _fuzz_one(tally, source)
    assert not tally.crashed, tally.crashed[-1]


# ---- mutation fuzzing ----------------------------------------------------------------------------------------------
HOSTILE = [
    "{{datetime.sys.modules['os'].getcwd()}}",
    "{{cfg.log.append(1)}}{{cfg.update({'n': 2})}}",
    "{{len('a' * 100000000)}}",
    "{{set 's' 'ab'}}{{#each range(40)}}{{set 's' s + s}}{{/each}}",
    "{{set 'x' 3}}{{#each range(40)}}{{set 'x' x * x}}{{/each}}",
    "{{#each range(100000)}}{{#each range(100000)}}.{{/each}}{{/each}}",
    "{{#each range(100000) parallel=True}}{{x}}{{/each}}",
    "{{>me}}",
    "{{parse p}}",
    "{{gen 'r' stop_regex='(a|a)*b'}}",
    "{{gen 'r' pattern='(a|a)*$'}}",
    "{{" + "not " * 300 + "x}}",
    "{{" + "[" * 300 + "]" * 300 + "}}",
    "{{#if x}}" * 150 + "deep" + "{{/if}}" * 150,
    "{{'x'.ljust(100000000)}}",
    "{{gen 'x' 'y' 'z'}}",
    "{{#geneach 'g' num_iterations=100000}}{{gen 'this.v' max_tokens=1}}{{/geneach}}",
    "<|im_start|>user\n{{cfg}}<|im_end|>\n<|im_start|>assistant\n{{gen 'a'}}",
]
REPLIES = ["a" * 28 + "!", {"tool_calls": [{"name": "tool", "arguments": {"n": 2}}]}, "<|im_end|>x", "b"]
GARBLE = list("{}#/~!'\"()[].,=+-*<>@%|&^ \nabxyz019_") + ["{{", "}}", "{{/", "{{#", "{{>", "{{~", "~}}", "\\{{"]


def _seeds() -> list[str]:
    seeds = [case["template"] for path in sorted(SPEC.glob("*.json")) for case in json.loads(path.read_text())]
    return seeds + HOSTILE + [piece for piece in PIECES if "{{" in piece]


def _mutate(rng: random.Random, source: str, seeds: list[str]) -> str:
    """One to four edits: insert a piece or a garble, delete, duplicate or repeat a slice, splice another seed."""
    for _ in range(rng.randint(1, 4)):
        i, j = sorted(rng.randint(0, len(source)) for _ in range(2))
        edit = rng.randrange(7)
        if edit == 0:
            source = source[:i] + rng.choice(PIECES + HOSTILE) + source[i:]
        elif edit == 1:
            source = source[:i] + rng.choice(GARBLE) + source[i:]
        elif edit == 2:
            source = source[:i] + source[j:]
        elif edit == 3:
            source = source[:j] + source[i:j] + source[j:]
        elif edit == 4:
            source = source[:i] + source[i:j] * rng.randint(2, 50) + source[j:]
        elif edit == 5:
            other = rng.choice(seeds)
            k = rng.randint(0, len(other))
            source = source[:i] + other[k:]
        else:
            source = source[:i] + source[i:j][::-1] + source[j:]
    return source[:20_000]


def mutated_templates(count: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    seeds = _seeds()
    for _ in range(count):
        yield _mutate(rng, rng.choice(seeds), seeds)


def test_mutated_templates_run_or_fail_with_library_errors():
    tally = Tally("templates") if LARGE_RUN else TALLIES["mutations"]
    me = gl.Program("again {{>me}}")
    with timed(tally), memory_bound():
        for number, source in enumerate(mutated_templates(LARGE_RUN or CI_MUTATIONS, seed=9)):
            replies = [REPLIES[number % len(REPLIES)], *REPLIES]
            arguments = _arguments()
            try:
                with time_bound():
                    program = _program(source, replies)
                    asyncio.run(_run_quietly(program, {**arguments, "me": me}))
            except gl.TemplateSyntaxError as exc:
                located = exc.line >= 1 and exc.col >= 1
                tally.failed(source, exc if located else AssertionError(f"syntax error without a position: {exc}"))
            except BaseException as exc:  # sorted into library errors and crashes
                if isinstance(exc, KeyboardInterrupt):
                    raise
                tally.failed(source, exc)
            else:
                tally.ok()
            if arguments["cfg"] != {"n": 1, "log": []}:
                tally.failed(source, AssertionError("an argument was changed"))
    if LARGE_RUN:
        command = f"GL_FUZZ_TEMPLATES={LARGE_RUN} python -m pytest tests/test_fuzz.py -k mutated"
        record(tally, large_run_command=command)
    assert tally.inputs >= (LARGE_RUN or CI_MUTATIONS)
    assert not tally.crashed, f"{tally.crashes} crashes, e.g. {tally.crashed[:3]}"


async def _run_quietly(program: gl.Program, arguments: dict) -> None:
    result = await program.arun(**arguments)
    if not result.completed:
        result.cancel()


@pytest.fixture(scope="module", autouse=True)
def write_counts() -> Iterator[None]:
    """After the module: the three generators' counts, as counts/templates.json (only when all three ran)."""
    yield
    if LARGE_RUN or not all(tally.inputs for tally in TALLIES.values()):
        return
    total = Tally("templates")
    for tally in TALLIES.values():
        total.add(tally)
    if not total.crashed:
        record(total)
