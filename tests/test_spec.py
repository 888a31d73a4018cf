"""Runner of the data-driven language spec (``tests/spec/*.json``, chevron-style: one file per area).

Each case is ``{"name", "template", "args"?, "replies"?, "options"?, "expect"?, "error"?, "resume"?, "known_bug"?}``:

- ``args`` are the call's keyword arguments; a string ``"$fn:NAME"`` is the Python function ``FUNCTIONS[NAME]`` and
  ``"$program:TEMPLATE"`` a ``gl.Program(TEMPLATE)`` (for partials), anywhere inside lists and dicts.
- ``replies`` configure ``gl.models.Mock`` (every case runs with a Mock, so no case can reach a real model).
- ``options`` are ``gl.Program`` keyword options (``await_missing``, defaults …).
- ``expect``: ``text`` (exact), ``messages`` (exact list), ``variables`` (subset: only the names listed are
  compared), ``completed``, ``paused_on``, ``requests`` (one entry per model request, in order; each entry is a subset
  check of ``prompt``, ``messages``, ``stop``, ``stop_regex``, ``options``, ``tools`` (names), ``tool_choice``,
  ``max_tokens``, ``temperature``, ``top_p``, ``n``, ``seed``, ``pattern``, ``prefill``, ``extra``),
  ``tool_calls`` (subset of each ``result.tool_calls`` record: ``id``, ``name``, ``content``, ``error_type``).
- ``error``: ``type`` ``"syntax"`` (raised by ``gl.Program(...)``) or ``"runtime"`` (raised by the call), with
  ``line``, ``col``, ``contains`` (substrings of ``str(err)``), ``hint_contains``, ``text`` (``err.text``),
  ``caret`` (``str(err)`` shows the source line with a caret under ``col``), and for runtime errors
  ``partial_text`` / ``partial_variables`` / ``partial_messages`` (what ran before the failure).
- ``resume``: steps ``{"args", "expect"?, "error"?}`` that call the paused result with ``args``.
- ``known_bug``: the case states the spec but the core does not meet it yet; it runs as ``xfail(strict=True)``.

Every case also checks that the run did not mutate the arguments the caller passed in.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Optional

import pytest

import guidance_lite as gl
from guidance_lite.models.base import GenRequest
from guidance_lite.models.mock import Mock

SPEC_DIR = Path(__file__).parent / "spec"

CASE_KEYS = frozenset({"name", "template", "args", "replies", "options", "expect", "error", "resume", "known_bug"})
EXPECT_KEYS = frozenset({"text", "messages", "variables", "completed", "paused_on", "requests", "tool_calls"})
ERROR_KEYS = frozenset(
    {
        "type",
        "line",
        "col",
        "contains",
        "hint_contains",
        "text",
        "caret",
        "partial_text",
        "partial_variables",
        "partial_messages",
    }
)
REQUEST_KEYS = frozenset(
    {
        "prompt",
        "messages",
        "stop",
        "stop_regex",
        "options",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "seed",
        "pattern",
        "prefill",
        "extra",
    }
)
RECORD_KEYS = frozenset({"id", "name", "content", "error_type"})


# ---- Python-only arguments -------------------------------------------------------------------------------------------
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def get_time(city: str) -> str:
    """The local time in a city."""
    return f"noon in {city}"


def explode(reason: str = "boom") -> str:
    """Always fails (for error paths)."""
    raise RuntimeError(reason)


class Point:
    """A plain object: templates read its public attributes, never its internals."""

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y
        self._secret = "hidden"

    def __repr__(self) -> str:
        return f"Point({self.x}, {self.y})"


FUNCTIONS: dict[str, Any] = {
    "upper": lambda s: str(s).upper(),
    "shout": lambda s, suffix="!": str(s).upper() + suffix,
    "pair": lambda a, b: f"{a}-{b}",
    "none": lambda: None,
    "get_weather": get_weather,
    "get_time": get_time,
    "explode": explode,
    "point": Point(3, 4),
}


def resolve(value: Any) -> Any:
    """JSON args -> Python args (``$fn:`` and ``$program:`` strings become objects)."""
    if isinstance(value, str):
        if value.startswith("$fn:"):
            return FUNCTIONS[value[4:]]
        if value.startswith("$program:"):
            return gl.Program(value[len("$program:") :])
        return value
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    return value


# ---- loading --------------------------------------------------------------------------------------------------------
def load_cases() -> list:
    params = []
    seen: set[str] = set()
    for path in sorted(SPEC_DIR.glob("*.json")):
        cases = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(cases, list), f"{path.name}: the file must hold a list of cases"
        for case in cases:
            case_id = f"{path.stem}::{case['name']}"
            assert case_id not in seen, f"duplicate case name {case_id}"
            seen.add(case_id)
            unknown = set(case) - CASE_KEYS
            assert not unknown, f"{case_id}: unknown keys {sorted(unknown)}"
            marks = []
            if case.get("known_bug"):
                marks.append(pytest.mark.xfail(strict=True, reason=case["known_bug"]))
            params.append(pytest.param(case, id=case_id, marks=marks))
    return params


CASES = load_cases()


# ---- checks ---------------------------------------------------------------------------------------------------------
def snapshot(value: Any) -> Any:
    """A deep copy of JSON-like data; other objects (functions, Programs) are kept by identity."""
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value


def request_field(request: GenRequest, key: str) -> Any:
    if key == "tools":
        return [t.name for t in request.tools] if request.tools else None
    return getattr(request, key)


def check_requests(mock: Mock, expected: list[dict], where: str) -> None:
    got = mock.requests
    assert len(got) == len(expected), (
        f"{where}: expected {len(expected)} model request(s), the program sent {len(got)}: {[r.prompt for r in got]!r}"
    )
    for i, (request, want) in enumerate(zip(got, expected)):
        unknown = set(want) - REQUEST_KEYS
        assert not unknown, f"{where}: unknown request keys {sorted(unknown)}"
        for key, value in want.items():
            actual = request_field(request, key)
            assert actual == value, f"{where}: request {i} {key}: expected {value!r}, got {actual!r}"


def check_variables(variables: dict, expected: dict, where: str) -> None:
    for name, value in expected.items():
        assert name in variables, f"{where}: variable {name!r} missing (have {sorted(variables)})"
        assert variables[name] == value, f"{where}: variable {name!r}: expected {value!r}, got {variables[name]!r}"


def check_result(result: gl.Result, mock: Mock, expect: dict, where: str) -> None:
    unknown = set(expect) - EXPECT_KEYS
    assert not unknown, f"{where}: unknown expect keys {sorted(unknown)}"
    if "text" in expect:
        assert result.text == expect["text"], f"{where}: text"
    if "messages" in expect:
        assert result.messages == expect["messages"], f"{where}: messages"
    if "variables" in expect:
        check_variables(result.variables, expect["variables"], where)
    if "completed" in expect:
        assert result.completed is expect["completed"], f"{where}: completed"
    if "paused_on" in expect:
        assert result.paused_on == expect["paused_on"], f"{where}: paused_on"
    if "requests" in expect:
        check_requests(mock, expect["requests"], where)
    if "tool_calls" in expect:
        records = result.tool_calls
        assert len(records) == len(expect["tool_calls"]), f"{where}: number of tool call records"
        for record, want in zip(records, expect["tool_calls"]):
            assert not set(want) - RECORD_KEYS, f"{where}: unknown tool call keys {sorted(set(want) - RECORD_KEYS)}"
            for key, value in want.items():
                assert getattr(record, key) == value, f"{where}: tool call {key}"


def check_caret(message: str, source: str, line: int, col: int) -> None:
    """``message`` shows source line ``line`` and, on the next line, a caret under column ``col``."""
    source_line = source.splitlines()[line - 1].expandtabs(1)
    shown = message.splitlines()
    for i, text in enumerate(shown[:-1]):
        if source_line and text.endswith(source_line):
            indent = len(text) - len(source_line)
            caret = shown[i + 1]
            assert caret.strip() == "^", f"no caret under the source line in:\n{message}"
            assert len(caret) - 1 - indent == col - 1, f"caret not under column {col} in:\n{message}"
            return
    raise AssertionError(f"the error does not show source line {line} ({source_line!r}):\n{message}")


def check_error(exc: BaseException, error: dict, source: str) -> None:
    unknown = set(error) - ERROR_KEYS
    assert not unknown, f"unknown error keys {sorted(unknown)}"
    message = str(exc)
    if "line" in error:
        assert exc.line == error["line"], f"error line: expected {error['line']}, got {exc.line}: {message}"
    if "col" in error:
        assert exc.col == error["col"], f"error col: expected {error['col']}, got {exc.col}: {message}"
    for part in error.get("contains", []):
        assert part in message, f"{part!r} not in the error message:\n{message}"
    if "hint_contains" in error:
        assert error["hint_contains"] in exc.hint, f"hint {exc.hint!r} lacks {error['hint_contains']!r}"
    if "text" in error:
        assert exc.text == error["text"], f"error text: expected {error['text']!r}, got {exc.text!r}"
    if error.get("caret"):
        check_caret(message, source, exc.line, exc.col)
    if any(k.startswith("partial_") for k in error):
        partial = exc.partial
        assert partial is not None, "the runtime error carries no partial result"
        assert partial.completed is False
        if "partial_text" in error:
            assert partial.text == error["partial_text"], "partial text"
        if "partial_variables" in error:
            check_variables(partial.variables, error["partial_variables"], "partial")
        if "partial_messages" in error:
            assert partial.messages == error["partial_messages"], "partial messages"


def expect_outcome(step: dict, run: Any, source: str, mock: Mock, where: str) -> Optional[gl.Result]:
    """Call ``run()``; check the error it must raise or the result it must return."""
    error = step.get("error")
    if error is not None and error["type"] == "runtime":
        with pytest.raises(gl.TemplateRuntimeError) as info:
            run()
        check_error(info.value, error, source)
        return None
    result = run()
    check_result(result, mock, step.get("expect", {}), where)
    return result


# ---- the test --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_spec(case: dict) -> None:
    source = case["template"]
    mock = Mock(copy.deepcopy(case.get("replies")))
    options = resolve(case.get("options", {}))
    error = case.get("error")
    assert error is None or error.get("type") in ("syntax", "runtime"), "error.type must be 'syntax' or 'runtime'"
    if error is not None and error["type"] == "syntax":
        with pytest.raises(gl.TemplateSyntaxError) as info:
            gl.Program(source, model=mock, **options)
        check_error(info.value, error, source)
        return
    program = gl.Program(source, model=mock, **options)
    args = resolve(case.get("args", {}))
    before = snapshot(args)
    result = expect_outcome(case, lambda: program(**args), source, mock, "run")
    assert args == before, "the run mutated the caller's arguments"
    for i, step in enumerate(case.get("resume", [])):
        assert result is not None, "a resume step follows a run that raised"
        step_args = resolve(step.get("args", {}))
        paused = result
        result = expect_outcome(step, lambda: paused(**step_args), source, mock, f"resume {i}")  # noqa: B023 - called at once


def test_the_spec_is_big_enough() -> None:
    """The brief asks for at least 130 cases over every area."""
    assert len(CASES) >= 130
