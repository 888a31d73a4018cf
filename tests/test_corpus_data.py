"""The issue-8 corpus in tests/data is well-formed: every case and server shape says what it needs to be measured.

These tests check the data only (schema, sources, bodies that parse, expectations consistent with the offered tools);
how well the parsers and the OpenAI backend do on it is measured by ``benchmarks/corpus_baseline.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guidance_lite.tool_formats import FORMATS

DATA = Path(__file__).parent / "data"
CASE_FILES = sorted((DATA / "tool_outputs").glob("*.json"))
SIDECARS = sorted((DATA / "server_shapes").glob("*.expected.json"))
CASE_KEYS = {"id", "source", "model", "format", "offered_tools", "text", "expected", "streaming", "note"}
SHAPE_KEYS = {"id", "server", "source", "recorded", "transport", "body", "then", "offered_tools", "expected", "note"}


def all_cases() -> list[dict]:
    return [case for path in CASE_FILES for case in json.loads(path.read_text(encoding="utf-8"))["cases"]]


def test_the_corpus_is_big_enough_and_ids_are_unique() -> None:
    cases = all_cases()
    assert len(cases) >= 150
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert {case["format"] for case in cases} == set(FORMATS)  # every parser has cases


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_tool_output_cases_are_complete(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["family"] == path.stem and data["parser"] in FORMATS and data["description"]
    for case in data["cases"]:
        assert set(case) == CASE_KEYS, case["id"]
        assert case["format"] == data["parser"], case["id"]
        assert case["source"].strip() and case["model"].strip() and case["note"].strip(), case["id"]
        assert isinstance(case["text"], str) and case["text"], case["id"]
        assert isinstance(case["streaming"], bool), case["id"]
        expected = case["expected"]
        assert set(expected) == {"content", "calls"} and isinstance(expected["content"], str), case["id"]
        for call in expected["calls"]:
            assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict), case["id"]
            assert call["name"] in case["offered_tools"], f"{case['id']}: {call['name']} is not offered"
        if not expected["calls"] and "-neg-" in case["id"]:
            assert expected["content"] == case["text"], f"{case['id']}: a negative case must stay text verbatim"


@pytest.mark.parametrize("path", SIDECARS, ids=[p.name.removesuffix(".expected.json") for p in SIDECARS])
def test_server_shapes_have_parsable_bodies_and_complete_expectations(path: Path) -> None:
    shape = json.loads(path.read_text(encoding="utf-8"))
    assert set(shape) == SHAPE_KEYS and shape["id"] == path.name.removesuffix(".expected.json")
    assert shape["transport"] in ("json", "sse") and isinstance(shape["recorded"], bool) and shape["source"].strip()
    for name in [shape["body"], *shape["then"]]:
        raw = (DATA / "server_shapes" / name).read_bytes()
        if name.endswith(".sse"):
            events = [e for e in raw.decode("utf-8").split("\n\n") if e]
            assert all(e.startswith("data: ") for e in events), name
            assert events[-1] == "data: [DONE]", name
            for event in events[:-1]:
                assert json.loads(event[len("data: ") :])["object"] == "chat.completion.chunk", name
        else:
            assert json.loads(raw)["object"] == "chat.completion", name
    expected = shape["expected"]
    assert set(expected) == {"content", "tool_calls", "finish_reason", "usage"}
    for call in expected["tool_calls"]:
        assert set(call) == {"name", "arguments", "id"} and call["name"] in shape["offered_tools"]
        assert isinstance(call["arguments"], dict) and (call["id"] is None or call["id"])
    assert expected["finish_reason"] == ("tool_calls" if expected["tool_calls"] else "stop")
    if expected["usage"] is not None:
        usage = expected["usage"]
        assert usage["prompt_tokens"] + usage["completion_tokens"] == usage["total_tokens"]
