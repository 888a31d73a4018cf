"""The sandbox policy (guidance_lite/sandbox.py): every attack in tests/security/cases_sandbox.py is refused and
leaves what was passed in unchanged, also across runs of one Program; ordinary reading and calling still work."""

from __future__ import annotations

import collections
import datetime
import functools
import os
from typing import Any

import pytest
from security.cases_sandbox import CASES

import guidance_lite as gl
from guidance_lite.limits import DEFAULT_LIMITS, LimitExceeded
from guidance_lite.sandbox import POLICY, SandboxError

CONTAINERS = (list, dict, set, collections.deque, bytearray)


def fingerprint(values: dict) -> dict:
    """What can be compared of the containers among ``values`` after a run: their identity and contents."""
    return {key: (id(value), repr(value)) for key, value in values.items() if isinstance(value, CONTAINERS)}


def nested_fingerprint(values: dict) -> dict:
    """Containers one level down too (``cfg['log']``)."""
    prints = fingerprint(values)
    for key, value in values.items():
        if isinstance(value, dict):
            prints.update({f"{key}.{k}": v for k, v in fingerprint(value).items()})
    return prints


def run_case(case: dict) -> tuple[Any, dict, dict]:
    """Run the case's template (twice when it has Program defaults); returns (error or None, before, after)."""
    args = case["args"]()
    defaults = case["defaults"]() if "defaults" in case else {}
    watched = {**args, **defaults}
    before = nested_fingerprint(watched)
    program = gl.Program(case["template"], model=gl.models.Mock("ok"), silent=True, **defaults)
    errors = []
    for _ in range(2 if defaults else 1):
        try:
            program(**args)
            errors.append(None)
        except gl.TemplateRuntimeError as exc:
            errors.append(exc)
    assert all(type(e) is type(errors[0]) for e in errors), "every run ends the same way"
    if defaults:
        assert nested_fingerprint(program.defaults) == nested_fingerprint(defaults)
    return errors[0], before, nested_fingerprint(watched)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_attack_is_refused_and_changes_nothing(case: dict) -> None:
    error, before, after = run_case(case)
    assert after == before, f"{case['name']}: a value passed in was changed"
    if case["expect"] == "refused":
        assert error is not None, f"{case['name']} ran: {case['what']}"
        assert isinstance(error.__cause__, SandboxError), repr(error.__cause__)
        assert error.message.startswith("not allowed:") and error.line == 1
    else:
        assert case["expect"] == "unchanged"


def test_every_case_is_described_for_the_report() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    for case in CASES:
        assert {"name", "category", "what", "expect", "template", "args"} <= set(case)
        assert case["expect"] in ("refused", "unchanged")


def test_mutating_method_errors_name_the_method_and_the_way_to_write() -> None:
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program("{{cfg.log.append('x')}}", silent=True)(cfg={"log": []})
    assert "list.append" in info.value.message
    assert "{{set" in info.value.hint and "{{gen 'obj.x'}}" in info.value.hint


def test_the_ways_to_write_still_work_and_write_into_the_runs_copy() -> None:
    cfg = {"n": 1, "log": ["a"]}
    xs = [1, 2]
    result = gl.Program(
        "{{set 'xs' xs + [3]}}{{set 'cfg' dict(cfg, n=5)}}{{gen 'obj.x'}}{{len(xs)}}/{{cfg.n}}",
        model=gl.models.Mock("g"),
        silent=True,
    )(cfg=cfg, xs=xs, obj={"y": 1})
    assert result.text.endswith("3/5")
    assert result["xs"] == [1, 2, 3] and result["obj"] == {"y": 1, "x": "g"}
    assert xs == [1, 2] and cfg == {"n": 1, "log": ["a"]}


def test_reading_and_calling_what_was_passed_still_work() -> None:
    counts: collections.defaultdict = collections.defaultdict(int, {"a": 2})
    program = gl.Program(
        "{{datetime.date(2024, 5, 17).isoformat()}} {{sorted(xs)}} {{d.get('a')}} {{list(d.items())}} "
        "{{counts['a']}}{{counts['zzz']}} {{f()}} {{'ab'.upper()}} {{', '.join(['a', 'b'])}} {{'x'.ljust(3)}}|",
        silent=True,
    )
    result = program(datetime=datetime, xs=[3, 1, 2], d={"a": 1}, counts=counts, f=functools.partial(int, "7"))
    assert result.text == "2024-05-17 [1, 2, 3] 1 [('a', 1)] 20 7 AB a, b x  |"
    assert dict(counts) == {"a": 2}  # reading a missing key did not insert it


def test_policy_is_one_object_that_decides_reading_and_calling() -> None:
    assert POLICY.getattr({"update": 1}, "update") == 1  # a key named like a method is the key
    assert POLICY.getattr(datetime, "date") is datetime.date
    for obj, name in [(datetime, "sys"), ([], "append"), (functools.partial(print), "func"), (1, "__class__")]:
        with pytest.raises(SandboxError):
            POLICY.getattr(obj, name)
    with pytest.raises(SandboxError):
        POLICY.getitem({"m": os}, "m")
    with pytest.raises(SandboxError, match="dict.update"):
        POLICY.check_call({}.update, [{}], {}, DEFAULT_LIMITS)
    with pytest.raises(LimitExceeded, match="max_value_size"):
        POLICY.check_call("x".center, [10**9], {}, DEFAULT_LIMITS)
    POLICY.check_call(sorted, [[1]], {}, DEFAULT_LIMITS)  # an ordinary call passes


def test_caller_helpers_that_mutate_their_own_state_are_the_callers_business() -> None:
    """The sandbox refuses mutating methods of containers; a function the caller wrote runs as written."""
    seen: list = []

    def remember(x: Any) -> str:
        seen.append(x)
        return "ok"

    assert gl.Program("{{remember(1)}}", silent=True)(remember=remember).text == "ok"
    assert seen == [1]
