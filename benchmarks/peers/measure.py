"""The benchmark's processes and how runs are taken: the server, one long-lived worker per environment, rounds
interleaved across clients (A, B, C, A, B, C, … with the starting client rotated each round, so drift on a shared
machine falls on every client alike) and import timings in fresh interpreters.

A client that is skipped (its package missing) or fails is dropped with a note after its first failure; the other
clients go on.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from .server import base_url

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = BENCH_DIR.parent
LOG_DIR = BENCH_DIR / ".envs" / "logs"
PROJECT = "project"  # the runtime name of the interpreter running the benchmark


@dataclass(frozen=True)
class Client:
    """One configuration measured: ``module`` (a ``runs_*`` module) with ``variant``, run in ``runtime``'s worker.
    ``role``: ``guidance_lite``, ``peer`` (another library), ``baseline`` (the bare SDK) or ``ceiling``."""

    key: str
    label: str
    runtime: str
    module: str
    variant: str
    role: str


def child_env(paths: list[Path]) -> dict[str, str]:
    """The environment of every child process: only ``paths`` on PYTHONPATH, no real API credentials or base URL
    (every client is pointed at the local server explicitly), loopback never proxied. Children run in ``BENCH_DIR``
    so the checkout's root (and its guidance_lite) is never on a peer's ``sys.path`` by way of the working folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    no_proxy = [p for p in env.get("NO_PROXY", "").split(",") if p]
    env["NO_PROXY"] = env["no_proxy"] = ",".join(no_proxy + ["127.0.0.1", "localhost"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _lines(stream: IO[str], into: queue.Queue[Optional[str]]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


class ServerProcess:
    """``peers.server`` in its own process (stopped by closing its stdin)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "peers.server", "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env([BENCH_DIR]),
            cwd=BENCH_DIR,
        )
        lines: queue.Queue[Optional[str]] = queue.Queue()
        threading.Thread(target=_lines, args=(self.proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=30) or ""
        except queue.Empty:
            line = ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the benchmark server did not start (said {line!r})")
        self.port = int(line.split()[1])

    def base_url(self, latency: float, pace: float = 0.0) -> str:
        return base_url(self.port, latency, pace)

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/_stats"

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=5)


class WorkerDied(RuntimeError):
    pass


class Worker:
    """``peers.worker`` under one interpreter: JSON requests in, JSON replies out; stderr goes to a log file."""

    def __init__(self, runtime: str, python: Path, paths: list[Path]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.runtime = runtime
        self.log_path = LOG_DIR / f"worker-{runtime}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(python), "-m", "peers.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=child_env(paths),
            cwd=BENCH_DIR,
        )
        self.replies: queue.Queue[Optional[str]] = queue.Queue()
        threading.Thread(target=_lines, args=(self.proc.stdout, self.replies), daemon=True).start()
        self.versions: dict[str, str] = self._read(120).get("versions", {})

    def _read(self, timeout: float) -> dict:
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise WorkerDied(
                f"the {self.runtime} worker did not answer in {timeout:.0f} s (log: {self.log_path})"
            ) from None
        if line is None:
            raise WorkerDied(f"the {self.runtime} worker exited (log: {self.log_path}): {self.log_tail()}")
        return json.loads(line)

    def call(self, request: dict, timeout: float) -> dict:
        if self.proc.poll() is not None or self.proc.stdin is None:
            raise WorkerDied(f"the {self.runtime} worker is not running (log: {self.log_path})")
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def log_tail(self, lines: int = 4) -> str:
        self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if not kill and self.proc.stdin is not None:
                try:
                    self.proc.stdin.write('{"op": "quit"}\n')
                    self.proc.stdin.close()
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class Session:
    """The workers of one benchmark run, started on first use, and the notes on clients that could not run."""

    def __init__(self, pythons: dict[str, Optional[Path]], missing: dict[str, str]) -> None:
        self.pythons = pythons  # runtime -> interpreter (None: its environment could not be built)
        self.missing = missing  # runtime -> why there is no interpreter
        self.workers: dict[str, Optional[Worker]] = {}
        self.dropped: dict[str, str] = {}  # client key -> why it has no figures

    def paths(self, runtime: str) -> list[Path]:
        return [BENCH_DIR, REPO_ROOT] if runtime == PROJECT else [BENCH_DIR]

    def worker(self, runtime: str) -> Worker:
        if runtime not in self.workers:
            python = self.pythons.get(runtime)
            if python is None:
                self.workers[runtime] = None
            else:
                try:
                    self.workers[runtime] = Worker(runtime, python, self.paths(runtime))
                except (OSError, WorkerDied) as err:
                    self.missing[runtime] = f"its worker did not start: {err}"
                    self.workers[runtime] = None
        found = self.workers[runtime]
        if found is None:
            raise WorkerDied(self.missing.get(runtime, f"no {runtime} environment"))
        return found

    def versions(self) -> dict[str, dict[str, str]]:
        return {name: w.versions for name, w in self.workers.items() if w is not None}

    def drop(self, client: Client, why: str) -> None:
        if client.key not in self.dropped:
            self.dropped[client.key] = why
            print(f"  ! {client.label}: {why}", flush=True)

    def run(self, client: Client, request: dict, timeout: float) -> Optional[dict]:
        """One request for ``client``; None (and a note) when it is skipped or fails."""
        if client.key in self.dropped:
            return None
        try:
            worker = self.worker(client.runtime)
            reply = worker.call({**request, "module": client.module, "variant": client.variant}, timeout)
        except WorkerDied as err:
            self.workers[client.runtime] = None
            self.missing[client.runtime] = str(err)
            self.drop(client, f"skipped: {err}")
            return None
        if not reply.get("ok"):
            if "skipped" in reply:
                self.drop(client, f"skipped: {reply['skipped']}")
            else:
                self.drop(client, f"failed: {reply.get('error')} (trace in the note below)")
                print(reply.get("trace", ""), file=sys.stderr)
            return None
        return reply

    def interleave(
        self, clients: list[Client], rounds: int, request: Callable[[Client], dict], timeout: float, progress: str = ""
    ) -> dict[str, list[dict]]:
        """``rounds`` rounds over ``clients``, each round starting one client later; replies per client key."""
        replies: dict[str, list[dict]] = {c.key: [] for c in clients}
        started = time.perf_counter()
        for number in range(rounds):
            shift = number % len(clients)
            for client in clients[shift:] + clients[:shift]:
                reply = self.run(client, request(client), timeout)
                if reply is not None:
                    replies[client.key].append(reply)
            if progress:
                print(
                    f"  {progress}: round {number + 1}/{rounds} done ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
        return replies

    def close(self) -> None:
        for worker in self.workers.values():
            if worker is not None:
                worker.close()


def import_seconds(python: Path, statement: str, paths: list[Path], timeout: float = 120.0) -> tuple[float, float]:
    """Wall and CPU seconds ``statement`` takes in a fresh interpreter (start-up excluded). On a busy machine the
    wall time mostly measures waiting for a core; the CPU time is what the import itself costs."""
    code = (
        f"import time; t, c = time.perf_counter(), time.process_time(); {statement}; "
        f"print(time.perf_counter() - t, time.process_time() - c)"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=timeout, env=child_env(paths), cwd=BENCH_DIR
    )
    if done.returncode != 0:
        raise RuntimeError(f"{statement!r} failed: {done.stderr.strip().splitlines()[-1:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)
