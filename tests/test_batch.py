"""Batch runs (``program.map`` / ``await program.amap``): input order, failures in their slots, the concurrency
limit, the progress bar, and cancellation. Async helpers with chosen sleeps make the timing deterministic."""

from __future__ import annotations

import asyncio
import time

import pytest

import guidance_lite as gl


class Tracker:
    """An async helper for templates: sleeps as told, records finish order and the most runs in flight at once."""

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0
        self.finished: list[int] = []
        self.cancelled: list[int] = []

    async def work(self, i: int, delay: float = 0.0, fail: bool = False) -> str:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(delay)
            if fail:
                raise ValueError(f"item {i} failed")
            self.finished.append(i)
            return f"done {i}"
        except asyncio.CancelledError:
            self.cancelled.append(i)
            raise
        finally:
            self.running -= 1


TEMPLATE = "{{set 'out' work(i, delay, fail)}}{{out}}"


def make_program(tracker: Tracker) -> gl.Program:
    return gl.Program(TEMPLATE, work=tracker.work, delay=0.0, fail=False)


def test_results_are_in_input_order_even_when_later_items_finish_first() -> None:
    tracker = Tracker()
    delays = [0.2, 0.15, 0.1, 0.05, 0.0]
    results = make_program(tracker).map([{"i": i, "delay": d} for i, d in enumerate(delays)], concurrency=5)
    assert tracker.finished == [4, 3, 2, 1, 0]  # reverse completion order ...
    assert [r.variables["out"] for r in results] == [f"done {i}" for i in range(5)]  # ... results in input order
    assert [r.text for r in results] == [f"done {i}" for i in range(5)]
    assert all(r.completed for r in results)


def test_a_failing_item_becomes_its_exception_in_its_slot() -> None:
    tracker = Tracker()
    inputs = [{"i": i, "fail": i == 2} for i in range(5)]
    results = make_program(tracker).map(inputs)
    assert isinstance(results[2], gl.TemplateRuntimeError)
    assert "item 2 failed" in str(results[2])
    assert isinstance(results[2].__cause__, ValueError)
    assert results[2].partial is not None  # the error keeps the partial result
    assert [r.variables["out"] for k, r in enumerate(results) if k != 2] == ["done 0", "done 1", "done 3", "done 4"]


def test_return_exceptions_false_raises_and_cancels_the_rest() -> None:
    tracker = Tracker()
    inputs = [{"i": 0, "delay": 0.01, "fail": True}] + [{"i": i, "delay": 30.0} for i in range(1, 4)]
    started = time.perf_counter()
    with pytest.raises(gl.TemplateRuntimeError, match="item 0 failed"):
        make_program(tracker).map(inputs, concurrency=4, return_exceptions=False)
    assert time.perf_counter() - started < 10  # did not wait for the 30 s sleepers
    assert sorted(tracker.cancelled) == [1, 2, 3]
    assert tracker.running == 0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_limit_is_respected_and_reached(concurrency: int) -> None:
    tracker = Tracker()
    results = make_program(tracker).map([{"i": i, "delay": 0.05} for i in range(10)], concurrency=concurrency)
    assert tracker.max_running == concurrency
    assert len(results) == 10 and sorted(tracker.finished) == list(range(10))


def test_default_concurrency_runs_items_at_the_same_time() -> None:
    tracker = Tracker()
    make_program(tracker).map([{"i": i, "delay": 0.1} for i in range(40)])
    assert tracker.max_running == 16


def test_progress_bar_on_stderr(capsys: pytest.CaptureFixture) -> None:
    tracker = Tracker()
    make_program(tracker).map([{"i": i} for i in range(7)], progress=True)
    captured = capsys.readouterr()
    assert "programs" in captured.err and "7/7" in captured.err
    assert captured.out == ""
    make_program(tracker).map([{"i": i} for i in range(3)])
    assert capsys.readouterr().err == ""  # no bar unless asked


async def test_amap_from_async_code_with_a_model() -> None:
    model = gl.models.Mock({"Say A": "A!", "Say B": "B!"})
    program = gl.Program("Say {{letter}}{{gen 'reply'}}", model=model)
    results = await program.amap([{"letter": "A"}, {"letter": "B"}, {"letter": "A"}], concurrency=2)
    assert [r["reply"] for r in results] == ["A!", "B!", "A!"]
    assert [r.text for r in results] == ["Say AA!", "Say BB!", "Say AA!"]
    assert len(model.requests) == 3


def test_map_from_sync_code_with_a_model_and_per_item_arguments() -> None:
    model = gl.models.Mock(["one", "two", "three"])
    program = gl.Program("{{prefix}}{{gen 'x'}}", model=model, prefix="default: ")
    results = program.map([{}, {"prefix": "custom: "}, {}], concurrency=1)
    assert [r.text for r in results] == ["default: one", "custom: two", "default: three"]


async def test_cancelling_amap_cancels_the_running_programs() -> None:
    tracker = Tracker()
    task = asyncio.ensure_future(make_program(tracker).amap([{"i": i, "delay": 30.0} for i in range(3)]))
    while tracker.running < 3:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(tracker.cancelled) == [0, 1, 2] and tracker.running == 0


def test_empty_input_and_bad_arguments() -> None:
    program = make_program(Tracker())
    assert program.map([]) == []
    with pytest.raises(ValueError, match="concurrency"):
        program.map([{"i": 1}], concurrency=0)
    with pytest.raises(TypeError, match="item 1 is a int"):
        program.map([{"i": 1}, 2])
    with pytest.raises(TypeError, match="not a single dict"):
        program.map({"i": 1})
