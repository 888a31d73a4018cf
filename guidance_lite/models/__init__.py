"""Model backends behind one interface (``base.Model``). Imported lazily so ``import guidance_lite`` stays light.

``BACKENDS`` maps each public name to the module that defines it; adding a backend to the library is one module plus
one entry here (a backend of your own needs no entry: pass an instance as ``model=``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Choice, Completion, Delta, GenParams, GenRequest, Model, ModelError, ToolCall, Usage
from .timeouts import Timeout

BACKENDS: dict[str, str] = {  # name -> module (relative to this package, or absolute), imported on first use
    "Mock": ".mock",
    "OpenAI": ".openai",
    "OpenAICompletion": ".completion",
    "LlamaCpp": ".llamacpp",
    "Replay": ".replay",
    "ReplayMismatch": ".replay",
    "default": ".defaults",
    "set_default": ".defaults",
}

__all__ = [
    "Model",
    "ModelError",
    "GenParams",
    "GenRequest",
    "Delta",
    "Choice",
    "Completion",
    "ToolCall",
    "Usage",
    "Timeout",
    *BACKENDS,
]


def __getattr__(name: str) -> Any:
    module = BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module 'guidance_lite.models' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
