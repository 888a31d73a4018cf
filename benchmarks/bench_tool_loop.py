"""Tool-loop overhead: guidance_lite vs the same conversation written by hand with the ``openai`` SDK.

A 10-round tool loop (the model asks for one ``get_weather`` call per round, then answers in text) against one local
ScriptedServer with a small per-request latency (20 ms by default), run three ways on the same event loop:

1. guidance_lite, automatic loop: ``{{gen 'answer' tools=tools max_rounds=11}}`` (room for the 10 rounds, so the
   answer comes from a normal ``tool_choice='auto'`` request, as in the other two)
2. guidance_lite, the explicit template loop (``{{#each}}`` + ``callable(answer)`` + ``{{#function}}{{answer()}}``)
3. by hand: ``AsyncOpenAI`` without streaming (a silent guidance_lite run asks for plain answers too), running the
   tool in a thread (as guidance_lite runs sync tools), appending assistant and tool messages.

All three send the same 11 requests with the same bodies (checked before timing). Reported: best-of-N wall time of
one whole conversation, the ratio guidance_lite / hand-written (aim: < 1.1) and the extra time per model call.

Run: ``python benchmarks/bench_tool_loop.py [--quick] [--rounds 10] [--latency 0.02] [--repeat 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
from peers.runs_gl import AUTO_TEMPLATE, LOOP_TEMPLATE
from peers.runs_sdk import hand_written_loop
from peers.scenarios import FINAL_ANSWER, city, get_weather

import guidance_lite as gl
from guidance_lite.testing import ScriptedServer

QUESTION = "What is the weather in each of the cities on my list?"


def make_script(rounds: int) -> Callable[[dict], Any]:
    """The scripted model: one tool call per round while fewer than ``rounds`` results came back, then text."""

    def script(body: dict) -> Any:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
        if done >= rounds or body.get("tool_choice") == "none":
            return FINAL_ANSWER
        return {"tool_calls": [{"id": f"call_{done:04d}", "name": "get_weather", "arguments": {"city": city(done)}}]}

    return script


async def timed(run: Callable[[], Awaitable[Any]]) -> float:
    gc.collect()
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


def _bodies(server: ScriptedServer) -> list[dict]:
    return [r for r in server.requests if r.get("path") == "/v1/chat/completions"]


async def measure(rounds: int, latency: float, repeat: int) -> dict:
    with ScriptedServer(make_script(rounds), latency=latency) as server:
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="not-needed")
        auto = gl.Program(AUTO_TEMPLATE, model=model, silent=True)
        explicit = gl.Program(LOOP_TEMPLATE, model=model, silent=True)
        variables = {"question": QUESTION, "tools": [get_weather], "rounds": rounds}

        runs: dict[str, Callable[[], Awaitable[Any]]] = {
            "guidance_lite auto loop": lambda: auto.arun(**variables),
            "guidance_lite template loop": lambda: explicit.arun(**variables),
            "hand-written openai SDK": lambda: hand_written_loop(
                client, rounds, stream=False, model="scripted-model", question=QUESTION
            ),
        }
        # warm up (clients, connections, tool schemas) and check the three send the same conversation
        sent: dict[str, list[dict]] = {}
        for name, run in runs.items():
            server.clear()
            outcome = await run()
            answer = outcome if isinstance(outcome, str) else outcome["answer"]
            if answer != FINAL_ANSWER:
                raise SystemExit(f"{name}: unexpected final answer {answer!r}")
            # "stream": false and no "stream" mean the same to a server
            sent[name] = [
                {k: v for k, v in b.items() if k != "path" and not (k == "stream" and v is False)}
                for b in _bodies(server)
            ]
        reference = sent["hand-written openai SDK"]
        for name, bodies in sent.items():
            if len(bodies) != rounds + 1:
                raise SystemExit(f"{name}: sent {len(bodies)} requests, expected {rounds + 1}")
            for index, (ours, theirs) in enumerate(zip(bodies, reference)):
                keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
                if keys:
                    shown = {k: (ours.get(k), theirs.get(k)) for k in keys if k != "messages"}
                    raise SystemExit(
                        f"{name}: request #{index} differs from the hand-written loop's in {keys}: "
                        f"{json.dumps(shown, default=str)[:1500]}"
                    )
        times = {name: float("inf") for name in runs}
        for _ in range(repeat):  # interleaved, so drift on the machine affects all three alike; best of N
            for name, run in runs.items():
                times[name] = min(times[name], await timed(run))
        await client.close()
        await model.aclose()
    return times


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (3)")
    ap.add_argument("--rounds", type=int, default=10, help="tool rounds before the final answer (default 10)")
    ap.add_argument("--latency", type=float, default=0.02, help="server latency per request in seconds (0.02)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats; the best is reported (default 10, quick 3)")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    repeat = args.repeat or (3 if args.quick else 10)
    times = asyncio.run(measure(args.rounds, args.latency, repeat))
    baseline = times["hand-written openai SDK"]
    requests = args.rounds + 1
    print(
        f"{args.rounds}-round tool loop, {requests} requests, server latency {args.latency * 1e3:.0f} ms, "
        f"best of {repeat}:"
    )
    summary: dict[str, Any] = {"baseline_s": round(baseline, 4)}
    for name, seconds in times.items():
        ratio = seconds / baseline
        extra = (seconds - baseline) / requests * 1e3
        line = f"  {name:28s} {seconds * 1e3:8.1f} ms"
        if name != "hand-written openai SDK":
            line += f"   ratio {ratio:.3f}   {extra:+.2f} ms per model call"
            summary[name] = round(ratio, 3)
        print(line)
    worst = max(v for k, v in summary.items() if k != "baseline_s")
    print(f"summary: {summary} -> {'OK' if worst < 1.1 else 'ABOVE'} the 1.1 target")
    return summary


if __name__ == "__main__":
    main()
