"""The client process: reads one JSON request per line on stdin, runs it, answers one JSON line.

One worker runs per environment (the project's venv, the SDK's, kani's) and stays up for the whole benchmark, so the
runs can be interleaved without paying interpreter start-up and imports each time. It imports a client module
(``runs_*``) only when asked for it: a module whose library is missing here answers ``skipped``, never crashes.

Requests (``op``): ``batch`` (one timed batch, with warm-up, answers checked), ``first_text`` and ``tool_loop``
(lists of timed samples), ``profile_batch`` and ``probe_first_text`` (see ``profile_gl``), ``quit``. The first
line a worker writes names the package versions it runs with.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .clients import BatchTiming, Unavailable, server_cpu, timed_batch
from .scenarios import check_answers

PACKAGES = (
    "guidance_lite",
    "openai",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "aiohttp",
    "kani",
    "tiktoken",
    "pydantic",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def client_module(name: str) -> Any:
    if not name.startswith("runs_"):
        raise Unavailable(f"no client module {name!r}")
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as err:
        raise Unavailable(f"{name} can't be imported in this environment: {err}") from err


def batch(request: dict) -> dict:
    """One timed batch (after a warm-up round): wall seconds, this process's CPU seconds and the server's CPU seconds
    over the same window; every answer checked."""
    module = client_module(request["module"])
    programs = int(request["programs"])

    async def run() -> BatchTiming:
        client = module.batch_client(request["variant"], request["base_url"])
        try:
            return await timed_batch(
                client, programs, int(request["concurrency"]), lambda: server_cpu(request["stats_url"])
            )
        finally:
            await client.close()

    timing = asyncio.run(run())
    check_answers(timing.answers, programs)
    return {"seconds": timing.seconds, "cpu": timing.cpu, "server_cpu": timing.server_cpu}


def samples(kind: str) -> Callable[[dict], dict]:
    def run(request: dict) -> dict:
        module = client_module(request["module"])
        function = getattr(module, kind, None)
        if function is None:
            raise Unavailable(f"{request['module']} has no {kind} run")
        size = request["words"] if kind == "first_text" else request["rounds"]
        return {"samples": function(request["variant"], request["base_url"], int(size), int(request["repeats"]))}

    return run


def profile(kind: str) -> Callable[[dict], dict]:
    def run(request: dict) -> dict:
        from . import profile_gl

        return getattr(profile_gl, kind)(request)

    return run


HANDLERS: dict[str, Callable[[dict], dict]] = {
    "batch": batch,
    "first_text": samples("first_text"),
    "tool_loop": samples("tool_loop"),
    "profile_batch": profile("profile_batch"),
    "probe_first_text": profile("probe_first_text"),
}


def handle(request: dict) -> dict:
    handler = HANDLERS.get(request.get("op", ""))
    if handler is None:
        return {"ok": False, "error": f"unknown op {request.get('op')!r}"}
    try:
        return {"ok": True, **handler(request)}
    except Unavailable as err:
        return {"ok": False, "skipped": str(err)}
    except Exception as err:
        return {
            "ok": False,
            "error": f"{type(err).__name__}: {err}",
            "trace": "".join(traceback.format_exc(limit=8))[-3000:],
        }


def main() -> None:
    # the protocol owns the real stdout; anything a library prints goes to stderr instead
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    protocol.write(json.dumps({"ok": True, "versions": versions()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        protocol.write(json.dumps(handle(request)) + "\n")


if __name__ == "__main__":
    main()
