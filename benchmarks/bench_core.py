"""Core language benchmarks, reported as ratios against baselines measured in the same run.

1. Parsing a ~1,000-line template (role blocks, each, if/else, gen): guidance_lite vs the pyparsing grammar of
   handlebars-era guidance 0.0.64 (its ``_grammar.py``, loaded from the PyPI wheel; needs ``pyparsing``).
2. A second ``Program`` with the same text vs the first parse.
3. Time per ``gen`` with the Mock model at 100, 1,000 and 10,000 loop iterations (must stay flat), in text mode and
   in chat mode (role blocks).

Run: ``python benchmarks/bench_core.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import guidance_lite as gl
from guidance_lite import commands, parser  # noqa: F401 - commands registers the built-in blocks, as gl.Program does

CHUNK = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#each items}}
{{#user~}}Question {{@index}}: {{this.q}} about {{topic}}{{~/user}}
{{#assistant~}}{{gen 'answerN' temperature=0 max_tokens=50 stop='\\n'}}{{~/assistant}}
{{#if answerN == 'yes'}}good{{else}}bad{{/if}}
{{/each}}
"""


def make_template(lines: int) -> str:
    reps = max(1, lines // CHUNK.count("\n"))
    return "".join(CHUNK.replace("answerN", f"answer{i}") for i in range(reps))


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def load_guidance_064_grammar(cache_dir: Path) -> Optional[types.ModuleType]:
    """guidance 0.0.64's grammar module, from its wheel on PyPI (cached), or None when unavailable."""
    try:
        import pyparsing  # noqa: F401
    except ImportError:
        print("  (pyparsing is not installed: pip install pyparsing to measure the guidance 0.0.64 baseline)")
        return None
    wheels = sorted(cache_dir.glob("guidance-0.0.64-*.whl"))
    if not wheels:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "guidance==0.0.64",
            "-d",
            str(cache_dir),
        ]
        try:
            subprocess.run(cmd, check=True, timeout=180, capture_output=True)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"  (could not download guidance 0.0.64 for the baseline: {exc})")
            return None
        wheels = sorted(cache_dir.glob("guidance-0.0.64-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        source = wheel.read("guidance/_grammar.py").decode("utf-8")
    module = types.ModuleType("guidance_064_grammar")
    exec(compile(source, "guidance-0.0.64/_grammar.py", "exec"), module.__dict__)
    return module


def bench_parse(lines: int, repeat: int) -> dict:
    text = make_template(lines)
    n_lines = text.count("\n")
    # the tag memo is emptied before every timed parse: only tags repeated within this template may reuse a parse
    ours = best_of(lambda: (parser._TAG_MEMO.clear(), parser._parse_uncached(text, None)), repeat)
    full = best_of(lambda: parser._parse_uncached(text, None, fast=False), max(2, repeat // 2))
    result = {
        "lines": n_lines,
        "ours_s": ours,
        "ours_us_per_line": ours / n_lines * 1e6,
        "full_lark_us_per_line": full / n_lines * 1e6,
    }
    print(
        f"parse {n_lines} lines: guidance_lite {ours * 1e3:.1f} ms ({ours / n_lines * 1e6:.0f} us/line, empty tag "
        f"memo); the full Lark parse without the fast path: {full / n_lines * 1e6:.0f} us/line"
    )
    baseline = load_guidance_064_grammar(Path(tempfile.gettempdir()) / "guidance_lite_bench")
    if baseline is not None:
        # 0.0.64 is slow (~ms per line): time it on a fifth of the template and scale per line
        part = make_template(max(lines // 5, 35))
        part_lines = part.count("\n")
        theirs = best_of(lambda: baseline.grammar.parse_string(part), max(1, repeat // 2))
        per_line = theirs / part_lines
        result.update(
            baseline_us_per_line=per_line * 1e6,
            speedup=per_line / (ours / n_lines),
            speedup_full_lark=per_line / (full / n_lines),
        )
        print(
            f"parse: guidance 0.0.64 {per_line * 1e3:.2f} ms/line -> guidance_lite is "
            f"{result['speedup']:.0f}x faster per line (target: 50x); without the fast path "
            f"{result['speedup_full_lark']:.0f}x"
        )
    parser._parse_cached.cache_clear()
    first = best_of(lambda: (parser._parse_cached.cache_clear(), gl.Program(text)), 1)
    second = best_of(lambda: gl.Program(text), repeat * 20)
    result.update(second_program_ratio=second / first)
    print(f"second Program with the same text: {second * 1e6:.1f} us = {second / first:.5f} of the first parse")
    return result


def bench_gen(counts: list[int], repeat: int) -> dict:
    """Time per gen at growing loop sizes, with a fresh Mock per run (a Mock keeps every request it saw).

    Measured twice: as users run it, and with Python's cyclic GC paused, which isolates the interpreter's own cost
    per command from the collector scanning a larger heap (a CPython effect, not an algorithmic one)."""
    templates = {
        "text": "{{#each range(n)}}Q{{@index}}: {{gen 'x' list_append=True}}\n{{/each}}",
        "chat": "{{#each range(n)}}{{#user}}q{{@index}}{{/user}}{{#assistant}}{{gen 'x'}}{{/assistant}}{{/each}}",
    }
    out = {}
    for mode, template in templates.items():
        gl.Program(template, model=gl.models.Mock("ok"), silent=True)(n=10)  # warm up
        for gc_paused in (False, True):
            per_gen = {}
            for n in counts:

                def run() -> None:
                    program = gl.Program(template, model=gl.models.Mock("ok"), silent=True)
                    if gc_paused:
                        gc.disable()
                    try:
                        program(n=n)
                    finally:
                        gc.enable()

                per_gen[n] = best_of(run, repeat if n < 5000 else max(2, repeat // 2)) / n
            base = per_gen[counts[0]]
            ratios = {n: per_gen[n] / base for n in counts}
            label = f"{mode}{' gc-paused' if gc_paused else ''}"
            out[label] = {"us_per_gen": {n: v * 1e6 for n, v in per_gen.items()}, "ratio_to_first": ratios}
            cells = ", ".join(f"{n}: {per_gen[n] * 1e6:.1f} us" for n in counts)
            print(
                f"time per gen ({label}, Mock): {cells}; "
                f"{counts[-1]} vs {counts[0]} iterations: {ratios[counts[-1]]:.2f}x (flat = 1.0)"
            )
    return out


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = ap.parse_args(argv)
    repeat = 3 if args.quick else 5
    results = {"parse": bench_parse(300 if args.quick else 1000, repeat)}
    counts = [100, 1000, 3000] if args.quick else [100, 1000, 10000]
    results["gen"] = bench_gen(counts, repeat)
    print(
        "summary:",
        {
            "parse_speedup_vs_0.0.64": round(results["parse"].get("speedup", float("nan")), 1),
            "second_program_ratio": round(results["parse"]["second_program_ratio"], 6),
            **{
                f"gen_flatness_{k.replace(' ', '_')}": round(v["ratio_to_first"][counts[-1]], 2)
                for k, v in results["gen"].items()
            },
        },
    )
    return results


if __name__ == "__main__":
    main()
