"""benchmarks/bench_core.py keeps running (it calls the parser below gl.Program, so it must register the built-in
blocks itself): a quick run in a subprocess ends with its summary. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_core.py"


def test_bench_core_quick_run_prints_its_summary() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "summary: {'parse_speedup_vs_0.0.64':" in proc.stdout
