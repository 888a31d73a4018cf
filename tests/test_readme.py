"""Every code block of README.md runs as written (issue 13): the README is what a new user copies first.

How each fenced block is treated:
- ``python``: run in a fresh process with this interpreter, in an empty temporary directory, offline (no
  ``OPENAI_API_KEY``: the default model is the embedded SmolLM2). A block must be self-contained: its imports, its
  files, and a ``gl.models.Mock`` or a ``ScriptedServer`` it starts itself. It must exit 0 and write nothing to
  stderr (no warning, no noise at exit).
- ``bash``: run with ``bash -euo pipefail`` in an empty temporary directory, with this interpreter's ``bin`` first on
  ``PATH`` (so ``python`` and ``guidance-lite`` are the project's).
- a block right after ``<!-- readme-test: setup -->``: one of the setup commands, which CI runs itself
  (``.ci/run``). Its install steps (venv, pip) must be the ones ``.ci/run`` uses; the command that follows the install
  runs here with this interpreter, unless it is the test suite itself (CI's own run is that check).
- ``text``: shown output, not run. Any other fence is refused, so no block is left unchecked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
SETUP_MARK = "<!-- readme-test: setup -->"
RUN_TIMEOUT = 900  # seconds per block: the first one runs the local model, slow on a loaded machine
_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_HEADING = re.compile(r"^#{2,4} (.+)$", re.M)


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str
    line: int  # where the fence opens, 1-based
    heading: str  # the section it is in
    number: int  # its place among the section's blocks, from 1
    setup: bool  # marked as a setup command CI runs

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"{slug}-{self.number}-{self.language}"


def readme_blocks(text: str) -> list[CodeBlock]:
    blocks: list[CodeBlock] = []
    for match in _FENCE.finditer(text):
        start = match.start()
        headings = list(_HEADING.finditer(text, 0, start))
        heading = headings[-1].group(1) if headings else ""
        before = text[:start].rstrip("\n").rsplit("\n", 1)[-1].strip()
        number = 1 + sum(1 for block in blocks if block.heading == heading)
        line = text.count("\n", 0, start) + 1
        blocks.append(CodeBlock(match.group(1), match.group(2), line, heading, number, before == SETUP_MARK))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [block for block in BLOCKS if block.language in ("python", "bash", "ipython")]


# Runs argv[1] as one IPython cell after `import guidance_lite as gl` and `%load_ext guidance_lite` (what the README
# says a notebook does first); a failing cell exits non-zero.
IPYTHON_CELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
for cell in ("import guidance_lite as gl\\n%load_ext guidance_lite", sys.argv[1]):
    outcome = shell.run_cell(cell)
    if not outcome.success:
        sys.exit(1)
"""


def offline_env() -> dict[str, str]:
    """This interpreter first on PATH; no API key or base URL, so nothing can reach a paid API; no other venv."""
    dropped = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTHONPATH", "VIRTUAL_ENV")  # VIRTUAL_ENV: a shell's other venv
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_block(command: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        input=stdin,
        cwd=cwd,
        env=offline_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=RUN_TIMEOUT,
    )


def check_ran(block: CodeBlock, proc: subprocess.CompletedProcess) -> None:
    where = f"README.md line {block.line} ({block.heading})"
    assert proc.returncode == 0, (
        f"{where} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert proc.stderr == "", f"{where} wrote to stderr (warnings, noise at exit):\n{proc.stderr[-3000:]}"


# ---- the blocks themselves -----------------------------------------------------------------------------------------
def test_the_readme_has_its_blocks() -> None:
    languages = {block.language for block in BLOCKS}
    assert languages <= {"python", "bash", "ipython", "text"}, f"fences the README test can't check: {languages}"
    assert RUNNABLE[0].language == "python" and RUNNABLE[0].heading == "" and "gl.Program" in RUNNABLE[0].code
    assert sum(block.setup for block in BLOCKS) == 2  # the two setup commands at the top


@pytest.mark.parametrize("block", [b for b in RUNNABLE if not b.setup], ids=lambda b: b.name)
def test_readme_block_runs(block: CodeBlock, tmp_path: Path) -> None:
    if block.language == "python":
        proc = run_block([sys.executable, "-"], tmp_path, stdin=block.code)
    elif block.language == "ipython":  # a notebook cell: run in a real IPython shell after the notebook's setup cell
        proc = run_block([sys.executable, "-c", IPYTHON_CELL, block.code], tmp_path)
    else:
        proc = run_block(["bash", "-euo", "pipefail", "-c", block.code], tmp_path)
    check_ran(block, proc)


# ---- the setup commands --------------------------------------------------------------------------------------------
def ci_install_commands() -> list[list[str]]:
    """The install steps of the README's test command as ``.ci/run`` runs it."""
    line = next(line for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines() if "pip install" in line)
    return [shlex.split(part) for part in line.split(" && ")[:2]]


def split_setup(block: CodeBlock) -> tuple[str, list[list[str]], list[str]]:
    """(the command line, its install steps, the command run after them) of a one-line setup block."""
    lines = [line for line in block.code.splitlines() if line.strip()]
    assert len(lines) == 1, f"README.md line {block.line}: a setup block is one command line"
    parts = [shlex.split(part) for part in lines[0].split(" && ")]
    return lines[0], parts[:-1], parts[-1]


def extras(install: list[str]) -> set[str]:
    target = install[-1]
    match = re.fullmatch(r"\.\[([\w,]+)\]", target)
    assert match, f"the install target {target!r} is not the checkout with extras"
    return set(match.group(1).split(","))


@pytest.mark.parametrize("block", [b for b in RUNNABLE if b.setup], ids=lambda b: b.name)
def test_readme_setup_command(block: CodeBlock, tmp_path: Path) -> None:
    line, installs, then = split_setup(block)
    ci_venv, ci_pip = ci_install_commands()
    assert installs[0] == ci_venv
    assert installs[1][:-1] == ci_pip[:-1], "the README installs differently from CI"
    assert extras(installs[1]) <= extras(ci_pip), "the README installs extras CI does not"
    assert then[:2] == [".venv/bin/python", "-m"], f"README.md line {block.line}: run with the venv's python"
    if then[2] == "pytest":
        assert line in CI_SCRIPT.read_text(encoding="utf-8"), "the README's test command must be the one .ci/run runs"
        return  # the suite itself: CI runs it; running it from inside itself proves nothing more
    check_ran(block, run_block([sys.executable, *then[1:]], tmp_path))
