"""The figures of one peers run, as ratios against what was measured in the same run: the issue's summary table,
the detailed tables, the targets (met or missed, and what limits each missed one), the profile and the notes.

The same markdown is printed and appended to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from .measure import REPO_ROOT, Client

SATURATED = 0.9  # a process using this much of one core is CPU-bound

TARGET_BATCH = 1.5  # guidance_lite's programs/s over the fastest peer's, concurrency 100
TARGET_BATCH_IDEAL = 0.4  # stretch: fraction of ideal
TARGET_FIRST_TEXT = 1.1  # time to first text over the raw SDK's
TARGET_IMPORT_MS = 150.0
TARGET_TOOL_LOOP = 0.95  # guidance_lite's time over kani's


@dataclass
class BatchCell:
    """One client at one concurrency: the runs of every round (wall, client CPU, server CPU seconds)."""

    client: Client
    concurrency: int
    programs: int
    latency: float
    runs: list[dict]

    @property
    def seconds(self) -> float:
        return statistics.median(run["seconds"] for run in self.runs)

    @property
    def throughput(self) -> float:
        return self.programs / self.seconds

    @property
    def of_ideal(self) -> float:
        return self.throughput / (self.concurrency / self.latency)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(run["cpu"] for run in self.runs) / self.programs * 1e3

    @property
    def client_util(self) -> float:
        return statistics.median(run["cpu"] / run["seconds"] for run in self.runs)

    @property
    def server_util(self) -> float:
        return max(run["server_cpu"] / run["seconds"] for run in self.runs)


@dataclass
class Timing:
    """Samples in seconds of one client (first text, tool loop or import; imports also keep CPU seconds)."""

    client: Client
    samples: list[float]
    cpu_samples: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.samples) * 1e3

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu_samples) * 1e3 if self.cpu_samples else self.ms


@dataclass
class Results:
    started: datetime
    commit: str
    mode: str
    rounds: int
    latency_batch: float
    latency_short: float
    load: list[tuple[float, float, float]]
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    env_notes: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    batch: dict[int, dict[str, BatchCell]] = field(default_factory=dict)
    first_text: dict[str, dict[str, Timing]] = field(default_factory=dict)  # "burst"/"paced" -> client key -> …
    imports: dict[str, Timing] = field(default_factory=dict)
    tool_loop: dict[str, Timing] = field(default_factory=dict)
    profile: dict = field(default_factory=dict)
    pace: float = 0.0
    words: int = 200
    rounds_tool: int = 10


def _ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def _shown(path: str) -> str:
    """A path as the checkout names it (``benchmarks/.profiles/…``), absolute when it lies elsewhere."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Renders ``Results``; ``gl`` is the key of guidance_lite's main configuration in each section."""

    def __init__(self, results: Results) -> None:
        self.r = results

    # ---- look-ups ---------------------------------------------------------------------------------------------
    def cell(self, concurrency: int, key: str) -> Optional[BatchCell]:
        return self.r.batch.get(concurrency, {}).get(key)

    def best(self, concurrency: int, role: str) -> Optional[BatchCell]:
        cells = [c for c in self.r.batch.get(concurrency, {}).values() if c.client.role == role]
        return max(cells, key=lambda c: c.throughput) if cells else None

    def ms(self, table: dict[str, Timing], key: str) -> Optional[float]:
        timing = table.get(key)
        return timing.ms if timing else None

    # ---- sections ---------------------------------------------------------------------------------------------
    def summary(self) -> str:
        r = self.r
        rows = []
        top = max(r.batch) if r.batch else None
        if top is not None:
            gl = self.cell(top, "gl")
            cells = sorted(r.batch[top].values(), key=lambda c: c.throughput)
            mine_rate = gl.throughput if gl else None
            others = "; ".join(
                f"{c.client.label} {c.throughput:.0f}/s (gl {_ratio(mine_rate, c.throughput)})"
                for c in cells
                if c.client.role in ("peer", "baseline") or c.client.key == "gl-plain"
            )
            ceiling = self.best(top, "ceiling")
            mine = (
                f"**{gl.throughput:.0f} programs/s** ({gl.of_ideal:.3f} of ideal), {gl.cpu_ms:.1f} ms client CPU "
                f"per program"
                if gl
                else "not measured"
            )
            limit = (
                f"{ceiling.client.label}: {ceiling.throughput:.0f}/s ({ceiling.of_ideal:.2f} of ideal; server CPU "
                f"{ceiling.server_util:.2f} of a core)"
                if ceiling
                else "—"
            )
            programs = next(iter(r.batch[top].values())).programs
            rows.append(
                [
                    f"{programs:,} single-turn programs, {r.latency_batch * 1e3:.0f} ms latency, concurrency {top}",
                    mine,
                    others or "—",
                    limit,
                ]
            )
        burst = r.first_text.get("burst", {})
        if burst:
            sdk = self.ms(burst, "sdk-async")
            mine = ", ".join(
                f"`{name}()` {self.ms(burst, key):.0f} ms ({_ratio(self.ms(burst, key), sdk)} the SDK)"
                for key, name in (("gl-stream", "stream"), ("gl-astream", "astream"))
                if key in burst
            )
            paced = r.first_text.get("paced", {})
            paced_text = ", ".join(f"{t.client.label} {t.ms:.0f} ms" for t in paced.values())
            rows.append(
                [
                    f"time from request to the first text event, {r.words} words as one burst, "
                    f"{r.latency_short * 1e3:.0f} ms latency",
                    mine or "—",
                    f"raw SDK async {sdk:.0f} ms" if sdk else "—",
                    f"events {r.pace * 1e3:g} ms apart: {paced_text}" if paced_text else "—",
                ]
            )
        if r.imports:
            gl, kani = r.imports.get("gl"), r.imports.get("kani")
            others = "; ".join(
                f"{t.client.label} {t.cpu_ms:.0f} ms CPU ({t.ms:.0f} ms wall)"
                for k, t in r.imports.items()
                if k != "gl"
            )
            mine = (
                f"{gl.cpu_ms:.0f} ms CPU, {gl.ms:.0f} ms wall ({_ratio(gl.cpu_ms, kani and kani.cpu_ms)} kani's CPU)"
                if gl
                else "—"
            )
            rows.append(["`import guidance_lite`", mine, others or "—", "—"])
        if r.tool_loop:
            kani = self.ms(r.tool_loop, "kani")
            mine = ", ".join(
                f"{t.client.label} {t.ms:.0f} ms ({_ratio(t.ms, kani)} kani)"
                for t in (r.tool_loop.get("gl-auto"), r.tool_loop.get("gl-template"))
                if t
            )
            others = "; ".join(
                f"{t.client.label} {t.ms:.0f} ms" for k, t in r.tool_loop.items() if t.client.role != "guidance_lite"
            )
            rows.append(
                [
                    f"{r.rounds_tool}-round tool loop, {r.latency_short * 1e3:.0f} ms latency",
                    mine or "—",
                    others or "—",
                    "—",
                ]
            )
        return _table(["what", "guidance_lite", "peers and baselines, same run", "the limit"], rows)

    def batch_table(self) -> str:
        r = self.r
        if not r.batch:
            return ""
        levels = sorted(r.batch)
        top = levels[-1]
        gl_top = self.cell(top, "gl")
        keys: list[str] = []
        for level in levels:
            keys += [k for k in r.batch[level] if k not in keys]
        rows = []
        for key in keys:
            row = [next(r.batch[level][key].client.label for level in levels if key in r.batch[level])]
            for level in levels:
                cell = self.cell(level, key)
                row.append(f"{cell.throughput:.1f} ({cell.of_ideal:.3f})" if cell else "—")
            cell = self.cell(top, key)
            row += (
                [
                    f"{cell.cpu_ms:.2f}",
                    f"{cell.client_util:.2f}",
                    f"{cell.server_util:.2f}",
                    _ratio(gl_top and gl_top.throughput, cell.throughput),
                ]
                if cell
                else ["—"] * 4
            )
            rows.append(row)
        programs = ", ".join(f"c={level}: {next(iter(r.batch[level].values())).programs}" for level in levels)
        header = (
            ["client"]
            + [f"c={level}: programs/s (of ideal)" for level in levels]
            + [
                f"c={top}: client CPU ms/program",
                "client CPU (of a core)",
                "server CPU (max, of a core)",
                "guidance_lite ÷ this",
            ]
        )
        return (
            f"Batch, {r.latency_batch * 1e3:.0f} ms latency, ideal = concurrency / latency; programs per run: "
            f"{programs}; medians of {r.rounds} interleaved runs.\n\n" + _table(header, rows)
        )

    def timing_table(self, title: str, table: dict[str, Timing], baseline: str) -> str:
        if not table:
            return ""
        base = self.ms(table, baseline)
        rows = [[t.client.label, f"{t.ms:.1f}", _ratio(t.ms, base), str(len(t.samples))] for t in table.values()]
        return f"{title}\n\n" + _table(
            ["client", "median ms", f"÷ {table[baseline].client.label}" if baseline in table else "ratio", "samples"],
            rows,
        )

    def import_table(self) -> str:
        imports = self.r.imports
        if not imports:
            return ""
        kani = imports.get("kani")
        rows = [
            [
                t.client.label,
                f"{t.cpu_ms:.1f}",
                f"{t.ms:.1f}",
                _ratio(t.cpu_ms, kani and kani.cpu_ms),
                str(len(t.samples)),
            ]
            for t in imports.values()
        ]
        return "### Import (fresh interpreters)\n\n" + _table(
            ["statement", "median CPU ms", "median wall ms", "÷ import kani (CPU)", "samples"], rows
        )

    def targets(self) -> list[str]:
        r = self.r
        lines = []
        top = max(r.batch) if r.batch else None
        gl = self.cell(top, "gl") if top else None
        peer = self.best(top, "peer") if top else None
        if gl and peer:
            ratio = gl.throughput / peer.throughput
            met = ratio >= TARGET_BATCH
            line = (
                f"- {'MET' if met else 'MISSED'} batch at c={top} ≥ {TARGET_BATCH}× the fastest peer: "
                f"guidance_lite {gl.throughput:.0f}/s = {ratio:.2f}× {peer.client.label} ({peer.throughput:.0f}/s)"
                f"; stretch ≥ {TARGET_BATCH_IDEAL} of ideal: {gl.of_ideal:.3f} "
                f"({'met' if gl.of_ideal >= TARGET_BATCH_IDEAL else 'missed'})."
            )
            spread = self.cell(top, "gl-processes")
            if spread:
                line += (
                    f" With map(processes=2): {spread.throughput:.0f}/s = {spread.throughput / peer.throughput:.2f}× "
                    f"({spread.of_ideal:.3f} of ideal)."
                )
            if not met:
                line += (
                    f" Limit: client CPU {gl.cpu_ms:.1f} ms per program (the peer: {peer.cpu_ms:.1f} ms); the "
                    f"client process used {gl.client_util:.2f} of a core"
                    f"{' (CPU-bound)' if gl.client_util >= SATURATED else ''}, the server {gl.server_util:.2f}."
                )
                line += self._profile_line()
            lines.append(line)
        else:
            lines.append("- NOT MEASURED batch target (guidance_lite or every peer missing; see the notes).")
        burst = r.first_text.get("burst", {})
        sdk = self.ms(burst, "sdk-async")
        for key, name in (("gl-stream", "stream()"), ("gl-astream", "astream()")):
            mine = self.ms(burst, key)
            if mine is None or sdk is None:
                lines.append(f"- NOT MEASURED first text, {name}.")
                continue
            met = mine / sdk <= TARGET_FIRST_TEXT
            line = (
                f"- {'MET' if met else 'MISSED'} first text ≤ {TARGET_FIRST_TEXT}× the raw SDK, {name}: "
                f"{mine:.0f} ms = {mine / sdk:.2f}× ({sdk:.0f} ms)."
            )
            probe = r.profile.get("first_text", {}).get(key.removeprefix("gl-"))
            if not met and probe:
                line += (
                    f" Limit: the first chunk reaches guidance_lite at {probe['chunk_ms']:.0f} ms; the consumer "
                    f"gets the first event at {probe['event_ms']:.0f} ms, after {probe['chunks_before']:.0f} of "
                    f"{probe['chunks']:.0f} chunks were processed."
                )
            elif not met:
                line += " Limit: run with --profile for the chunk probe."
            lines.append(line)
        gl_import = r.imports.get("gl")
        if gl_import is not None:
            met = gl_import.cpu_ms <= TARGET_IMPORT_MS
            line = (
                f"- {'MET' if met else 'MISSED'} `import guidance_lite` ≤ {TARGET_IMPORT_MS:.0f} ms: "
                f"{gl_import.cpu_ms:.0f} ms of CPU (judged on CPU time: the wall time, {gl_import.ms:.0f} ms, "
                "includes waiting for a core on a busy machine)."
            )
            packages = r.profile.get("imports", {}).get("packages")
            if not met and packages:
                line += (
                    " Limit (-X importtime, own ms per package): "
                    + ", ".join(f"{name} {ms:.0f}" for name, ms in list(packages.items())[:6])
                    + "."
                )
            lines.append(line)
        kani = self.ms(r.tool_loop, "kani")
        mine_loops = [(k, self.ms(r.tool_loop, k)) for k in ("gl-auto", "gl-template") if k in r.tool_loop]
        if kani and mine_loops:
            _, worst = max(mine_loops, key=lambda item: item[1] or 0.0)
            met = worst / kani <= TARGET_TOOL_LOOP
            line = (
                f"- {'MET' if met else 'MISSED'} tool loop ≤ {TARGET_TOOL_LOOP}× kani: "
                + ", ".join(f"{r.tool_loop[k].client.label} {ms:.0f} ms = {ms / kani:.2f}×" for k, ms in mine_loops)
                + f" (kani {kani:.0f} ms)."
            )
            sdk_plain = self.ms(r.tool_loop, "sdk-plain")
            if not met and sdk_plain:
                line += (
                    f" Limit: {(worst - sdk_plain) / (r.rounds_tool + 1):+.1f} ms per request over the "
                    f"hand-written non-streaming SDK loop ({sdk_plain:.0f} ms)."
                )
            lines.append(line)
        else:
            lines.append("- NOT MEASURED tool-loop target (guidance_lite or kani missing).")
        return lines

    def _profile_line(self) -> str:
        batch = self.r.profile.get("batch")
        if not batch:
            return " Run with --profile for where the CPU goes."
        total = sum(batch["by_package"].values()) or 1.0
        shares = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in list(batch["by_package"].items())[:6])
        return f" Profile (cProfile own time by package, {_shown(batch['file'])}): {shares}."

    @staticmethod
    def _functions(rows: list[dict], programs: int) -> str:
        return _table(
            ["function", "calls/program", "own ms/program", "cum ms/program"],
            [
                [
                    f"`{row['function']}`",
                    f"{row['calls'] / programs:.1f}",
                    f"{row['own_s'] / programs * 1e3:.3f}",
                    f"{row['cum_s'] / programs * 1e3:.3f}",
                ]
                for row in rows
            ],
        )

    def profile_section(self) -> str:
        profile = self.r.profile
        if not profile:
            return ""
        parts = ["### Profile of guidance_lite's side"]
        batch = profile.get("batch")
        if batch:
            total = sum(batch["by_package"].values()) or 1.0
            per = batch["programs"]
            parts.append(
                f"Batch c={profile.get('batch_concurrency')} ({per} programs; CPU with the profiler on "
                f"{batch['cpu'] / per * 1e3:.2f} ms/program; profile file {_shown(batch['file'])}). Own "
                "time by package (C built-ins charged to their callers):"
            )
            parts.append(
                _table(
                    ["package", "share", "ms/program (profiled)"],
                    [
                        [name, f"{seconds / total:.1%}", f"{seconds / per * 1e3:.3f}"]
                        for name, seconds in list(batch["by_package"].items())[:12]
                    ],
                )
            )
            parts.append("Top functions by own time:")
            parts.append(self._functions(batch["top_own"][:15], per))
            parts.append("guidance_lite's own functions by own time (calls count coroutine resumptions):")
            parts.append(self._functions(batch["top_gl_own"][:10], per))
        probe = profile.get("first_text")
        if probe:
            parts.append(
                "First text (burst): chunks guidance_lite took from the SDK before the consumer got the first "
                "text event (medians):"
            )
            parts.append(
                _table(
                    ["variant", "first chunk at ms", "first event at ms", "chunks before it", "chunks"],
                    [
                        [
                            name,
                            f"{p['chunk_ms']:.1f}",
                            f"{p['event_ms']:.1f}",
                            f"{p['chunks_before']:.0f}",
                            f"{p['chunks']:.0f}",
                        ]
                        for name, p in probe.items()
                    ],
                )
            )
        imports = profile.get("imports")
        if imports:
            parts.append(
                f"`-X importtime` for `import guidance_lite`: {imports['total_ms']:.0f} ms in all. Own ms by "
                "top-level package: "
                + ", ".join(f"{k} {v:.1f}" for k, v in imports["packages"].items())
                + ". guidance_lite's modules by cumulative ms: "
                + ", ".join(f"{k} {v:.1f}" for k, v in imports["modules"].items())
                + ". guidance_lite's modules by own ms: "
                + ", ".join(f"{k} {v:.1f}" for k, v in imports["module_self"].items())
                + "."
            )
        return "\n\n".join(parts)

    def notes(self) -> list[str]:
        r = self.r
        notes = list(r.env_notes)
        for key, why in r.dropped.items():
            notes.append(f"{key}: {why}")
        for level, cells in sorted(r.batch.items()):
            for cell in cells.values():
                if cell.server_util >= SATURATED:
                    notes.append(
                        f"the server saturated ({cell.server_util:.2f} of a core) while {cell.client.label} "
                        f"ran at c={level}: that figure is a floor, not the client's limit"
                    )
        busiest = max((c.server_util for cells in r.batch.values() for c in cells.values()), default=None)
        if busiest is not None and busiest < SATURATED:
            notes.append(f"the server never saturated: its busiest batch run used {busiest:.2f} of a core")
        loads = ", ".join(f"{a:.2f}" for a, _, _ in r.load)
        notes.append(
            f"1-minute load average during the run: {loads} on {os.cpu_count()} cores (a shared, noisy "
            "machine: figures are under load; the ratios are what to compare)"
        )
        for runtime, found in r.versions.items():
            notes.append(f"{runtime} environment: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items())))
        return notes

    def markdown(self) -> str:
        r = self.r
        head = (
            f"## {r.started:%Y-%m-%d %H:%M} UTC · commit {r.commit} · {r.mode} run, {r.rounds} interleaved rounds, "
            "medians"
        )
        parts = [
            head,
            self.summary(),
            "### Targets",
            "\n".join(self.targets()),
            "### Batch",
            self.batch_table(),
            self.timing_table(
                f"### Time to first text ({r.words} words, {r.latency_short * 1e3:.0f} ms latency, "
                "all events sent as one burst)",
                r.first_text.get("burst", {}),
                "sdk-async",
            ),
            self.timing_table(f"Same, events {r.pace * 1e3:g} ms apart", r.first_text.get("paced", {}), "sdk-async"),
            self.import_table(),
            self.timing_table(
                f"### {r.rounds_tool}-round tool loop ({r.latency_short * 1e3:.0f} ms latency, one whole conversation)",
                r.tool_loop,
                "kani",
            ),
            self.profile_section(),
            "### Notes\n\n" + "\n".join(f"- {note}" for note in self.notes()),
        ]
        return "\n\n".join(part for part in parts if part) + "\n"
