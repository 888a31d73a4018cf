"""Same-run peers benchmark (issue 10): guidance_lite against kani, the bare openai SDK (httpx and aiohttp transports,
streaming and plain) and raw aiohttp, on one fast scripted OpenAI-compatible server in its own process, every client
in its own process and environment. Every figure is a median of interleaved runs and is reported as a ratio against
the others measured in the same run:

- batch: single-turn programs at concurrency 1, 10 and 100, 50 ms latency: programs/s, fraction of ideal
  (concurrency / latency), client CPU ms per program, and the server's CPU (to show it is not the bottleneck);
- time from request to the first text event, a 200-word answer, 20 ms latency: ``program.stream()``,
  ``program.astream()`` and the raw SDK (the events sent as one burst, and paced);
- ``import guidance_lite`` against ``import kani`` (fresh interpreters);
- a 10-round tool loop, 20 ms latency: guidance_lite's two loop styles, kani, the SDK by hand.

The peers' environments are built on first use under ``benchmarks/.envs/`` (git-ignored; a minute or two, not
counted); a peer that can't be installed is skipped with a note. guidance_lite runs from this interpreter and this
checkout. A full run appends its section to ``benchmarks/RESULTS.md``.

    python benchmarks/bench_peers.py              # full: 5 interleaved rounds, 1,000 programs at c=100, profiles
    python benchmarks/bench_peers.py --quick      # smoke run: 3 rounds, fewer programs, no profile, not recorded
    python benchmarks/bench_peers.py --only batch --no-record    # one section (batch, first_text, imports, tool_loop)

Profiles (full runs, or ``--profile``): cProfile of guidance_lite's batch at the top concurrency (saved under
``benchmarks/.profiles/``), a probe counting the stream chunks guidance_lite processes before the consumer gets the
first text event, and ``-X importtime`` of ``import guidance_lite``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the peers package beside this file

from peers import envs
from peers.measure import (
    BENCH_DIR,
    PROJECT,
    REPO_ROOT,
    Client,
    ServerProcess,
    Session,
    child_env,
    import_seconds,
)
from peers.profile_gl import import_profile
from peers.report import BatchCell, Report, Results, Timing

RESULTS_FILE = BENCH_DIR / "RESULTS.md"
PROFILE_DIR = BENCH_DIR / ".profiles"
RESULTS_HEADER = """# Benchmark results

