"""gl.Limits: every budget attack in tests/security/cases_budgets.py stops with an error that names the limit, its
value and how to raise it, within a time bound; limits are set per Program and per call; loops share one iteration
counter (``interp.count_iteration``), parallel loops run at most ``max_parallel`` iterations at once."""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import time
from pathlib import Path
from typing import Any

import pytest
from security.cases_budgets import CASES

import guidance_lite as gl
from guidance_lite.limits import DEFAULT_LIMITS, LimitExceeded
from guidance_lite.registry import BLOCKS, block

README = Path(__file__).resolve().parent.parent / "README.md"
MEMORY_BOUND_KB = 1_000_000  # no case may raise the process's peak memory by a gigabyte


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_budget_attack_stops_with_an_error_naming_the_limit(case: dict) -> None:
    kind, field = case["expect"].split()
    limits = case.get("limits")
    model = gl.models.Mock(case.get("reply", "ok"))
    peak, started = peak_kb(), time.perf_counter()
    if kind == "syntax":
        with pytest.raises(gl.TemplateSyntaxError) as syntax:
            gl.Program(case["template"], model=model, silent=True, limits=limits)
        assert f"{field}=" in syntax.value.message and field in syntax.value.hint
        assert len(str(syntax.value)) < 1_000
    else:
        program = gl.Program(case["template"], model=model, silent=True)
        with pytest.raises(gl.TemplateRuntimeError) as info:
            program(**case["args"](), limits=limits)
        error = info.value
        cause = error.__cause__
        assert isinstance(cause, LimitExceeded) and cause.limit == field, repr(cause)
        value = getattr(limits or DEFAULT_LIMITS, field)
        assert cause.value == value and f"{field}=" in error.message
        assert f"gl.Limits({field}=" in error.hint
        assert error.line == 1 and len(str(error)) < 1_000
    assert time.perf_counter() - started < case.get("seconds", 20)
    assert peak_kb() - peak < MEMORY_BOUND_KB


def test_every_case_is_described_for_the_report() -> None:
    fields = {spec.name for spec in dataclasses.fields(gl.Limits)}
    for case in CASES:
        kind, field = case["expect"].split()
        assert kind in ("limit", "syntax") and field in fields
        assert case["category"] and case["what"]


def test_limits_are_set_per_program_and_per_call() -> None:
    template = "{{#each range(5)}}{{this}}{{/each}}"
    tight = gl.Program(template, silent=True, limits=gl.Limits(max_loop_iterations=3))
    with pytest.raises(gl.TemplateRuntimeError, match="max_loop_iterations=3"):
        tight()
    assert tight(limits=gl.Limits(max_loop_iterations=5)).text == "01234"
    assert gl.Program(template, silent=True)().text == "01234"
    with pytest.raises(gl.TemplateRuntimeError, match="max_loop_iterations=4"):
        gl.Program(template, silent=True)(limits=gl.Limits(max_loop_iterations=4))


def test_the_nesting_limit_is_read_when_the_program_is_created() -> None:
    source = "{{" + "[" * 8 + "]" * 8 + "}}"
    assert gl.Program(source, silent=True)().text.startswith("[[[")
    with pytest.raises(gl.TemplateSyntaxError, match="max_nesting_depth=5"):
        gl.Program(source, limits=gl.Limits(max_nesting_depth=5))
    blocks = "{{#if 1}}" * 6 + "x" + "{{/if}}" * 6
    with pytest.raises(gl.TemplateSyntaxError, match="blocks nested too deeply"):
        gl.Program(blocks, limits=gl.Limits(max_nesting_depth=5))
    assert gl.Program(blocks, silent=True)().text == "x"


def test_a_partial_string_is_parsed_with_the_runs_nesting_limit() -> None:
    program = gl.Program("{{>p}}", silent=True)
    assert program(p="{{[[[1]]]}}").text == "[[[1]]]"
    with pytest.raises(gl.TemplateRuntimeError, match="max_nesting_depth=2"):
        program(p="{{[[[1]]]}}", limits=gl.Limits(max_nesting_depth=2))


