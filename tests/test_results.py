"""``gl.Results``, what ``program.map`` returns: still the list it was (order, exceptions in their slots), and a table
in notebooks (inputs, captured variables, status, tokens, time, a summary line), read here with an HTML parser;
``to_records`` / ``to_pandas`` give the same rows to code."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from html_tree import Node, parse
from test_display import XSS

import guidance_lite as gl
from guidance_lite.display import CSS
from guidance_lite.results import Results

TEMPLATE = "Capital of {{question}} {{gen 'answer' max_tokens=20}}{{#if fail}}{{explode(question)}}{{/if}}"
TABLE_TAGS = {"div", "span", "style", "table", "thead", "tbody", "tr", "th", "td"}
TABLE_ATTRIBUTES = {"class", "title", "colspan", "rowspan"}


def explode(text: str) -> str:
    raise ValueError(f"cannot answer {text}\nsecond line of the error")


def capitals(**defaults: Any) -> gl.Program:
    model = gl.models.Mock({"France? ": "Paris", "Peru? ": "Lima", "Spain? ": "Madrid"})  # prompt suffix -> reply
    return gl.Program(TEMPLATE, model=model, explode=explode, fail=False, **defaults)


def table(results: Results) -> Node:
    """The parsed table, after checking that the markup holds only the table's own tags and attributes."""
    markup = results._repr_html_()
    builder = parse(markup)
    for tag, attrs in builder.start_tags:
        assert tag in TABLE_TAGS, f"unexpected tag <{tag}>"
        assert {name for name, _ in attrs} <= TABLE_ATTRIBUTES, attrs
    assert "<script" not in markup.lower()
    (style,) = builder.root.find_all(tag="style")
    assert style.text().startswith(CSS)  # display's base style, then the table's own rules
    return builder.root


def rows(root: Node) -> list[list[str]]:
    body = root.find_all(tag="tbody")[0]
    return [[cell.text() for cell in row.find_all(tag="td")] for row in body.find_all(tag="tr")]


def headers(root: Node) -> list[list[str]]:
    return [[cell.text() for cell in row.find_all(tag="th")] for row in root.find_all(tag="thead")[0].children]


# ---- still a list ------------------------------------------------------------------------------------------------
def test_map_returns_results_in_input_order_with_failures_in_their_slots() -> None:
    inputs = [{"question": "France?"}, {"question": "Peru?", "fail": True}, {"question": "Spain?"}]
    results = capitals().map(inputs)
    assert isinstance(results, gl.Results) and isinstance(results, list)
    assert results[0]["answer"] == "Paris" and results[2]["answer"] == "Madrid"
    assert isinstance(results[1], gl.TemplateRuntimeError)
    assert results == [results[0], results[1], results[2]] and len(results) == 3
    assert results.inputs == inputs
    assert all(isinstance(s, float) and s >= 0 for s in results.seconds)
    assert results.wall_time is not None and results.wall_time >= max(results.seconds)


async def test_amap_returns_results_too() -> None:
    results = await capitals().amap([{"question": "Spain?"}])
    assert isinstance(results, gl.Results) and results[0]["answer"] == "Madrid"
    assert (await capitals().amap([])).summary() == "0 runs: 0 ok, 0 failed · 0 tokens · wall time 0 ms"


def test_results_need_one_input_and_one_duration_per_item() -> None:
    with pytest.raises(ValueError, match="one input and one duration per item: 2 items, 1 inputs"):
        Results([1, 2], inputs=[{}])


# ---- the table -------------------------------------------------------------------------------------------------------
def test_the_table_has_a_row_per_input_with_inputs_outputs_status_tokens_and_time() -> None:
    results = capitals().map([{"question": "France?"}, {"question": "Peru?", "fail": True}, {"question": "Spain?"}])
    root = table(results)
    summary = root.find_all("gl-summary")[0].text()
    assert summary.startswith("3 runs: 2 ok, 1 failed · ~") and " tokens · wall time " in summary
    assert root.find_all("gl-bad")[0].text() == "1 failed"  # failures stand out
    assert headers(root) == [["#", "inputs", "outputs", "status", "tokens", "time"], ["question", "fail", "answer"]]
    body = rows(root)
    assert [row[:5] for row in body] == [
        ["0", "France?", "", "Paris", "ok"],
        ["1", "Peru?", "True", "Lima", "TemplateRuntimeError: ValueError: cannot answer Peru?"],  # first line only
        ["2", "Spain?", "", "Madrid", "ok"],
    ]
    tokens = [int(row[5].lstrip("~")) for row in body]
    assert tokens == [results.usage(i).total_tokens for i in range(3)] and all(t > 0 for t in tokens)
    assert all(row[6].endswith(" ms") or row[6].endswith(" s") for row in body)
    (failed,) = root.find_all("gl-failed")
    assert "second line of the error" in failed.attrs["title"]  # the whole error on hover


def test_program_defaults_are_not_outputs_unless_the_run_changed_them() -> None:
    program = gl.Program("{{gen 'a'}}{{set 'count' count + 1}}", model=gl.models.Mock("x"), count=1, unit="celsius")
    results = program.map([{}, {"unit": "kelvin"}])
    assert results.outputs(0) == {"a": "x", "count": 2}  # `unit` kept its default: not an output
    assert headers(table(results))[1] == ["unit", "count", "a"]
    assert rows(table(results))[1][1:4] == ["kelvin", "2", "x"]


