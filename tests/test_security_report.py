"""SECURITY.md is generated from data (tests/security/: the attack case lists and the fuzz counts; gl.Limits): this
test fails when the file on disk differs from what it generates. Regenerate it with
``GL_WRITE_SECURITY=1 python -m pytest tests/test_security_report.py``."""

from __future__ import annotations

import json
import os

from security import report

import guidance_lite as gl

COUNT_KEYS = {"area", "inputs", "failures_as_library_errors", "crashes", "seconds"}
LARGE_RUN_KEYS = {"inputs", "failures_as_library_errors", "crashes", "seconds", "command"}


def test_security_md_is_what_the_data_generates() -> None:
    text = report.render()
    if os.environ.get("GL_WRITE_SECURITY"):
        report.SECURITY_MD.write_text(text, encoding="utf-8")
    on_disk = report.SECURITY_MD.read_text(encoding="utf-8") if report.SECURITY_MD.exists() else ""
    assert on_disk == text, f"SECURITY.md is stale: regenerate it with {report.REGENERATE}"


def test_every_case_module_exports_described_cases() -> None:
    modules = report.case_modules()
    assert {name for name, _ in modules} >= {"cases_sandbox", "cases_budgets", "cases_injection"}
    names = [case["name"] for _, cases in modules for case in cases]
    assert len(names) == len(set(names)), "case names are unique across modules"
    for _, cases in modules:
        for case in cases:
            assert {"name", "category", "what", "expect"} <= set(case)


def test_counts_files_keep_their_format() -> None:
    for path in sorted((report.HERE / "counts").glob("*.json")):
        counts = json.loads(path.read_text(encoding="utf-8"))
        assert set(counts) - {"last_large_run"} == COUNT_KEYS and counts["area"] == path.stem
        assert counts["crashes"] == 0 and counts["inputs"] > 0
        if "last_large_run" in counts:
            assert set(counts["last_large_run"]) == LARGE_RUN_KEYS and counts["last_large_run"]["crashes"] == 0


def test_the_report_counts_cases_areas_and_limits() -> None:
    text = report.render()
    cases = sum(len(cases) for _, cases in report.case_modules())
    assert f"| attacks blocked | {cases:,} in " in text
    for area in report.fuzz_counts():
        assert f"| {area['area']} | {area['inputs']:,} |" in text
    for name, default, _ in gl.Limits.documented():
        assert f"| `{name}` | {default:,} |" in text if isinstance(default, int) else f"`{name}`" in text
