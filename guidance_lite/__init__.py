"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

from . import models
from .analysis import TemplateReport, analyze
from .answer import ToolCallAnswer, ToolResults
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .limits import LimitExceeded, Limits
from .models.base import ModelError
from .program import Program, Result
from .tools import Tool, ToolCallRecord, ToolError, ToolExecutionError, tool

__version__ = "0.1.0"

__all__ = [
    "Program",
    "Result",
    "Limits",
    "LimitExceeded",
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
