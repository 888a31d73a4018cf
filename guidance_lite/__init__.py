"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

from typing import Any

from . import models
from .analysis import TemplateReport, analyze
from .answer import ToolCallAnswer, ToolResults
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .models.base import ModelError
from .program import Program, Result
from .results import Results
from .tools import Tool, ToolCallRecord, ToolError, ToolExecutionError, tool

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext guidance_lite``: the ``%%program`` and ``%%run_program`` cell magics (IPython loads only when
    this runs, never when the package is imported)."""
    from .magics import register

    register(ipython)


__all__ = [
    "Program",
    "Result",
    "Results",
    "analyze",
    "TemplateReport",
    "models",
    "tool",
    "Tool",
    "ToolCallRecord",
    "ToolCallAnswer",
    "ToolResults",
    "TemplateSyntaxError",
    "TemplateRuntimeError",
    "GuidanceLiteError",
    "ModelError",
    "ToolError",
    "ToolExecutionError",
    "__version__",
]
