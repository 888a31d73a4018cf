"""Concurrency (issue 9): 1,000 runs at once sharing one model and one request cache each get their own answer, and
the sqlite cache survives concurrent writers (threads and processes) and a writer killed in the middle of a write.

Concurrency is proven by overlap (how many requests the server held at once), never by wall-clock ratios.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import guidance_lite as gl
from guidance_lite.cache import RequestCache
from guidance_lite.testing import ScriptedServer

RUNS = 1_000
PROGRAM = "{{#user}}{{question}}{{/user}}{{#assistant}}{{gen 'answer'}}{{/assistant}}"


class OverlapProbe:
    """A ScriptedServer script that answers "echo <question>" after holding the request a moment, counting how many
    requests it holds at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.hold)
        with self.lock:
            self.active -= 1
        return "echo " + body["messages"][-1]["content"]


def test_1000_concurrent_runs_share_one_model_and_one_cache(tmp_path: Path) -> None:
    probe = OverlapProbe(hold=0.3)
    inputs = [{"question": f"question {i}"} for i in range(RUNS)]
    expected = [f"echo question {i}" for i in range(RUNS)]
    with ScriptedServer(probe) as server:
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url, cache=tmp_path / "cache.sqlite")
        program = gl.Program(PROGRAM, model=model, silent=True)
        results = program.map(inputs, concurrency=RUNS)
        assert [r["answer"] for r in results] == expected
        assert [r.messages[0]["content"] for r in results] == [i["question"] for i in inputs]
        assert probe.peak >= 100  # the runs overlapped: the server held a hundred or more requests at once
        assert len(server.requests) == RUNS and model.transport.cache is not None
        assert len(model.transport.cache) == RUNS
        again = program.map(inputs, concurrency=RUNS)  # every answer now comes from the shared cache
        assert [r["answer"] for r in again] == expected
        assert len(server.requests) == RUNS


def test_cache_survives_concurrent_writer_threads(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    shared = RequestCache(path)
    errors: list[BaseException] = []
    started = threading.Barrier(8)

    def write(worker: int) -> None:
        try:
            cache = shared if worker % 2 else RequestCache(path)  # one shared connection and several own ones
            started.wait()
            for i in range(200):
                cache.put(f"w{worker}-{i}", {"worker": worker, "i": i, "pad": "x" * 500})
                assert cache.get(f"w{worker}-{i}") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    reopened = RequestCache(path)
    assert len(reopened) == 8 * 200
    assert all(
        reopened.get(f"w{w}-{i}") == {"worker": w, "i": i, "pad": "x" * 500} for w in range(8) for i in range(200)
    )


WRITER = """
import sys, time
from guidance_lite.cache import RequestCache
path, worker, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cache = RequestCache(path)  # every writer opens (and maybe creates) the file at the same moment
for i in range(count if count >= 0 else 10**9):
    cache.put(f"w{worker}-{i}", {"worker": worker, "i": i, "pad": "x" * size})
    print(i, flush=True)
"""


def writer(path: Path, worker: int, count: int, size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(worker), str(count), str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cache_survives_concurrent_writer_processes(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "cache.sqlite"
    processes = [writer(path, worker, 150, 2_000) for worker in range(6)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    cache = RequestCache(path)
    assert len(cache) == 6 * 150
    assert all(
        cache.get(f"w{w}-{i}") == {"worker": w, "i": i, "pad": "x" * 2_000} for w in range(6) for i in range(150)
    )


def test_cache_survives_a_writer_killed_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    size = 400_000  # large values: a write takes long enough to be caught in the middle
    for round_number, kill_after in enumerate((3, 7, 12)):
        process = writer(path, round_number, -1, size)
        assert process.stdout is not None
        for _ in range(kill_after):  # let it finish some writes, then kill it while it is writing the next
            assert process.stdout.readline(), process.stderr.read() if process.stderr else ""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        cache = RequestCache(path)  # the next open works
        stored = {w: [cache.get(f"w{w}-{i}") for i in range(kill_after + 5)] for w in range(round_number + 1)}
        for w, values in stored.items():
            for i, value in enumerate(values):
                assert value is None or value == {"worker": w, "i": i, "pad": "x" * size}  # complete or absent
        assert all(value is not None for value in stored[round_number][:kill_after])  # the writes it finished
        cache.put("after", {"ok": True})  # and takes new writes
        assert cache.get("after") == {"ok": True}
        cache.close()
    assert json.loads(json.dumps(RequestCache(path).get("after"))) == {"ok": True}
