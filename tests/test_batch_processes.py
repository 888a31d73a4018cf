"""``map(processes=N)``: the batch runs in forked worker processes, with the results, their order and the failed
items' exceptions as a single-process map gives them."""

from __future__ import annotations

import os

import pytest

import guidance_lite as gl

TEMPLATE = "{{#user}}{{x}}{{check(x)}}{{/user}}{{#assistant}}{{gen 'a'}}{{/assistant}}[{{where()}}]"


def check(x: int) -> str:
    if x == 3:
        raise ValueError("three is not allowed")
    return "!"


def program() -> gl.Program:
    return gl.Program(TEMPLATE, model=gl.models.Mock("ok"), silent=True)


def inputs(count: int) -> list[dict]:
    return [{"x": i, "check": check, "where": os.getpid} for i in range(count)]


def test_map_in_processes_gives_the_results_of_map_in_order() -> None:
    here = program().map(inputs(12))
    there = program().map(inputs(12), processes=2, concurrency=4)
    assert len(there) == 12
    for mine, theirs in zip(here, there):
        if isinstance(mine, Exception):
            assert type(theirs) is type(mine) and str(theirs) == str(mine)
            continue
        assert (theirs["x"], theirs["a"], theirs.completed) == (mine["x"], mine["a"], True)
        assert theirs.messages == mine.messages
        assert theirs.usage == mine.usage
    assert isinstance(there[3], gl.TemplateRuntimeError) and "three is not allowed" in str(there[3])
    pids = {int(result.text.rsplit("[", 1)[1].rstrip("]")) for result in there if not isinstance(result, Exception)}
    assert pids and os.getpid() not in pids  # every run happened in a worker process


def test_map_in_processes_raises_the_first_failure_when_asked() -> None:
    with pytest.raises(gl.TemplateRuntimeError, match="three is not allowed"):
        program().map(inputs(8), processes=2, return_exceptions=False)


async def test_amap_in_processes() -> None:
    results = await program().amap(inputs(5)[:3], processes=2)
    assert [r["x"] for r in results] == [0, 1, 2]


@pytest.mark.parametrize("processes", [0, -1, 1.5, True])
def test_processes_must_be_a_positive_integer(processes: object) -> None:
    with pytest.raises(ValueError, match="processes must be"):
        program().map(inputs(2), processes=processes)  # type: ignore[arg-type]
