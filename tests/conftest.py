"""Shared fixtures. ``scripted_server``: a started ScriptedServer (OpenAI-compatible, 127.0.0.1), stopped afterwards."""
from __future__ import annotations

from typing import Iterator

import pytest

from guidance_lite.testing import ScriptedServer


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A running ScriptedServer: ``push()`` replies, point a model at ``.base_url``, inspect ``.requests``."""
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