Sections appended by `python benchmarks/bench_peers.py` (the same-run peers benchmark of issue 10), newest last.
Every figure is a median of interleaved runs in one run of the script; compare ratios, not absolute figures, across
sections (the machine and its load differ).
"""

BATCH_CLIENTS = [
    Client("gl", "guidance_lite (program.amap)", PROJECT, "runs_gl", "default", "guidance_lite"),
    Client("gl-plain", "guidance_lite, gen stream=False", PROJECT, "runs_gl", "plain", "guidance_lite"),
    Client("gl-processes", "guidance_lite, map(processes=2)", PROJECT, "runs_gl", "processes", "guidance_lite"),
    Client("sdk-httpx-stream", "SDK streaming (httpx)", "openai", "runs_sdk", "httpx-stream", "baseline"),
    Client("sdk-httpx-plain", "SDK plain (httpx)", "openai", "runs_sdk", "httpx-plain", "baseline"),
    Client("sdk-aiohttp-stream", "SDK streaming (aiohttp)", "openai", "runs_sdk", "aiohttp-stream", "baseline"),
    Client("sdk-aiohttp-plain", "SDK plain (aiohttp)", "openai", "runs_sdk", "aiohttp-plain", "baseline"),
    Client("kani-httpx", "kani (default client)", "kani", "runs_kani", "httpx", "peer"),
    Client("kani-aiohttp", "kani (aiohttp client)", "kani", "runs_kani", "aiohttp", "peer"),
    Client("aiohttp-plain", "raw aiohttp, plain", "openai", "runs_aiohttp", "plain", "ceiling"),
    Client("aiohttp-stream", "raw aiohttp, streaming", "openai", "runs_aiohttp", "stream", "ceiling"),
]
FIRST_TEXT_CLIENTS = [
    Client("gl-stream", "guidance_lite stream()", PROJECT, "runs_gl", "stream", "guidance_lite"),
    Client("gl-astream", "guidance_lite astream()", PROJECT, "runs_gl", "astream", "guidance_lite"),
    Client("sdk-async", "raw SDK (AsyncOpenAI)", "openai", "runs_sdk", "async", "baseline"),
    Client("sdk-sync", "raw SDK (OpenAI)", "openai", "runs_sdk", "sync", "baseline"),
]
TOOL_LOOP_CLIENTS = [
    Client("gl-auto", "guidance_lite max_rounds loop", PROJECT, "runs_gl", "auto", "guidance_lite"),
    Client("gl-template", "guidance_lite template loop", PROJECT, "runs_gl", "template", "guidance_lite"),
    Client("kani", "kani full_round (non-streaming)", "kani", "runs_kani", "plain", "peer"),
    Client("sdk-plain", "SDK by hand, non-streaming", "openai", "runs_sdk", "plain", "baseline"),
    Client("sdk-stream", "SDK by hand, streaming", "openai", "runs_sdk", "stream", "baseline"),
]
IMPORT_CLIENTS = [  # module field: the statement timed
    Client("gl", "import guidance_lite", PROJECT, "import guidance_lite", "", "guidance_lite"),
    Client(  # the public names load on first use: what a first Program costs on top (its parser, runtime, models)
        "gl-program",
        "guidance_lite + its first Program",
        PROJECT,
        "import guidance_lite as gl; gl.Program('{{gen \"x\"}}')",
        "",
        "guidance_lite",
    ),
    Client("kani", "import kani", "kani", "import kani", "", "peer"),
    Client(
        "kani-engine", "kani + its OpenAI engine", "kani", "from kani.engines.openai import OpenAIEngine", "", "peer"
    ),
    Client("openai", "import openai", "openai", "import openai", "", "baseline"),
]


@dataclass(frozen=True)
class Plan:
    rounds: int
    batch: dict[int, int]  # concurrency -> programs per run
    first_text_repeats: int  # samples per client per round
    paced_repeats: int
    tool_repeats: int
    latency_batch: float = 0.05
    latency_short: float = 0.02
    pace: float = 0.002
    words: int = 200
    tool_rounds: int = 10


FULL = Plan(rounds=5, batch={1: 20, 10: 200, 100: 1000}, first_text_repeats=5, paced_repeats=2, tool_repeats=3)
QUICK = Plan(rounds=3, batch={1: 3, 10: 30, 100: 100}, first_text_repeats=2, paced_repeats=1, tool_repeats=1)


def git_commit() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{commit}{f' ({branch})' if branch else ''}{dirty}"


def build_envs(notes: list[str]) -> tuple[dict[str, Optional[Path]], dict[str, str]]:
    pythons: dict[str, Optional[Path]] = {PROJECT: Path(sys.executable)}
    missing: dict[str, str] = {}
    for spec in envs.specs():
        built = envs.build(spec)
        pythons[spec.name] = built.python
        if built.python is None:
            missing[spec.name] = f"the {spec.name!r} environment could not be built: {built.note}"
            notes.append(f"skipped {spec.purpose}: {built.note}")
    return pythons, missing


def load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def run_batch(session: Session, server: ServerProcess, plan: Plan, results: Results) -> None:
    for concurrency, programs in plan.batch.items():
        print(f"batch: concurrency {concurrency}, {programs} programs per run", flush=True)

        def request(client: Client) -> dict:
            return {
                "op": "batch",
                "base_url": server.base_url(plan.latency_batch),
                "stats_url": server.stats_url,
                "concurrency": concurrency,
                "programs": programs,
            }

        replies = session.interleave(BATCH_CLIENTS, plan.rounds, request, timeout=900, progress=f"c={concurrency}")
        results.batch[concurrency] = {
            c.key: BatchCell(c, concurrency, programs, plan.latency_batch, replies[c.key])
            for c in BATCH_CLIENTS
            if replies[c.key]
        }


def run_samples(session: Session, clients: list[Client], rounds: int, request: dict, title: str) -> dict[str, Timing]:
    print(title, flush=True)
    replies = session.interleave(clients, rounds, lambda client: request, timeout=600)
    return {
        c.key: Timing(c, [s for reply in replies[c.key] for s in reply["samples"]]) for c in clients if replies[c.key]
    }


def run_imports(pythons: dict[str, Optional[Path]], session: Session, rounds: int) -> dict[str, Timing]:
    print("import times (fresh interpreters)", flush=True)
    samples: dict[str, list[tuple[float, float]]] = {c.key: [] for c in IMPORT_CLIENTS}
    usable = []
    for client in IMPORT_CLIENTS:
        python = pythons.get(client.runtime)
        if python is None:
            session.drop(
                Client(f"import:{client.key}", client.label, client.runtime, "", "", client.role),
                "skipped: its environment could not be built",
            )
            continue
        try:
            import_seconds(python, client.module, session.paths(client.runtime))  # bytecode compiled, caches warm
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            session.drop(
                Client(f"import:{client.key}", client.label, client.runtime, "", "", client.role), f"failed: {err}"
            )
            continue
        usable.append(client)
    for number in range(rounds):
        shift = number % max(len(usable), 1)
        for client in usable[shift:] + usable[:shift]:
            python = pythons[client.runtime]
            assert python is not None
            samples[client.key].append(import_seconds(python, client.module, session.paths(client.runtime)))
    return {c.key: Timing(c, [wall for wall, _ in samples[c.key]], [cpu for _, cpu in samples[c.key]]) for c in usable}


def run_profile(session: Session, server: ServerProcess, plan: Plan, results: Results) -> None:
    print("profiling guidance_lite's side", flush=True)
    concurrency = max(plan.batch)
    worker = session.worker(PROJECT)
    reply = worker.call(
        {
            "op": "profile_batch",
            "base_url": server.base_url(plan.latency_batch),
            "stats_url": server.stats_url,
            "concurrency": concurrency,
            "programs": plan.batch[concurrency],
            "output": str(PROFILE_DIR / f"batch_c{concurrency}.prof"),
        },
        timeout=900,
    )
    if reply.get("ok"):
        results.profile["batch"] = reply
        results.profile["batch_concurrency"] = concurrency
    else:
        results.env_notes.append(f"batch profile failed: {reply.get('error') or reply.get('skipped')}")
    reply = worker.call(
        {
            "op": "probe_first_text",
            "base_url": server.base_url(plan.latency_short),
            "words": plan.words,
            "repeats": max(plan.first_text_repeats, 3),
        },
        timeout=600,
    )
    if reply.get("ok"):
        results.profile["first_text"] = reply["probe"]
    else:
        results.env_notes.append(f"first-text probe failed: {reply.get('error') or reply.get('skipped')}")
    try:
        results.profile["imports"] = import_profile(
            Path(sys.executable), "guidance_lite", child_env(session.paths(PROJECT)), BENCH_DIR
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        results.env_notes.append(f"import profile failed: {err}")


def record(markdown: str, path: Path = RESULTS_FILE) -> None:
    """Append a run's section (the file starts with a header the first time)."""
    existing = path.read_text() if path.exists() else RESULTS_HEADER
    path.write_text(existing.rstrip("\n") + "\n\n" + markdown)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds and fewer programs (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 3)")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also profile guidance_lite's side (default: full runs only)",
    )
    parser.add_argument(
        "--record",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"append the section to {RESULTS_FILE.name} (default: full runs only)",
    )
    parser.add_argument(
        "--only",
        default="batch,first_text,imports,tool_loop",
        help="comma-separated sections to run (batch, first_text, imports, tool_loop)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - {"batch", "first_text", "imports", "tool_loop"}
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}")
    record_it = (not args.quick) if args.record is None else args.record

    started = time.perf_counter()
    results = Results(
        started=datetime.now(timezone.utc),
        commit=git_commit(),
        mode="quick" if args.quick else "full",
        rounds=plan.rounds,
        latency_batch=plan.latency_batch,
        latency_short=plan.latency_short,
        load=[load()],
        pace=plan.pace,
        words=plan.words,
        rounds_tool=plan.tool_rounds,
    )
    pythons, missing = build_envs(results.env_notes)
    server = ServerProcess()
    session = Session(pythons, missing)
    try:
        measuring = time.perf_counter()
        if "imports" in sections:
            results.imports = run_imports(pythons, session, plan.rounds)
            print(f"  ({time.perf_counter() - measuring:.0f} s so far)", flush=True)
        if "batch" in sections:
            run_batch(session, server, plan, results)
            print(f"  ({time.perf_counter() - measuring:.0f} s so far)", flush=True)
        results.load.append(load())
        if "first_text" in sections:
            request = {
                "op": "first_text",
                "base_url": server.base_url(plan.latency_short),
                "words": plan.words,
                "repeats": plan.first_text_repeats,
            }
            results.first_text["burst"] = run_samples(
                session, FIRST_TEXT_CLIENTS, plan.rounds, request, "first text (one burst)"
            )
            paced = {
                **request,
                "base_url": server.base_url(plan.latency_short, plan.pace),
                "repeats": plan.paced_repeats,
            }
            results.first_text["paced"] = run_samples(
                session, FIRST_TEXT_CLIENTS, plan.rounds, paced, f"first text (events {plan.pace * 1e3:g} ms apart)"
            )
            print(f"  ({time.perf_counter() - measuring:.0f} s so far)", flush=True)
        if "tool_loop" in sections:
            request = {
                "op": "tool_loop",
                "base_url": server.base_url(plan.latency_short),
                "rounds": plan.tool_rounds,
                "repeats": plan.tool_repeats,
            }
            results.tool_loop = run_samples(
                session, TOOL_LOOP_CLIENTS, plan.rounds, request, f"{plan.tool_rounds}-round tool loop"
            )
        results.load.append(load())
        measured = time.perf_counter() - measuring
        if (not args.quick) if args.profile is None else args.profile:
            run_profile(session, server, plan, results)
        results.versions = session.versions()
    finally:
        session.close()
        server.stop()
    results.dropped = dict(session.dropped)
    markdown = Report(results).markdown()
    print("\n" + markdown)
    print(f"measured in {measured:.0f} s ({time.perf_counter() - started:.0f} s with environments and profiles)")
    if record_it:
        record(markdown)
        print(f"appended to {RESULTS_FILE}")
    else:
        print(f"not appended to {RESULTS_FILE.name} (quick runs are smoke tests; --record appends anyway)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
