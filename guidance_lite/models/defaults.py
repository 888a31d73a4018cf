"""``gl.models.default()``: the model a program uses when none is given.

The model set with ``gl.models.set_default(model)`` (or ``gl.llm = model``, guidance 0.0.64's spelling) when there is
one; else OpenAI when ``OPENAI_API_KEY`` is set (model from ``GUIDANCE_LITE_MODEL``, default gpt-4o-mini); else the
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
_chosen: Optional[Model] = None  # set_default's model


def set_default(model: Optional[Model]) -> None:
    """Make ``model`` the model of every program run without one (None goes back to the automatic choice).

    A program takes the default when it first needs a model, so set it before running programs."""
    global _chosen
    if model is not None and not isinstance(model, Model):
        raise TypeError(
            f"the default model must be a gl.models backend (e.g. gl.models.OpenAI('gpt-4o-mini')) or None, "
            f"not {type(model).__name__}"
        )
    _chosen = model


def chosen_default() -> Optional[Model]:
    """The model given to ``set_default`` (None when there is none)."""
    return _chosen


def default() -> Model:
    """The model set with ``set_default``; else OpenAI if ``OPENAI_API_KEY`` is set; else the process-wide local
    ``LlamaCpp()`` (created once)."""
    if _chosen is not None:
        return _chosen
    if os.environ.get("OPENAI_API_KEY"):
        from .openai import OpenAI

        return OpenAI(os.environ.get("GUIDANCE_LITE_MODEL") or DEFAULT_OPENAI_MODEL)
    global _local
    with _local_lock:
        if _local is None:
            from .llamacpp import LlamaCpp

            _local = LlamaCpp()
        return _local
