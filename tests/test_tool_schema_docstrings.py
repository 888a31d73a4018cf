"""Schemas from the functions people actually write (issue 8, section 4): a parameter without an annotation takes
its type from the docstring (Google, NumPy or reST), else from its default value; an annotation always wins; the
arguments a model sends are validated against the same types."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import pytest

from guidance_lite.tools import ToolArgumentError, make_tool
from guidance_lite.tools.function_schema import docstring_type


def props(fn: Any) -> dict:
    return make_tool(fn).parameters["properties"]


def get_current_weather(location, unit="fahrenheit"):  # type: ignore[no-untyped-def]
    """Get the current weather in a given location.
    Parameters
    ----------
    location : string
        The location to get the weather for.
    unit : str, optional
        The unit to get the weather in. Can be either "fahrenheit" or "celsius".
    """
    return location, unit


def test_the_issue_seed_function_gets_typed_parameters() -> None:
    parameters = make_tool(get_current_weather).parameters
    assert parameters["properties"] == {
        "location": {"type": "string", "description": "The location to get the weather for."},
        "unit": {
            "type": "string",
            "default": "fahrenheit",
            "description": 'The unit to get the weather in. Can be either "fahrenheit" or "celsius".',
        },
    }
    assert parameters["required"] == ["location"]


def google(city, days, tags, mode, ratio=None, verbose=False):  # type: ignore[no-untyped-def]
    """Forecast.

    Args:
        city (str): The city.
        days (integer): How many days.
        tags (list of str): Labels.
        mode ({'fast', 'exact'}): How.
        ratio (float, optional): A ratio.
        verbose: Whether to talk.
    """


def numpy_style(city, days, tags, options, mode):  # type: ignore[no-untyped-def]
    """Forecast.

    Parameters
    ----------
    city : str
        The city.
    days : int
        How many days.
    tags : list[str]
        Labels.
    options : dict
        Extra options.
    mode : {"fast", "exact"}, default "fast"
        How.
    """


def rest_style(city, days, flag, amount, anything):  # type: ignore[no-untyped-def]
    """Forecast.

    :param city: The city.
    :type city: string
    :param days: How many days.
    :type days: int or None
    :param flag: A flag.
    :type flag: boolean
    :param amount: How much.
    :type amount: number, optional
    :param anything: Whatever.
    :type anything: SomethingUnknown
    """


def test_google_style_types() -> None:
    p = props(google)
    assert p["city"]["type"] == "string" and p["days"]["type"] == "integer"
    assert p["tags"] == {"type": "array", "items": {"type": "string"}, "description": "Labels."}
    assert p["mode"]["enum"] == ["fast", "exact"]
    assert p["ratio"]["anyOf"] == [{"type": "number"}, {"type": "null"}]  # optional with a None default
    assert p["verbose"]["type"] == "boolean"  # no type in the docstring: from the default


def test_numpy_style_types() -> None:
    p = props(numpy_style)
    assert (p["city"]["type"], p["days"]["type"], p["options"]["type"]) == ("string", "integer", "object")
    assert p["tags"]["items"] == {"type": "string"}
    assert p["mode"]["enum"] == ["fast", "exact"]


def test_rest_style_types() -> None:
    p = props(rest_style)
    assert p["city"]["type"] == "string" and p["flag"]["type"] == "boolean" and p["amount"]["type"] == "number"
    assert p["days"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert "type" not in p["anything"] and p["anything"]["description"] == "Whatever."  # unknown: no type


def test_types_from_default_values() -> None:
    def f(a=1, b=2.5, c="x", d=True, e=(1, 2), g=None, h={"k": 1}):  # type: ignore[no-untyped-def]  # noqa: B006
        """Defaults only."""

    p = props(f)
    assert [p[k].get("type") for k in "abcdeg"] == ["integer", "number", "string", "boolean", "array", None]
    assert p["h"]["type"] == "object"


def test_an_annotation_always_wins() -> None:
    def f(count: int, name: str = "x"):  # type: ignore[no-untyped-def]
        """Annotated.

        Args:
            count (str): Says str, but the annotation says int.
            name (int): Says int.
        """

    p = props(f)
    assert p["count"]["type"] == "integer" and p["name"]["type"] == "string"


def test_validation_uses_the_same_types() -> None:
    tool = make_tool(google)
    assert tool.validate({"city": "Oslo", "days": "3", "tags": ["a"], "mode": "fast"}) == {
        "city": "Oslo",
        "days": 3,
        "tags": ["a"],
        "mode": "fast",
    }
    with pytest.raises(ToolArgumentError) as info:
        tool.validate({"city": "Oslo", "days": "three", "tags": "a", "mode": "slow", "verbose": "maybe"})
    problems = str(info.value)
    for name in ("days", "tags", "mode", "verbose"):
        assert name in problems


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("str", str),
        ("string", str),
        ("integer", int),
        ("number", float),
        ("boolean", bool),
        ("dict", dict),
        ("str, optional", str),
        ("int, default 3", int),
        ("list of ints", list[int]),
        ("List[str]", list[str]),
        ("Optional[int]", Optional[int]),
        ("str or int", Union[str, int]),
        ("{'a', 'b'}", Literal["a", "b"]),
        ("", None),
        ("a fancy widget", None),
        ("{'a', 'b'", None),
    ],
)
def test_docstring_type_words(written: str, expected: Any) -> None:
    assert docstring_type(written) == expected
