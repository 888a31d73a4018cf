"""Profiles of guidance_lite's side, for whoever optimises it: where the client CPU of a batch goes (cProfile, by
package and by function), how many stream chunks guidance_lite processes before the first text event reaches the
consumer, and import time by module (``-X importtime``).

``profile_batch`` and ``probe_first_text`` run inside the project's worker; ``import_profile`` runs from the parent.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import re
import statistics
import subprocess
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from .clients import BatchTiming, server_cpu, timed_batch
from .scenarios import check_answers

STDLIB = os.path.normcase(sysconfig.get_paths()["stdlib"])
_SITE = re.compile(r"[/\\](?:site|dist)-packages[/\\]([^/\\]+)")


def package_of(filename: str) -> str:
    """The package a profiled function's file belongs to (C built-ins are ``~``)."""
    if filename == "~":
        return "C built-ins"
    if filename.startswith("<frozen"):
        return "stdlib (frozen)"
    normal = os.path.normcase(filename)
    if f"{os.sep}guidance_lite{os.sep}" in normal:
        return "guidance_lite"
    site = _SITE.search(filename)
    if site:
        name = site.group(1)
        return name[:-3] if name.endswith(".py") else name
    if normal.startswith(STDLIB):
        rest = normal[len(STDLIB) :].lstrip(os.sep)
        return "stdlib " + rest.split(os.sep, 1)[0].removesuffix(".py")
    if f"{os.sep}benchmarks{os.sep}" in normal:
        return "benchmark harness"
    return "other"


def _label(func: tuple) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    return f"{package_of(filename)}:{Path(filename).name}:{line}({name})"


def cpu_by_package(stats: pstats.Stats) -> dict[str, float]:
    """Own (tottime) seconds per package; a C built-in's time is charged to the packages of its callers, in
    proportion to the time each caller spent in it (so ``json.loads`` called by the SDK counts as the SDK's)."""
    totals: dict[str, float] = {}
    table: dict = stats.stats  # type: ignore[attr-defined]
    for func, (_cc, _nc, tottime, _cumtime, callers) in table.items():
        if func[0] != "~" or not callers:
            package = package_of(func[0])
            totals[package] = totals.get(package, 0.0) + tottime
            continue
        spent = sum(entry[2] for entry in callers.values()) or 1.0
        for caller, entry in callers.items():
            package = package_of(caller[0])
            if package == "C built-ins":
                package = "C built-ins (called from C)"
            totals[package] = totals.get(package, 0.0) + tottime * entry[2] / spent
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def top_functions(stats: pstats.Stats, key: int, limit: int, only: Optional[str] = None) -> list[dict]:
    """The ``limit`` functions with the most tottime (key 2) or cumtime (key 3), optionally of one package."""
    table: dict = stats.stats  # type: ignore[attr-defined]
    rows = [(func, values) for func, values in table.items() if only is None or package_of(func[0]) == only]
    rows.sort(key=lambda row: -row[1][key])
    return [
        {"function": _label(func), "calls": values[1], "own_s": values[2], "cum_s": values[3]}
        for func, values in rows[:limit]
    ]