def test_a_paused_run_is_marked_paused() -> None:
    results = gl.Program("{{await 'reply'}}", model=gl.models.Mock()).map([{}])
    assert results.status(0) == ("paused", "waiting for 'reply'")
    assert rows(table(results))[0][1] == "paused: waiting for 'reply'"
    assert results.summary().startswith("1 run: 0 ok, 0 failed, 1 paused")
    results[0].cancel()


def test_hostile_inputs_and_outputs_are_text() -> None:
    payload = "".join(XSS)
    program = gl.Program(
        "{{gen 'out'}}{{#if fail}}{{explode(x)}}{{/if}}", model=gl.models.Mock(payload), explode=explode
    )
    results = program.map([{"x": payload, "fail": False}, {"x": payload, "fail": True}] * 2)
    assert [results.status(i)[0] for i in range(4)] == ["ok", "error"] * 2
    results.max_cell_chars = 10_000
    root = table(results)
    texts = [cell for row in rows(root) for cell in row]
    assert texts.count(payload) == 8  # each input and each output (failed runs' too) verbatim, as text
    results.max_cell_chars = 20
    root = table(results)
    titles = [td.attrs["title"] for td in root.find_all(tag="td") if "title" in td.attrs]
    assert payload in titles  # a cut value round-trips whole through its tooltip


def test_a_hostile_column_name_is_text() -> None:
    results = Results([RuntimeError("x")], inputs=[{XSS[0]: 1}], seconds=[0.5])
    assert headers(table(results))[1] == [XSS[0]]
    assert rows(table(results))[0] == ["0", "1", "RuntimeError: x", "", "500 ms"]


def test_big_batches_show_max_rows_and_cut_long_values() -> None:
    long_answer = "word " * 100
    results = gl.Program("{{gen 'a'}}", model=gl.models.Mock(long_answer)).map([{"i": i} for i in range(120)])
    body = rows(table(results))
    assert len(body) == Results.max_rows + 1
    assert body[-1] == ["… 70 more rows (all of them: .to_records() or .to_pandas())"]
    cell = body[0][2]
    assert len(cell) == Results.max_cell_chars and cell.endswith("…") and long_answer.startswith(cell[:-1])
    full = [td.attrs.get("title") for td in table(results).find_all(tag="td")]
    assert long_answer in full
    results.max_rows = 3
    assert len(rows(table(results))) == 4


def test_an_item_added_later_shows_with_no_inputs() -> None:
    results = capitals().map([{"question": "Spain?"}])
    results.append(ValueError("added by hand"))
    assert rows(table(results))[1] == ["1", "", "", "ValueError: added by hand", "", ""]
    assert results.to_records()[1] == {
        "status": "error",
        "error": "ValueError: added by hand",
        "tokens": None,
        "seconds": None,
    }


def test_line_breaks_in_a_cell_are_marked() -> None:
    results = Results([ValueError("a")], inputs=[{"text": "one\ntwo"}])
    assert rows(table(results))[0][1] == "one⏎two"


# ---- as data ---------------------------------------------------------------------------------------------------------
def test_records_hold_inputs_outputs_and_status_with_prefixes() -> None:
    results = capitals().map([{"question": "France?"}, {"question": "Peru?", "fail": True}])
    first, second = results.to_records()
    assert first == {
        "inputs.question": "France?",
        "outputs.answer": "Paris",
        "status": "ok",
        "error": None,
        "tokens": results[0].usage.total_tokens,
        "seconds": results.seconds[0],
    }
    assert second["status"] == "error" and second["error"] == "TemplateRuntimeError: ValueError: cannot answer Peru?"
    assert second["outputs.answer"] == "Lima"  # what the failed run captured before failing (err.partial)
    assert second["inputs.fail"] is True


def test_a_variable_named_like_a_field_stays_apart() -> None:
    results = gl.Program("{{set 'status' 'mine'}}", model=gl.models.Mock()).map([{"error": "given"}])
    (record,) = results.to_records()
    assert record["outputs.status"] == "mine" and record["inputs.error"] == "given"
    assert record["status"] == "ok" and record["error"] is None


def test_to_pandas_gives_a_dataframe_with_every_column() -> None:
    import pandas  # in the test extra (optional for users: the error without it is tested below)

    results = capitals().map([{"question": "France?"}, {"question": "Peru?", "fail": True}])
    frame = results.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == [
        "inputs.question",
        "inputs.fail",
        "outputs.answer",
        "status",
        "error",
        "tokens",
        "seconds",
    ]
    assert frame["outputs.answer"].tolist() == ["Paris", "Lima"]
    assert frame["status"].tolist() == ["ok", "error"]


def test_to_pandas_without_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'guidance_lite\[pandas\]'"):
        Results([]).to_pandas()


def test_a_large_table_renders_fast() -> None:
    import time

    results = Results(
        [ValueError(f"e{i}") for i in range(100_000)], inputs=[{"i": i} for i in range(100_000)], wall_time=1.0
    )
    started = time.perf_counter()
    html = results._repr_html_()
    assert time.perf_counter() - started < 2.0
    assert (
        "… 99,950 more rows" in html
        and results.summary() == "100,000 runs: 0 ok, 100,000 failed · 0 tokens · wall time 1.00 s"
    )
