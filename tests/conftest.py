"""Shared fixtures. ``scripted_server``: a started ScriptedServer (OpenAI-compatible, 127.0.0.1), stopped afterwards;
``llama_server_url``: one real ``python -m llama_cpp.server`` serving SmolLM2 for the whole session."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from guidance_lite.testing import ScriptedServer

LLAMA_SERVER_STARTUP_SECONDS = 120


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A running ScriptedServer: ``push()`` replies, point a model at ``.base_url``, inspect ``.requests``."""
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200 and bool(json.load(response).get("data"))
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


@pytest.fixture(scope="session")
def llama_server_url() -> Iterator[str]:
    """``python -m llama_cpp.server`` serving the bundled SmolLM2 on a free 127.0.0.1 port, shared by the session.
    If it can't start the test fails with the server's output (no skipping)."""
    from guidance_lite.models.llamacpp import bundled_model_path

    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        bundled_model_path(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "2",
        "--verbose",
        "false",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + LLAMA_SERVER_STARTUP_SECONDS
            while not _server_ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode("utf-8", "replace")[-4000:]
                    state = (
                        f"exited with code {process.returncode}"
                        if process.poll() is not None
                        else f"was not ready after {LLAMA_SERVER_STARTUP_SECONDS}s"
                    )
                    pytest.fail(f"llama_cpp.server {state} (pip install 'guidance_lite[server]'):\n{output}")
                time.sleep(0.25)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
