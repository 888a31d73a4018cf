"""Batch throughput: programs (a user block and an assistant gen each) through ``gl.models.OpenAI`` against a local
ScriptedServer that answers every request after a fixed latency.

With latency L and concurrency C the ideal is C / L programs per second (the server is never the bottleneck: it
answers each request on its own thread). The ratio measured / ideal shows what the library itself costs per program:
close to 1 at low concurrency; at high concurrency the per-program CPU work (template, HTTP client, SSE parsing)
becomes the limit. Concurrency 1 runs fewer programs (the time for 1,000 is extrapolated, marked ``~``).

    python benchmarks/bench_batch.py            # 1,000 programs at concurrency 10 and 100, 40 at 1
    python benchmarks/bench_batch.py --quick    # a smaller run for a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout, installed or not

import guidance_lite as gl
from guidance_lite.testing import ScriptedServer

TEMPLATE = (
    "{{#user}}Question {{i}}: what is {{i}} squared?{{/user}}{{#assistant}}{{gen 'answer' max_tokens=20}}{{/assistant}}"
)
FULL_RUNS = {1: 40, 10: 1000, 100: 1000}
QUICK_RUNS = {1: 8, 10: 100, 100: 300}


@dataclass
class Measurement:
    concurrency: int
    programs: int
    seconds: float
    latency: float

    @property
    def throughput(self) -> float:
        return self.programs / self.seconds

    @property
    def ideal(self) -> float:
        return self.concurrency / self.latency

    @property
    def ratio(self) -> float:
        return self.throughput / self.ideal


def answer(body: dict) -> str:
    """The server's reply names the question, so each result can be checked against its input."""
    question = body["messages"][-1]["content"]
    number = int(question.split(":")[0].removeprefix("Question "))
    return f"{number} squared is {number * number}."


def measure(program: gl.Program, concurrency: int, programs: int, latency: float) -> Measurement:
    inputs = [{"i": i} for i in range(programs)]
    started = time.perf_counter()
    results = program.map(inputs, concurrency=concurrency)
    seconds = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise SystemExit(
            f"{len(failures)} of {programs} programs failed at concurrency {concurrency}; first: {failures[0]}"
        )
    for i, result in enumerate(results):
        if result["answer"] != f"{i} squared is {i * i}.":
            raise SystemExit(f"program {i} got the wrong answer {result['answer']!r} (results out of order?)")
    return Measurement(concurrency, programs, seconds, latency)


def raw_sdk_batch(base_url: str, concurrency: int, programs: int) -> float:
    """Seconds for the same requests sent with the bare async SDK at the same concurrency (no templates): the
    baseline for what guidance_lite adds on top of the HTTP client."""
    import asyncio

    import openai

    async def run() -> float:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with gate:
                stream = await client.chat.completions.create(
                    model="bench-model",
                    stream=True,
                    stream_options={"include_usage": True},
                    max_tokens=20,
                    temperature=0.0,
                    messages=[{"role": "user", "content": f"Question {i}: what is {i} squared?"}],
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            await asyncio.gather(*(one(i) for i in range(min(concurrency, programs))))  # warm the pool
            started = time.perf_counter()
            answers = await asyncio.gather(*(one(i) for i in range(programs)))
            elapsed = time.perf_counter() - started
        finally:
            await client.close()
        assert answers[-1] == f"{programs - 1} squared is {(programs - 1) ** 2}."
        return elapsed

    return asyncio.run(run())


def _serve(latency: float, conn) -> None:  # runs in the server process
    with ScriptedServer(answer, latency=latency) as server:
        conn.send(server.base_url)
        conn.recv()  # until the parent says stop


def raw_round_trip(base_url: str, repeats: int = 7) -> float:
    """Median seconds of one streamed request with the bare async SDK (what ``gl.models.OpenAI`` uses underneath):
    the transport's own cost, before any template work."""
    import asyncio

    import openai

    async def run() -> list[float]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        times = []
        try:
            for i in range(repeats):
                started = time.perf_counter()
                stream = await client.chat.completions.create(
                    model="bench-model",
                    stream=True,
                    stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": f"Question {i}: what is {i} squared?"}],
                )
                async for _ in stream:
                    pass
                times.append(time.perf_counter() - started)
        finally:
            await client.close()
        return times

    return statistics.median(asyncio.run(run()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer programs (a smoke test, a few seconds)")
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request in seconds")
    args = parser.parse_args(argv)
    runs = QUICK_RUNS if args.quick else FULL_RUNS
    rows: list[Measurement] = []
    sdk_seconds: dict[int, float] = {}
    # the server runs in its own process, as a real one would: it must not compete with the client for the GIL
    import multiprocessing

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(args.latency, child), daemon=True)
    server.start()
    try:
        base_url = parent.recv()
        model = gl.models.OpenAI("bench-model", base_url=base_url, api_key="unused")
        program = gl.Program(TEMPLATE, model=model)
        measure(program, 10, 20, args.latency)  # warm up: imports, client, connection pool
        for concurrency, programs in runs.items():
            rows.append(measure(program, concurrency, programs, args.latency))
            sdk_seconds[concurrency] = raw_sdk_batch(base_url, concurrency, programs)
        round_trip = raw_round_trip(base_url)
    finally:
        parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()
    print(
        f"batch throughput: {TEMPLATE.count('{{gen')} gen per program, server latency {args.latency * 1000:.0f} ms "
        "(server in its own process)"
    )
    print(
        f"bare async SDK round trip (median, sequential): {round_trip * 1000:.1f} ms "
        f"({(round_trip - args.latency) * 1000:+.1f} ms over the server latency)"
    )
    print(
        f"{'concurrency':>11}  {'programs':>8}  {'seconds':>8}  {'programs/s':>10}  {'ideal/s':>8}  {'ratio':>6}"
        f"  {'time for 1,000':>14}  {'bare SDK s':>10}  {'vs SDK':>6}"
    )
    for row in rows:
        per_thousand = 1000 / row.throughput
        mark = "" if row.programs == 1000 else "~"
        sdk = sdk_seconds[row.concurrency]
        print(
            f"{row.concurrency:>11}  {row.programs:>8}  {row.seconds:>8.2f}  {row.throughput:>10.1f}  "
            f"{row.ideal:>8.0f}  {row.ratio:>6.2f}  {mark + f'{per_thousand:.1f} s':>14}  {sdk:>10.2f}  "
            f"{row.seconds / sdk:>6.2f}"
        )
    print(
        "ratio = measured / ideal (concurrency / latency); vs SDK = guidance_lite time / the same requests sent "
        "with the bare async openai SDK at the same concurrency, in this run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
