"""Run every benchmark in this folder, one after the other (each prints ratios measured in its own run).

``bench_peers.py`` (the same-run peers section) builds the peers' environments under ``benchmarks/.envs/`` the first
time, and a full run appends its figures to ``benchmarks/RESULTS.md``.

Usage: ``python benchmarks/run_all.py [--quick]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    extra = sys.argv[1:]
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        code = subprocess.call([sys.executable, str(script), *extra])
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
