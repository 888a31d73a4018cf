"""``gl.models.default()``: the model a program uses when none is given.

OpenAI when ``OPENAI_API_KEY`` is set (model from ``GUIDANCE_LITE_MODEL``, default gpt-4o-mini), otherwise the
embedded SmolLM2 model, shared by the whole process so it is loaded (lazily, on first use) only once.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

from .base import Model

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_local: Optional[Model] = None
_local_lock = threading.Lock()


def default() -> Model:
    """OpenAI if ``OPENAI_API_KEY`` is set, else the process-wide local ``LlamaCpp()`` (created once)."""
    if os.environ.get("OPENAI_API_KEY"):
        from .openai import OpenAI

        return OpenAI(os.environ.get("GUIDANCE_LITE_MODEL") or DEFAULT_OPENAI_MODEL)
    global _local
    with _local_lock:
        if _local is None:
            from .llamacpp import LlamaCpp

            _local = LlamaCpp()
        return _local
