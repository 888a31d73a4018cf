"""The benchmark scripts keep running as the code under them changes (bench_core parses below gl.Program, so it must
register the built-in blocks itself; bench_tool_loop checks that guidance_lite sends the same bodies as the
hand-written loop before it times anything): a quick run of each, in a subprocess, ends with its summary. No timing
is asserted. (bench_peers has its own test; bench_batch is covered by bench_peers' batch section.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "summary"),
    [
        ("bench_core.py", "summary: {'parse_speedup_vs_0.0.64':"),
        ("bench_tool_loop.py", "summary: {'baseline_s':"),
    ],
)
def test_a_quick_run_prints_its_summary(script: str, summary: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert summary in proc.stdout
