"""What every fuzz test shares: running one input within a time and memory bound, sorting its outcome, and writing
the counts to ``counts/<area>.json`` for SECURITY.md.

The counts file format (kept stable, every area writes it the same way)::

    {"area": "templates", "inputs": 1234, "failures_as_library_errors": 456, "crashes": 0, "seconds": 12.3,
     "last_large_run": {"inputs": 100000, "failures_as_library_errors": …, "crashes": 0, "seconds": …,
                        "command": "GL_FUZZ_TEMPLATES=100000 python -m pytest tests/test_fuzz.py"}}

The top-level numbers are the CI budget's (what ``pytest`` runs every time). The file is rewritten when they change,
or always with ``GL_WRITE_SECURITY=1``; a large run (its command given) rewrites only ``last_large_run``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Optional

import guidance_lite as gl

COUNTS_DIR = Path(__file__).resolve().parent / "counts"
CASE_SECONDS = 10.0  # wall-clock bound of one fuzz input (SIGALRM)
MEMORY_HEADROOM = 2 * 1024**3  # address space one fuzz test may add to the process (RLIMIT_AS)
# The limits fuzzed templates run with: the defaults' mechanisms, with budgets small enough that thousands of hostile
# inputs finish in seconds (each case also gets the wall-clock and memory bounds above).
FUZZ_LIMITS = gl.Limits(
    max_value_size=1_000_000,
    max_output_size=5_000_000,
    max_loop_iterations=2_000,
    max_steps=200_000,
    regex_seconds=0.2,
    max_partial_depth=8,
)


class CaseTimeout(BaseException):
    """A fuzz input ran past ``CASE_SECONDS`` (a BaseException, so no library ``except Exception`` swallows it)."""


def _alarm(signum: int, frame: Optional[FrameType]) -> None:
    raise CaseTimeout()


def _address_space() -> int:
    """The process's current virtual memory size in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextmanager
def memory_bound(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap the process's address space at its current size plus ``headroom`` (restored afterwards): an input that
    allocates past it gets a MemoryError instead of taking the machine down."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextmanager
def time_bound(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Raise ``CaseTimeout`` in the main thread when the block runs longer than ``seconds``."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def is_crash(exc: BaseException) -> bool:
    """An outcome that is not a library error: a non-library exception, a timeout, or memory exhaustion anywhere
    in the chain (a MemoryError the library wrapped is still a crash)."""
    if not isinstance(exc, gl.GuidanceLiteError):
        return True
    seen: Optional[BaseException] = exc
    while seen is not None:  # the chain as a traceback shows it
        if isinstance(seen, (MemoryError, RecursionError, CaseTimeout)):
            return True
        seen = seen.__cause__ if seen.__cause__ is not None or seen.__suppress_context__ else seen.__context__
    return False


@dataclass
class Tally:
    """Counts of one area's fuzz inputs; ``crashed`` keeps the inputs that crashed (to show in a failure)."""

    area: str
    inputs: int = 0
    library_errors: int = 0
    crashed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def ok(self) -> None:
        self.inputs += 1

    def failed(self, source: str, exc: BaseException) -> None:
        self.inputs += 1
        if is_crash(exc):
            self.crashed.append((source, f"{type(exc).__name__}: {exc}"[:500]))
        else:
            self.library_errors += 1

    @property
    def crashes(self) -> int:
        return len(self.crashed)

    def add(self, other: Tally) -> None:
        self.inputs += other.inputs
        self.library_errors += other.library_errors
        self.crashed += other.crashed
        self.seconds += other.seconds

    def counts(self) -> dict:
        return {
            "inputs": self.inputs,
            "failures_as_library_errors": self.library_errors,
            "crashes": self.crashes,
            "seconds": round(self.seconds, 1),
        }


@contextmanager
def timed(tally: Tally) -> Iterator[Tally]:
    started = time.perf_counter()
    try:
        yield tally
    finally:
        tally.seconds += time.perf_counter() - started


def record(tally: Tally, large_run_command: Optional[str] = None) -> Path:
    """Write ``counts/<area>.json`` (see the module docstring for when)."""
    path = COUNTS_DIR / f"{tally.area}.json"
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    counts = tally.counts()
    if large_run_command is not None:
        updated = {**current, "area": tally.area, "last_large_run": {**counts, "command": large_run_command}}
    else:
        unchanged = all(current.get(key) == counts[key] for key in ("inputs", "failures_as_library_errors", "crashes"))
        if unchanged and not os.environ.get("GL_WRITE_SECURITY"):
            return path
        updated = {"area": tally.area, **counts}
        if "last_large_run" in current:
            updated["last_large_run"] = current["last_large_run"]
    COUNTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(updated, indent=2) + "\n", encoding="utf-8")
    return path
