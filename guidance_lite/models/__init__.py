"""Model backends behind one interface (``base.Model``). Imported lazily so ``import guidance_lite`` stays light."""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Completion, Choice, Delta, GenRequest, Model, ModelError, ToolCall, Usage

_LAZY = {
    "Mock": ".mock",
    "OpenAI": ".openai",
    "OpenAICompletion": ".completion",
    "LlamaCpp": ".llamacpp",
    "default": ".defaults",
}

__all__ = ["Model", "ModelError", "GenRequest", "Delta", "Choice", "Completion", "ToolCall", "Usage", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'guidance_lite.models' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
