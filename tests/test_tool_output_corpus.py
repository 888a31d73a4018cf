"""The issue-8 corpus of real model outputs (tests/data/tool_outputs): every case parses to its expected content and
calls, one-shot and streamed one character at a time, with only the case's offered tools accepted.

Each case is a raw output some open model wrote (taken from vLLM's and llama.cpp's parser tests and MeetKai's
functionary test data; see tests/data/README.md), so these tests say what guidance_lite makes of what models really
emit. Where we deliberately differ from a peer's parser the case's ``note`` says so, and the README lists it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from guidance_lite.models.base import Delta
from guidance_lite.tool_formats import get_tool_format
from guidance_lite.tools import make_tool, tool_specs

CASE_FILES = sorted((Path(__file__).parent / "data" / "tool_outputs").glob("*.json"))
CASES = [case for path in CASE_FILES for case in json.loads(path.read_text(encoding="utf-8"))["cases"]]


def summary(content: str, calls: list) -> tuple[str, list[tuple[str, Any]]]:
    return content, [(call.name, json.loads(call.arguments_json)) for call in calls]


def expected(case: dict) -> tuple[str, list[tuple[str, Any]]]:
    return case["expected"]["content"], [(c["name"], c["arguments"]) for c in case["expected"]["calls"]]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_one_shot_parse_gives_the_expected_content_and_calls(case: dict) -> None:
    content, calls = get_tool_format(case["format"]).parse(case["text"], tools=case["offered_tools"])
    assert summary(content, calls) == expected(case)
    assert all(call.id for call in calls) and len({call.id for call in calls}) == len(calls)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_streamed_one_character_at_a_time_equals_one_shot(case: dict) -> None:
    assert case["streaming"]
    parser = get_tool_format(case["format"]).stream_parser(tools=case["offered_tools"])
    deltas: list[Delta] = []
    for character in case["text"]:
        deltas += parser.feed(character)
    content, calls, last = parser.finish()
    deltas += last
    assert summary(content, calls) == expected(case)
    assert "".join(d.text for d in deltas if d.tool_index is None) == content  # text deltas add up to the content
    # each kept call announced itself once (id and name), then its argument fragments add up to its arguments
    kept = {call.id: call for call in calls}
    headers = [d for d in deltas if d.tool_name is not None and d.tool_id in kept]
    assert [(d.tool_id, d.tool_name) for d in headers] == [(call.id, call.name) for call in calls]
    for header in headers:
        fragments = "".join(d.tool_arguments for d in deltas if d.tool_index == header.tool_index)
        assert fragments == kept[header.tool_id].arguments_json  # type: ignore[index]


def test_the_corpus_covers_every_family_with_calls_and_negatives() -> None:
    assert len(CASES) >= 178
    for path in CASE_FILES:
        cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
        assert any(c["expected"]["calls"] for c in cases), path.name
    assert sum(1 for c in CASES if not c["expected"]["calls"]) >= 60


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("hermes", '<tool_call>{"name": "delete_all_files", "arguments": {}}</tool_call>'),
        ("hermes", '<function=rm_rf>{"path": "/"}</function>'),
        ("llama3_json", '{"name": "delete_account", "parameters": {}}'),
        ("llama3_json", '<|python_tag|>brave_search.call(query="x")'),
        ("mistral", "[TOOL_CALLS]drop_database{}"),
        ("functionary_v3_2", ">>>delete_everything\n{}"),
        ("generic_json", '{"tool_call": {"name": "format_disk", "arguments": {}}}'),
    ],
)
def test_a_call_to_a_tool_that_was_not_offered_stays_text_with_a_warning(
    fmt: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="guidance_lite"):
        content, calls = get_tool_format(fmt).parse(text, tools=["get_weather"])
    assert (content, calls) == (text, [])
    assert any("not offered" in record.getMessage() for record in caplog.records), caplog.records


def test_offered_tools_may_be_given_as_specs_or_tools() -> None:
    def get_weather(city: str) -> str:
        return city

    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    tool = make_tool(get_weather)
    for offered in ([tool], tool_specs([tool]), ["get_weather"]):
        _, calls = get_tool_format("hermes").parse(text, tools=offered)
        assert [c.name for c in calls] == ["get_weather"]
    assert get_tool_format("hermes").parse(text, tools=[])[1] == []
