"""Tools: schemas from signatures, docstrings, decorator forms, schema dicts, validation, and concurrent dispatch."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import enum
import functools
import json
import threading
import time
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest
from helpers import Overlap
from pydantic import BaseModel, Field

import guidance_lite.tools.function_schema as tools_module  # where tools build their pydantic models
from guidance_lite.models.base import ToolCall
from guidance_lite.tools import (
    Tool,
    ToolArgumentError,
    ToolCallRecord,
    ToolDefinitionError,
    ToolError,
    ToolExecutionError,
    dispatch,
    format_result,
    make_tool,
    make_toolset,
    tool,
)


# ---- module-level types and tools (string annotations resolve in this module) --------------------------------
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Place(BaseModel):
    """A place on Earth."""

    city: str
    country: str = "FR"


def props(fn_or_tool: Any) -> dict:
    return make_tool(fn_or_tool).parameters["properties"]


def call(name: str, arguments: Any = None, call_id: str = "") -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(call_id, name, text)


# ---- schemas from signatures -----------------------------------------------------------------------------------
def test_basic_types_defaults_and_required():
    def f(a: int, b: float, c: str, d: bool, e, g: int = 5):
        return None

    params = make_tool(f).parameters
    assert params["type"] == "object"
    assert params["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "number"},
        "c": {"type": "string"},
        "d": {"type": "boolean"},
        "e": {},
        "g": {"type": "integer", "default": 5},
    }
    assert params["required"] == ["a", "b", "c", "d", "e"]
    assert params["additionalProperties"] is False
    assert "title" not in params


def test_optional_forms_are_nullable_and_not_required_with_default():
    def f(a: Optional[int] = None, b: str | None = None, c: int | None = 3):
        return None

    params = make_tool(f).parameters
    nullable_int = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert params["properties"]["a"] == {**nullable_int, "default": None}
    assert params["properties"]["b"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert params["properties"]["c"] == {**nullable_int, "default": 3}
    assert params["required"] == []


def test_literal_and_enum():
    def f(mode: Literal["fast", "slow"], color: Color = Color.RED):
        return None

    params = make_tool(f).parameters
    assert params["properties"]["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert params["properties"]["color"] == {"$ref": "#/$defs/Color", "default": "red"}
    assert params["$defs"]["Color"] == {"type": "string", "enum": ["red", "blue"]}


def test_list_and_dict():
    def f(tags: list[str], scores: dict[str, float]):
        return None

    assert props(f) == {
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
    }


def test_pydantic_model_parameter_keeps_defs_without_titles():
    def f(place: Place):
        return None

    params = make_tool(f).parameters
    assert params["properties"]["place"] == {"$ref": "#/$defs/Place"}
    assert params["$defs"]["Place"] == {
        "type": "object",
        "description": "A place on Earth.",
        "properties": {"city": {"type": "string"}, "country": {"type": "string", "default": "FR"}},
        "required": ["city"],
    }


def test_property_named_title_is_kept_while_title_keywords_go():
    def f(title: str, count: int = 1):
        return None

    params = make_tool(f).parameters
    assert params["properties"] == {"title": {"type": "string"}, "count": {"type": "integer", "default": 1}}
    assert params["required"] == ["title"]


def test_annotated_descriptions_win_over_docstring():
    def f(
        a: Annotated[str, "from annotated text"],
        b: Annotated[int, Field(description="from Field")],
        c: int = Field(4, description="from default Field"),
        d: int = 0,
    ):
        """Do it.

        Args:
            a: docstring a
            b: docstring b
            c: docstring c
            d: docstring d
        """

    p = props(f)
    assert p["a"]["description"] == "from annotated text"
    assert p["b"]["description"] == "from Field"
    assert p["c"] == {"type": "integer", "default": 4, "description": "from default Field"}
    assert p["d"]["description"] == "docstring d"


def test_star_args_are_omitted_and_kwargs_open_the_schema():
    def only_star(*args, **kwargs):
        return kwargs

    def mixed(a: int, *rest: int):
        return a

    assert make_tool(only_star).parameters["properties"] == {}
    assert make_tool(only_star).parameters["additionalProperties"] is True
    assert make_tool(only_star).validate({"x": 1, "y": "z"}) == {"x": 1, "y": "z"}
    assert props(mixed) == {"a": {"type": "integer"}}


def test_parameter_names_that_clash_with_pydantic_internals():
    def f(model_name: str, json: int, _private: bool = False, schema: str = "s"):
        return (model_name, json, _private, schema)

    made = make_tool(f)
    assert list(made.parameters["properties"]) == ["model_name", "json", "_private", "schema"]
    out = asyncio.run(made.invoke({"model_name": "m", "json": "2", "_private": True}))
    assert out == ("m", 2, True, "s")


def test_unsupported_parameter_type_is_a_definition_error():
    class Opaque:
        pass

    def f(x: Opaque):
        return x

    f.__annotations__["x"] = Opaque  # resolved already: the problem is the type, not its name
    with pytest.raises(ToolDefinitionError, match=r"tool 'f' has a parameter type"):
        make_tool(f).parameters


def test_unresolvable_annotation_is_a_clear_definition_error():
    def f(x: NotDefinedAnywhere):  # noqa: F821 - the point of the test
        return x

    with pytest.raises(ToolDefinitionError, match=r"cannot resolve a type annotation of tool 'f'.*NotDefinedAnywhere"):
        make_tool(f).parameters


# ---- docstrings ----------------------------------------------------------------------------------------------
def _google(city: str, days: int = 1):
    """Get the forecast.

    Uses the national service.

    Args:
        city: The city name.
        days: How many days ahead.

    Returns:
        The forecast text.
    """


def _numpy(city: str, days: int = 1):
    """Get the forecast.

    Uses the national service.

    Parameters
    ----------
    city : str
        The city name.
    days : int, optional
        How many days ahead.
    """


def _rest(city: str, days: int = 1):
    """Get the forecast.

    Uses the national service.

    :param city: The city name.
    :param days: How many days ahead.
    :returns: The forecast text.
    """


@pytest.mark.parametrize("fn", [_google, _numpy, _rest], ids=["google", "numpy", "rest"])
def test_docstring_styles(fn):
    made = make_tool(fn)
    assert made.description == "Get the forecast.\n\nUses the national service."
    assert made.parameters["properties"]["city"]["description"] == "The city name."
    assert made.parameters["properties"]["days"]["description"] == "How many days ahead."


def test_no_docstring_gives_empty_description():
    def f(x: int):
        return x

    assert make_tool(f).description == ""
    assert make_tool(f).schema()["function"]["description"] == ""


# ---- decorator forms and callables -----------------------------------------------------------------------------
def test_bare_decorator_returns_the_function_itself():
    def plain(x: int) -> int:
        """Double it."""
        return x * 2

    decorated = tool(plain)
    assert decorated is plain and plain(4) == 8
    assert isinstance(plain.__gl_tool__, Tool)
    assert make_tool(plain) is plain.__gl_tool__
    assert make_tool(plain).schema() == {
        "type": "function",
        "function": {
            "name": "plain",
            "description": "Double it.",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "integer"}},
                "required": ["x"],
                "additionalProperties": False,
            },
        },
    }


def test_decorator_with_name_and_description_and_positional_name():
    @tool(name="weather_now", description="Current weather.")
    def weather(city: str):
        """Ignored docstring."""
        return city

    @tool("lookup")
    def find(q: str):
        return q

    assert weather("x") == "x"
    assert (make_tool(weather).name, make_tool(weather).description) == ("weather_now", "Current weather.")
    assert make_tool(find).name == "lookup"


def test_invalid_tool_names_are_rejected_with_a_hint():
    with pytest.raises(ToolDefinitionError, match=r"'<lambda>' is not valid.*name="):
        make_tool(lambda x: x)
    with pytest.raises(ToolDefinitionError, match="not valid"):
        tool(name="has space")(lambda: 1)


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @tool(name="greet")
    def greet(self, who: str) -> str:
        """Greet someone."""
        return f"{self.greeting}, {who}"


class AsyncCounter:
    """Count things asynchronously."""

    async def __call__(self, n: int) -> int:
        return n + 1


def test_bound_methods_callable_objects_and_partials():
    bound = make_tool(Greeter("Hi").greet)
    assert bound.name == "greet" and bound.description == "Greet someone."
    assert list(bound.parameters["properties"]) == ["who"]
    assert asyncio.run(bound.invoke({"who": "Ann"})) == "Hi, Ann"

    counter = make_tool(AsyncCounter())
    assert counter.name == "AsyncCounter" and counter.is_async
    assert counter.description == "Count things asynchronously."
    assert asyncio.run(counter.invoke({"n": "4"})) == 5

    def power(base: int, exp: int) -> int:
        return base**exp

    squared = make_tool(functools.partial(power, exp=2))
    assert squared.name == "power"
    assert squared.parameters["properties"]["exp"]["default"] == 2
    assert asyncio.run(squared.invoke({"base": 3})) == 9


def test_wrapper_of_a_decorated_function_calls_the_wrapper():
    calls = []

    @tool(name="logged_add")
    def inner(a: int, b: int) -> int:
        """Add."""
        return a + b

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return inner(*args, **kwargs)

    made = make_tool(wrapper)
    assert made.name == "logged_add" and made.fn is wrapper and list(made.parameters["properties"]) == ["a", "b"]
    assert asyncio.run(made.invoke({"a": "1", "b": 2})) == 3 and calls == [{"a": 1, "b": 2}]


def test_async_detection():
    async def a(x: int):
        return x

    def s(x: int):
        return x

    assert make_tool(a).is_async and not make_tool(s).is_async


def test_tool_objects_are_immutable_and_copy_to_themselves():
    made = make_tool(_google)
    with pytest.raises(AttributeError, match="immutable"):
        made.name = "other"
    assert copy.deepcopy(made) is made and copy.copy(made) is made


# ---- schema dicts ----------------------------------------------------------------------------------------------
WEATHER_SCHEMA = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_schema_dict_forms_and_resolve():
    def get_weather(city, unit="c"):
        return f"{city}:{unit}"

    full = make_tool(WEATHER_SCHEMA, resolve={"get_weather": get_weather}.get)
    inner = make_tool(WEATHER_SCHEMA["function"], resolve={"get_weather": get_weather}.get)
    assert full.schema() == WEATHER_SCHEMA and inner.schema() == WEATHER_SCHEMA
    assert full.fn is get_weather and inner.fn is get_weather
    assert asyncio.run(full.invoke({"city": "Oslo"})) == "Oslo:c"
    unresolved = make_tool(WEATHER_SCHEMA)
    assert unresolved.fn is None


def test_schema_dict_validation_then_signature_coercion():
    def get_weather(city: str, unit: str = "c", days: int = 1):
        return days

    schema = copy.deepcopy(WEATHER_SCHEMA)
    schema["function"]["parameters"]["properties"]["days"] = {"type": "integer"}
    made = make_tool(schema, resolve=lambda name: get_weather)
    with pytest.raises(ToolArgumentError) as info:
        made.validate({"unit": "k", "extra": 1})
    assert info.value.problems == [
        "city: required argument is missing",
        "extra: unexpected argument (not a parameter of this tool)",
        'unit: must be one of "c", "f" (got \'k\')',
    ]
    assert made.validate({"city": "Rome", "days": "3"}) == {"city": "Rome", "days": 3}


def test_schema_dict_errors():
    with pytest.raises(ToolDefinitionError, match="only function tools"):
        make_tool({"type": "code_interpreter"})
    with pytest.raises(ToolDefinitionError, match="needs a name"):
        make_tool({"parameters": {}})
    with pytest.raises(ToolDefinitionError, match="of type 'object'"):
        make_tool({"name": "x", "parameters": {"type": "array"}})
    with pytest.raises(ToolDefinitionError, match="'get_weather'.*is a int, not a function"):
        make_tool(WEATHER_SCHEMA, resolve=lambda name: 42)


# ---- toolsets --------------------------------------------------------------------------------------------------
def test_make_toolset_shapes_and_order():
    def b():
        return "b"

    def a():
        return "a"

    assert list(make_toolset([b, a, WEATHER_SCHEMA])) == ["b", "a", "get_weather"]
    assert list(make_toolset((a,))) == ["a"]
    assert list(make_toolset(a)) == ["a"]
    assert list(make_toolset(WEATHER_SCHEMA)) == ["get_weather"]
    assert make_toolset(None) == {}
    same = make_toolset([a, b])
    assert make_toolset(same) == same


def test_make_toolset_duplicates_and_bad_values():
    def a():
        return 1

    other = tool(name="a")(lambda: 2)
    with pytest.raises(ToolDefinitionError, match="two tools are named 'a'"):
        make_toolset([a, other])
    with pytest.raises(ToolDefinitionError, match=r"got int \(42\)"):
        make_toolset([a, 42])
    with pytest.raises(ToolDefinitionError, match=r"got str \('a'\)"):
        make_toolset(["a"])


# ---- validation ----------------------------------------------------------------------------------------------
def _typed(n: int, x: float, flag: bool, place: Place, color: Color, tags: list[int], note: str = "none"):
    return locals()


def test_validation_coerces_in_lax_mode_and_returns_only_given():
    kwargs = make_tool(_typed).validate(
        {"n": "3", "x": "2.5", "flag": "true", "place": {"city": "Lyon"}, "color": "blue", "tags": ["1", 2]}
    )
    assert kwargs == {"n": 3, "x": 2.5, "flag": True, "place": Place(city="Lyon"), "color": Color.BLUE, "tags": [1, 2]}
    assert "note" not in kwargs


def test_validation_errors_list_every_bad_field():
    with pytest.raises(ToolArgumentError) as info:
        make_tool(_typed).validate(
            {"n": "three", "x": 1, "flag": True, "place": {}, "color": "green", "tags": [], "bogus": 1}
        )
    problems = info.value.problems
    assert problems[0] == "n: Input should be a valid integer, unable to parse string as an integer (got 'three')"
    assert "place.city: required argument is missing" in problems
    assert any(p.startswith("color: Input should be 'red' or 'blue'") for p in problems)
    assert "bogus: unexpected argument (not a parameter of this tool)" in problems
    assert str(info.value).startswith("invalid arguments for tool '_typed':\n- n: ")
    with pytest.raises(ToolArgumentError, match="expected a JSON object, got list"):
        make_tool(_typed).validate([1, 2])


def test_positional_only_parameters_are_passed_positionally():
    def f(a: int, b: int = 10, /, c: int = 0):
        return (a, b, c)

    assert asyncio.run(make_tool(f).invoke({"a": "1", "c": 3})) == (1, 10, 3)
    assert asyncio.run(make_tool(f).invoke({"a": 1, "b": 2})) == (1, 2, 0)


# ---- dispatch: faults as data --------------------------------------------------------------------------------
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def explode(message: str) -> None:
    raise ValueError(message)


async def test_unknown_tool_only_offered_tools_run():
    offered = make_toolset([add])
    [record] = await dispatch([call("explode", {"message": "x"}, "c1")], offered)
    assert record.error_type == "unknown_tool"
    assert record.content == record.error == "unknown tool 'explode'; available: add"
    assert record.id == "c1" and record.arguments is None and record.result is None
    [none_offered] = await dispatch([call("add", {"a": 1, "b": 2})], {})
    assert none_offered.content == "unknown tool 'add'; available: none"


async def test_invalid_json_and_non_object_arguments():
    bad, non_object = await dispatch([call("add", '{"a": 1,'), call("add", "[1, 2]")], make_toolset(add))
    assert bad.error_type == "invalid_json"
    assert bad.content.startswith("arguments are not valid JSON: ") and bad.arguments_json == '{"a": 1,'
    assert non_object.error_type == "invalid_arguments"
    assert non_object.content == "tool arguments must be a JSON object, got list"


async def test_invalid_arguments_do_not_call_the_tool():
    calls = []

    def record_call(n: int):
        calls.append(n)

    [record] = await dispatch([call("record_call", {"n": "many"})], make_toolset(record_call))
    assert record.error_type == "invalid_arguments" and calls == []
    assert "- n: Input should be a valid integer" in record.content


async def test_tool_exception_becomes_type_and_message():
    [record] = await dispatch([call("explode", {"message": "no rain today"})], make_toolset(explode))
    assert record.error_type == "exception"
    assert record.content == record.error == "ValueError: no rain today"
    assert "Traceback" not in record.content
    assert isinstance(record.exception, ValueError)


async def test_missing_implementation_is_reported_as_data():
    [record] = await dispatch([call("get_weather", {"city": "Oslo"})], make_toolset(WEATHER_SCHEMA))
    assert record.error_type == "exception"
    assert record.content == (
        "tool 'get_weather' has no implementation; pass a function named 'get_weather' as a program argument"
    )


async def test_timeout_does_not_wait_for_a_stuck_sync_tool():
    release = threading.Event()

    def stuck() -> str:
        release.wait(5)
        return "late"

    async def slow_async() -> str:
        await asyncio.sleep(5)
        return "late"

    started = time.perf_counter()
    try:
        records = await dispatch(
            [call("stuck"), call("slow_async"), call("add", {"a": 1, "b": 1})],
            make_toolset([stuck, slow_async, add]),
            timeout=0.1,
        )
    finally:
        release.set()
    assert time.perf_counter() - started < 1.0
    assert [r.error_type for r in records] == ["timeout", "timeout", None]
    assert records[0].content == "timed out after 0.1s"
    assert records[2].content == "2"


async def test_errors_raise_reports_first_failure_in_call_order_after_all_finish():
    async def slow_fail():
        await asyncio.sleep(0.05)
        raise KeyError("late")

    calls = [call("add", {"a": 1, "b": 2}, "ok"), call("slow_fail", {}, "first"), call("nope", {}, "second")]
    with pytest.raises(ToolExecutionError) as info:
        await dispatch(calls, make_toolset([add, slow_fail]), errors="raise")
    error = info.value
    assert error.record.id == "first" and error.record.error_type == "exception"
    assert "'first'" in str(error) and "slow_fail" in str(error) and "KeyError" in str(error)
    assert isinstance(error.__cause__, KeyError)
    assert [r.id for r in error.records] == ["ok", "first", "second"]
    assert error.records[0].result == 3 and error.records[2].error_type == "unknown_tool"
    assert isinstance(error, ToolError)


async def test_bad_dispatch_options_are_rejected():
    with pytest.raises(ValueError, match="errors='ignore' is not supported"):
        await dispatch([], {}, errors="ignore")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        await dispatch([], {}, timeout=0)


async def test_overrides_replace_and_add_keys_for_every_call():
    def convert(value: float, unit: str = "kelvin") -> str:
        return f"{value} {unit}"

    records = await dispatch(
        [call("convert", {"value": 1, "unit": "fahrenheit"}), call("convert", {"value": "2"})],
        make_toolset(convert),
        overrides={"unit": "celsius"},
    )
    assert [r.content for r in records] == ["1.0 celsius", "2.0 celsius"]
    assert records[0].arguments == {"value": 1, "unit": "celsius"}
    assert records[0].arguments_json == '{"value": 1, "unit": "fahrenheit"}'


# ---- dispatch: the on_tool_call hook ---------------------------------------------------------------------------
async def test_hook_approves_with_true_or_none():
    seen = []

    def approve(c: ToolCall):
        seen.append(c.name)
        return None if len(seen) == 1 else True

    records = await dispatch(
        [call("add", {"a": 1, "b": 2}), call("add", {"a": 3, "b": 4})], make_toolset(add), on_tool_call=approve
    )
    assert [r.result for r in records] == [3, 7] and seen == ["add", "add"]


async def test_hook_denies_replaces_and_fails():
    async def decide(c: ToolCall):
        a = c.arguments["a"]
        if a == 0:
            return False
        if a == 1:
            return {"a": "10", "b": 5}
        if a == 2:
            return {"a": "not a number", "b": 5}
        if a == 3:
            raise PermissionError("policy says no")
        return "maybe"

    records = await dispatch([call("add", {"a": i, "b": 1}) for i in range(5)], make_toolset(add), on_tool_call=decide)
    denied, replaced, invalid, failed, odd = records
    assert (denied.error_type, denied.content) == ("denied", "the user denied this call")
    assert replaced.result == 15 and replaced.arguments == {"a": "10", "b": 5} and replaced.error is None
    assert invalid.error_type == "invalid_arguments"
    assert (failed.error_type, failed.content) == ("exception", "PermissionError: policy says no")
    assert odd.error_type == "exception" and "on_tool_call returned str" in odd.content


# ---- dispatch: concurrency -------------------------------------------------------------------------------------
def nap(seconds: float, tag: str) -> str:
    time.sleep(seconds)
    return tag


async def test_sync_tools_run_in_parallel_threads():
    overlap = Overlap(8)

    def meet(tag: str) -> str:
        overlap.wait()  # returns only once all eight calls are running at the same time
        return tag

    records = await dispatch([call("meet", {"tag": str(i)}) for i in range(8)], make_toolset(meet))
    assert [r.result for r in records] == [str(i) for i in range(8)]
    assert overlap.peak == 8
    assert max(r.started_at for r in records) < min(r.started_at + r.duration for r in records)  # all overlapped


async def test_mixed_sync_and_async_results_stay_in_call_order():
    async def quick(tag: str) -> str:
        return tag

    records = await dispatch(
        [call("nap", {"seconds": 0.1, "tag": "slow"}), call("quick", {"tag": "fast"})], make_toolset([nap, quick])
    )
    assert [r.result for r in records] == ["slow", "fast"]
    assert records[1].duration < records[0].duration


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_sync_tools_see_the_callers_context_variables():
    def which_request() -> str:
        return REQUEST_ID.get()

    REQUEST_ID.set("req-42")
    [record] = await dispatch([call("which_request")], make_toolset(which_request))
    assert record.result == "req-42"


# ---- results ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Point:
    x: int
    y: int


class Shade(str, enum.Enum):
    DARK = "dark"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain text", "plain text"),
        (None, ""),
        (Place(city="Nice"), '{"city":"Nice","country":"FR"}'),
        ({"temp": 21.5, "city": "Zürich"}, '{"temp": 21.5, "city": "Zürich"}'),
        ([1, "two", None], '[1, "two", null]'),
        (42, "42"),
        (2.5, "2.5"),
        (True, "true"),
        (
            {"place": Place(city="Nice"), "point": Point(1, 2)},
            '{"place": {"city": "Nice", "country": "FR"}, "point": {"x": 1, "y": 2}}',
        ),
        (Point(1, 2), "Point(x=1, y=2)"),
        (Shade.DARK, "dark"),
    ],
)
def test_format_result(value, expected):
    assert format_result(value) == expected


async def test_record_to_dict_is_json_ready():
    def where(city: str) -> Place:
        return Place(city=city)

    [record] = await dispatch([call("where", {"city": "Nice"}, "c9")], make_toolset(where))
    record.variable = "answer"
    data = json.loads(json.dumps(record.to_dict()))
    assert data["result"] == {"city": "Nice", "country": "FR"}
    assert data["content"] == '{"city":"Nice","country":"FR"}'
    assert (data["id"], data["name"], data["variable"], data["error"]) == ("c9", "where", "answer", None)
    assert data["arguments"] == {"city": "Nice"} and "exception" not in data
    assert isinstance(record, ToolCallRecord) and record.ok


# ---- caching ---------------------------------------------------------------------------------------------------
def test_offering_the_same_tools_repeatedly_builds_once(monkeypatch):
    builds = []
    real_create_model = tools_module.create_model

    def counting_create_model(*args, **kwargs):
        builds.append(args[0])
        return real_create_model(*args, **kwargs)

    monkeypatch.setattr(tools_module, "create_model", counting_create_model)

    def fresh_a(x: int) -> int:
        return x

    @tool
    def fresh_b(y: str) -> str:
        return y

    first = make_toolset([fresh_a, fresh_b])
    schemas = [t.schema() for t in first.values()]
    started = time.perf_counter()
    for _ in range(1000):
        again = make_toolset([fresh_a, fresh_b])
        [t.schema() for t in again.values()]
    elapsed = time.perf_counter() - started
    assert builds == ["fresh_a_arguments", "fresh_b_arguments"]
    assert again["fresh_a"] is first["fresh_a"] and again["fresh_b"] is fresh_b.__gl_tool__
    assert [t.schema() for t in again.values()] == schemas
    assert elapsed < 1.0, elapsed  # ~0.05 s measured: dictionary lookups plus small deep copies


def test_schema_copies_protect_the_cached_definition():
    made = make_tool(add)
    made.schema()["function"]["parameters"]["properties"]["a"]["type"] = "string"
    assert made.schema()["function"]["parameters"]["properties"]["a"] == {"type": "integer"}


def test_validation_model_is_pydantic_and_reused():
    made = make_tool(add)
    assert made.validate({"a": "1", "b": 2}) == {"a": 1, "b": 2}
    assert made._spec() is make_tool(add)._spec()
    assert issubclass(made._spec().model, pydantic.BaseModel)