def test_limits_are_checked_and_documented() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        gl.Limits(max_steps=0)
    with pytest.raises(TypeError, match="gl.Limits"):
        gl.Program("x", silent=True)(limits={"max_steps": 3})
    readme = README.read_text(encoding="utf-8")
    for name, default, doc in gl.Limits.documented():
        assert doc and default == getattr(gl.Limits(), name)
        shown = f"{default:,}" if isinstance(default, int) else f"{default}"
        assert f"| `{name}` | {shown} | {doc} |" in readme, f"README's Limits table row for {name} is not current"
    assert issubclass(LimitExceeded, gl.GuidanceLiteError)


def test_a_loop_that_breaks_early_does_not_build_all_its_frames() -> None:
    started, peak = time.perf_counter(), peak_kb()
    result = gl.Program("{{#each range(10000000)}}{{#if @index == 3}}{{break}}{{/if}}{{this}}{{/each}}")()
    assert result.text == "012"
    assert time.perf_counter() - started < 5 and peak_kb() - peak < 200_000


def test_parallel_each_runs_at_most_max_parallel_iterations_at_once() -> None:
    running, most = 0, 0

    async def slow(x: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        return x

    program = gl.Program("{{#each items parallel=True}}{{slow this}},{{/each}}", silent=True)
    result = program(items=list(range(10)), slow=slow, limits=gl.Limits(max_parallel=3))
    assert result.text == "0,1,2,3,4,5,6,7,8,9," and most == 3
    most = 0
    program(items=list(range(40)), slow=slow)
    assert most == DEFAULT_LIMITS.max_parallel


def test_a_failing_parallel_iteration_stops_the_others() -> None:
    started: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        if x == 1:
            raise ValueError("boom")
        await asyncio.sleep(0.05)
        return x

    with pytest.raises(gl.TemplateRuntimeError, match="boom"):
        gl.Program("{{#each items parallel=True}}{{work this}}{{/each}}", silent=True)(
            items=list(range(50)), work=work, limits=gl.Limits(max_parallel=2)
        )
    assert len(started) < 10


# ---- one loop budget for every loop block: a block registered here uses the run context's helper
@pytest.fixture
def countdown_block() -> Any:
    @block("countdown", usage="{{#countdown 3}}…{{/countdown}}")
    async def countdown(interp: Any, node: Any, times: int) -> None:
        for _ in range(times):
            interp.count_iteration(node)
            await interp.render(node.body)

    yield
    del BLOCKS["countdown"]


def test_any_loop_block_shares_the_runs_iteration_budget(countdown_block: Any) -> None:
    program = gl.Program("{{#each range(3)}}{{#countdown 2}}.{{/countdown}}{{/each}}", silent=True)
    assert program().text == "......"  # 3 + 6 iterations
    with pytest.raises(gl.TemplateRuntimeError) as info:
        program(limits=gl.Limits(max_loop_iterations=8))
    assert "the loop on line 1" in info.value.message and "max_loop_iterations=8" in info.value.message


def test_stop_regex_budget_is_the_runs() -> None:
    program = gl.Program("{{gen 'x' stop_regex='(a|a)*b'}}", model=gl.models.Mock("a" * 28 + "!"), silent=True)
    started = time.perf_counter()
    with pytest.raises(gl.TemplateRuntimeError, match="regex_seconds=0.1"):
        program(limits=gl.Limits(regex_seconds=0.1))
    assert time.perf_counter() - started < 5
    quick = gl.Program("{{gen 'x' stop_regex='b+'}}", model=gl.models.Mock("aaabbb"), silent=True)()
    assert quick["x"] == "aaa"


def test_a_partial_recursion_error_is_short() -> None:
    me = gl.Program("again {{>me}}")
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program("{{>me}}", silent=True)(me=me)
    assert len(str(info.value)) < 600 and "in partial" not in info.value.message
    assert "max_partial_depth=20" in info.value.message