def profile_batch(request: dict) -> dict:
    """Profile guidance_lite's batch (``program.amap``, after a warm-up round) and save the cProfile file."""
    from .runs_gl import GlBatch

    programs = int(request["programs"])
    profiler = cProfile.Profile()

    async def run() -> BatchTiming:
        client = GlBatch(request["base_url"], "default")
        try:
            return await timed_batch(
                client, programs, int(request["concurrency"]), lambda: server_cpu(request["stats_url"]), profiler
            )
        finally:
            await client.close()

    timing = asyncio.run(run())
    check_answers(timing.answers, programs)
    output = Path(request["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(output))
    stats = pstats.Stats(str(output))
    profiled = sum(values[2] for values in stats.stats.values())  # type: ignore[attr-defined]
    return {
        "seconds": timing.seconds,
        "cpu": timing.cpu,
        "programs": programs,
        "profiled_s": profiled,
        "file": str(output),
        "by_package": cpu_by_package(stats),
        "top_own": top_functions(stats, 2, 25),
        "top_gl_own": top_functions(stats, 2, 15, only="guidance_lite"),
    }


class ChunkCounter:
    """Counts the chunks the openai SDK hands out (``AsyncStream.__aiter__`` wrapped) and when the first came."""

    def __init__(self) -> None:
        self.chunks = 0
        self.first_chunk: Optional[float] = None

    def install(self) -> Callable[[], None]:
        import openai

        original = openai.AsyncStream.__aiter__
        counter = self

        async def counted(stream: Any) -> Any:
            async for chunk in original(stream):
                counter.chunks += 1
                if counter.first_chunk is None:
                    counter.first_chunk = time.perf_counter()
                yield chunk

        openai.AsyncStream.__aiter__ = counted  # type: ignore[method-assign]

        def uninstall() -> None:
            openai.AsyncStream.__aiter__ = original  # type: ignore[method-assign]

        return uninstall


def probe_first_text(request: dict) -> dict:
    """For ``stream()`` and ``astream()``: ms to the SDK's first chunk, ms to the first TextDelta, and how many
    chunks guidance_lite had taken from the SDK when that first event reached the consumer (medians)."""
    import guidance_lite as gl
    from guidance_lite.events import TextDelta

    from .runs_gl import STORY_TEMPLATE
    from .scenarios import MODEL, story_prompt

    model = gl.models.OpenAI(MODEL, base_url=request["base_url"], api_key="unused")
    program = gl.Program(STORY_TEMPLATE, model=model, silent=True)
    prompt = story_prompt(int(request["words"]))
    counter = ChunkCounter()
    uninstall = counter.install()

    def sync_once() -> dict:
        counter.chunks, counter.first_chunk = 0, None
        started = time.perf_counter()
        seen: dict = {}
        for event in program.stream(prompt=prompt):
            if not seen and isinstance(event, TextDelta):
                seen = {"event_ms": (time.perf_counter() - started) * 1e3, "chunks_before": counter.chunks}
        return {**seen, "chunk_ms": ((counter.first_chunk or started) - started) * 1e3, "chunks": counter.chunks}

    async def async_samples(repeats: int) -> list[dict]:
        async def once() -> dict:
            counter.chunks, counter.first_chunk = 0, None
            started = time.perf_counter()
            seen: dict = {}
            async for event in program.astream(prompt=prompt):
                if not seen and isinstance(event, TextDelta):
                    seen = {"event_ms": (time.perf_counter() - started) * 1e3, "chunks_before": counter.chunks}
            return {**seen, "chunk_ms": ((counter.first_chunk or started) - started) * 1e3, "chunks": counter.chunks}

        await once()
        return [await once() for _ in range(repeats)]

    repeats = int(request["repeats"])
    try:
        sync_once()
        found = {"stream": [sync_once() for _ in range(repeats)], "astream": asyncio.run(async_samples(repeats))}
    finally:
        uninstall()
    return {
        "probe": {
            variant: {key: statistics.median(s[key] for s in samples) for key in samples[0]}
            for variant, samples in found.items()
        }
    }


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_profile(python: Path, module: str, env: dict[str, str], cwd: Path, repeats: int = 3) -> dict:
    """``python -X importtime -c 'import module'``: total ms, own ms per top-level package, and the module's own
    submodules by cumulative ms and by own ms (medians over ``repeats`` fresh interpreters)."""
    runs: list[dict] = []
    for _ in range(repeats + 1):
        done = subprocess.run(
            [str(python), "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=cwd,
        )
        packages: dict[str, float] = {}
        own_modules: dict[str, float] = {}
        module_self: dict[str, float] = {}
        total = 0.0
        for line in done.stderr.splitlines():
            match = _IMPORT_LINE.match(line)
            if not match:
                continue
            own, cumulative, name = int(match.group(1)) / 1e3, int(match.group(2)) / 1e3, match.group(4)
            top = name.split(".")[0]
            packages[top] = packages.get(top, 0.0) + own
            if name == module:
                total = cumulative
            elif top == module:
                own_modules[name] = cumulative
            if top == module:
                module_self[name] = own
        runs.append({"total": total, "packages": packages, "modules": own_modules, "module_self": module_self})
    runs = runs[1:]  # the first run may compile bytecode

    def median_of(key: str) -> dict[str, float]:
        names = set().union(*(run[key] for run in runs))
        return {name: statistics.median(run[key].get(name, 0.0) for run in runs) for name in names}

    packages = median_of("packages")
    modules = median_of("modules")
    module_self = median_of("module_self")
    return {
        "total_ms": statistics.median(run["total"] for run in runs),
        "packages": dict(sorted(packages.items(), key=lambda item: -item[1])[:15]),
        "modules": dict(sorted(modules.items(), key=lambda item: -item[1])[:12]),
        "module_self": dict(sorted(module_self.items(), key=lambda item: -item[1])[:8]),
    }
