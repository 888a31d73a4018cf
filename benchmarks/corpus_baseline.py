"""How much of the issue-8 corpus (``tests/data``) the parsers and the OpenAI backend get right.

Not a test: a measuring script whose numbers go in the issue's closing note. Two parts:

1. ``tests/data/tool_outputs/*.json``: every case runs through its format's parser one-shot
   (``get_tool_format(name).parse(text)``) and streamed one character at a time (``stream_parser()``, ``feed``,
   ``finish``), with the case's ``offered_tools`` passed as ``tools=``, as ``tests/test_tool_output_corpus.py`` does.
   A case passes when both give the expected content and calls (names and parsed arguments) and the streamed text
   deltas add up to the content.
2. ``tests/data/server_shapes/*.expected.json``: each recorded body or SSE stream is served byte for byte by a raw
   ``http.server`` on 127.0.0.1 (``tests/replay.py``) to the real ``openai`` SDK inside ``gl.models.OpenAI``, as
   ``tests/test_server_shapes.py`` does:
   - model: one request; the final ``Completion`` must have the sidecar's content, tool calls (name, arguments, and
     the server's id when the sidecar names one), finish_reason and usage;
   - program: a template tool loop (``{{gen}}`` with tools, ``{{#function}}{{answer()}}{{/function}}``) replays the
     body and its ``then`` bodies and ends with a recorded text answer; it passes when the program finishes and every
     follow-up request is one a strict server accepts (non-empty unique ids, each call answered exactly once) and
     keeps the server's ids where the sidecar names them.

Run: ``python benchmarks/corpus_baseline.py [--formats-only | --servers-only] [--verbose]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # replay.py: the tests' replay server

from replay import FINAL_TEXT, LOOP_TEMPLATE, QUESTION, ReplayServer, strict_server_problems

import guidance_lite as gl
from guidance_lite.tool_formats import get_tool_format

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TOOL_OUTPUTS = DATA / "tool_outputs"
SERVER_SHAPES = DATA / "server_shapes"


# ---------------------------------------------------------------------------------------------------------------------
# Part 1: tool-format parsers
# ---------------------------------------------------------------------------------------------------------------------
def _summary(content: str, calls: list) -> tuple[str, list]:
    summary = []
    for call in calls:
        try:
            arguments: Any = json.loads(call.arguments_json or "{}")
        except ValueError:
            arguments = f"<not JSON: {call.arguments_json!r}>"
        summary.append((call.name, arguments))
    return content, summary


def _expected(case: dict) -> tuple[str, list]:
    return case["expected"]["content"], [(c["name"], c["arguments"]) for c in case["expected"]["calls"]]


def _difference(label: str, got: tuple[str, list], want: tuple[str, list]) -> Optional[str]:
    if got[0] != want[0]:
        return f"{label}: content {got[0]!r:.70} != {want[0]!r:.70}"
    if got[1] != want[1]:
        got_calls, want_calls = (json.dumps(calls, ensure_ascii=False) for calls in (got[1], want[1]))
        return f"{label}: calls {got_calls:.90} != {want_calls:.90}"
    return None


def run_format_case(case: dict) -> Optional[str]:
    """None when the case passes, else why it fails (first difference found)."""
    fmt = get_tool_format(case["format"])
    want = _expected(case)
    try:
        one_shot = _summary(*fmt.parse(case["text"], tools=case["offered_tools"]))
    except Exception as err:  # a parser must never raise on model output
        return f"one-shot raised {type(err).__name__}: {err}"
    problem = _difference("one-shot", one_shot, want)
    if problem or not case.get("streaming", True):
        return problem
    try:
        parser = fmt.stream_parser(tools=case["offered_tools"])
        deltas = []
        for character in case["text"]:
            deltas += parser.feed(character)
        content, calls, last = parser.finish()
        deltas += last
    except Exception as err:
        return f"streaming raised {type(err).__name__}: {err}"
    streamed = _summary(content, calls)
    problem = _difference("streamed", streamed, want)
    if problem:
        return problem
    text_deltas = "".join(d.text for d in deltas if d.tool_index is None)
    if text_deltas != content:
        return f"streamed text deltas {text_deltas!r:.70} != final content {content!r:.70}"
    return None


def run_formats(verbose: bool) -> tuple[int, int]:
    logging.getLogger("guidance_lite").setLevel(logging.ERROR)  # parsers warn on malformed calls; that is expected here
    files = sorted(TOOL_OUTPUTS.glob("*.json"))
    print(f"== tool formats ({len(files)} files in {TOOL_OUTPUTS.relative_to(DATA.parent.parent)})")
    print(f"{'family':<20} {'parser':<18} {'cases':>5} {'pass':>5} {'calls':>11} {'text-only':>11}")
    total = passed = 0
    failures: list[tuple[str, str]] = []
    by_parser: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        counts = {"calls": [0, 0], "text": [0, 0]}
        for case in data["cases"]:
            problem = run_format_case(case)
            kind = "calls" if case["expected"]["calls"] else "text"
            counts[kind][0] += 1
            counts[kind][1] += problem is None
            by_parser[case["format"]][0] += 1
            by_parser[case["format"]][1] += problem is None
            if problem:
                failures.append((case["id"], problem))
        cases = counts["calls"][0] + counts["text"][0]
        ok = counts["calls"][1] + counts["text"][1]
        total += cases
        passed += ok
        print(
            f"{data['family']:<20} {data['parser']:<18} {cases:>5} {ok:>5} "
            f"{counts['calls'][1]:>5}/{counts['calls'][0]:<5} {counts['text'][1]:>5}/{counts['text'][0]:<5}"
        )
    print(f"{'total':<39} {total:>5} {passed:>5}")
    print("per parser: " + ", ".join(f"{name} {ok}/{n}" for name, (n, ok) in sorted(by_parser.items())))
    if failures:
        print(f"failing cases ({len(failures)}):")
        for case_id, problem in failures:
            print(f"  {case_id}" + (f"  -- {problem}" if verbose else ""))
    return passed, total


# ---------------------------------------------------------------------------------------------------------------------
# Part 2: server shapes through the real SDK
# ---------------------------------------------------------------------------------------------------------------------
def _accept_anything(**arguments: Any) -> dict:
    return {"ok": True, "arguments": arguments}


def _tools(names: list[str]) -> list:
    return [
        gl.Tool(name, _accept_anything, description=f"{name} (replay)", parameters={"type": "object", "properties": {}})
        for name in names
    ]


def _model(server: ReplayServer) -> Any:
    return gl.models.OpenAI("replay-model", base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=10)


async def _complete(model: Any, shape: dict) -> Any:
    request = gl.models.GenRequest(
        messages_fn=lambda: [{"role": "user", "content": QUESTION}],
        tools=_tools(shape["offered_tools"]) or None,
        stream=shape["transport"] == "sse",
    )
    final = None
    try:
        async for item in model.stream(request):
            if isinstance(item, gl.models.Completion):
                final = item
    finally:
        await model.aclose()
    return final


def check_model_level(shape: dict) -> Optional[str]:
    expected = shape["expected"]
    with ReplayServer([shape["body"]]) as server:
        try:
            completion = asyncio.run(_complete(_model(server), shape))
        except Exception as err:
            return f"raised {type(err).__name__}: {str(err)[:120]}"
    choice = completion.choices[0]
    if choice.text != expected["content"]:
        return f"content {choice.text!r:.60} != {expected['content']!r:.60}"
    got_calls, want_calls = choice.tool_calls, expected["tool_calls"]
    if [c.name for c in got_calls] != [c["name"] for c in want_calls]:
        return f"tool names {[c.name for c in got_calls]} != {[c['name'] for c in want_calls]}"
    for got, want in zip(got_calls, want_calls):
        try:
            arguments = got.arguments
        except Exception as err:
            return (
                f"arguments of {got.name} unusable ({type(err).__name__}: {str(err)[:60]}): {got.arguments_json!r:.60}"
            )
        if arguments != want["arguments"]:
            return f"arguments {arguments} != {want['arguments']}"
        if want["id"] is not None and got.id != want["id"]:
            return f"id {got.id!r} != server id {want['id']!r}"
        if not got.id:
            return f"call {got.name} has no id"
    if want_calls and len({c.id for c in got_calls}) != len(got_calls):
        return f"ids not unique: {[c.id for c in got_calls]}"
    if choice.finish_reason != expected["finish_reason"]:
        return f"finish_reason {choice.finish_reason!r} != {expected['finish_reason']!r}"
    usage = completion.usage
    if expected["usage"] is not None:
        got_usage = (
            None
            if usage is None
            else {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            }
        )
        if got_usage != expected["usage"] or usage.estimated:
            return f"usage {got_usage} != {expected['usage']}"
    elif usage is None:
        return "no usage (expected an estimate)"
    return None


def check_program_level(shape: dict) -> Optional[str]:
    expected = shape["expected"]
    turns = [shape["body"], *shape.get("then", [])]
    has_calls = bool(expected["tool_calls"])
    bodies = turns + ([FINAL_TEXT[shape["transport"]]] if has_calls else [])
    program = gl.Program(LOOP_TEMPLATE, silent=True)

    async def run(model: Any) -> Any:
        try:
            return await program.arun(
                model=model,
                question=QUESTION,
                tools=_tools(shape["offered_tools"]),
                rounds=len(bodies),
                streamed=shape["transport"] == "sse",
            )
        finally:
            await model.aclose()

    with ReplayServer(bodies) as server:
        try:
            result = asyncio.run(run(_model(server)))
        except Exception as err:
            return f"raised {type(err).__name__}: {str(err).splitlines()[0][:140]}"
        requests = server.requests
    if len(requests) != len(bodies):
        return f"{len(requests)} requests for {len(bodies)} recorded turns"
    for number, request in enumerate(requests[1:], start=2):
        problems = strict_server_problems(request.get("messages") or [])
        if problems:
            return f"request {number} would be rejected: {problems[0]}"
    if has_calls:
        sent = next(m for m in requests[1]["messages"] if m.get("tool_calls"))
        for call, want in zip(sent["tool_calls"], expected["tool_calls"]):
            if want["id"] is not None and call["id"] != want["id"]:
                return f"follow-up lost the server's id {want['id']!r} (sent {call['id']!r})"
            if json.loads(call["function"]["arguments"]) != want["arguments"]:
                return f"follow-up sent arguments {call['function']['arguments']!r:.60}"
    if not has_calls and str(result["answer"]) != expected["content"]:
        return f"answer {str(result['answer'])!r:.60} != {expected['content']!r:.60}"
    return None


def run_servers(verbose: bool) -> tuple[int, int, int]:
    sidecars = sorted(SERVER_SHAPES.glob("*.expected.json"))
    print(
        f"\n== server shapes ({len(sidecars)} in {SERVER_SHAPES.relative_to(DATA.parent.parent)}), replayed through "
        f"the openai SDK into gl.models.OpenAI"
    )
    print(f"{'shape':<56} {'transport':<9} {'model':<6} {'program':<7}")
    model_ok = program_ok = 0
    failures: list[tuple[str, str, str]] = []
    for path in sidecars:
        shape = json.loads(path.read_text(encoding="utf-8"))
        model_problem = check_model_level(shape)
        program_problem = check_program_level(shape)
        model_ok += model_problem is None
        program_ok += program_problem is None
        print(
            f"{shape['id']:<56} {shape['transport']:<9} {'ok' if model_problem is None else 'FAIL':<6} "
            f"{'ok' if program_problem is None else 'FAIL':<7}"
        )
        for level, problem in (("model", model_problem), ("program", program_problem)):
            if problem:
                failures.append((shape["id"], level, problem))
    print(f"{'total':<56} {'':<9} {model_ok}/{len(sidecars)}  {program_ok}/{len(sidecars)}")
    if failures and verbose:
        print("why:")
        for shape_id, level, problem in failures:
            print(f"  {shape_id} [{level}] -- {problem}")
    return model_ok, program_ok, len(sidecars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--formats-only", action="store_true", help="only the tool-format corpus")
    group.add_argument("--servers-only", action="store_true", help="only the server shapes")
    parser.add_argument("--verbose", "-v", action="store_true", help="say why each failing case fails")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="tiktoken")  # usage estimates for a made-up model name: not measured here
    if not args.servers_only:
        run_formats(args.verbose)
    if not args.formats_only:
        run_servers(args.verbose)


if __name__ == "__main__":
    main()
