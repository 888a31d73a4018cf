"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

from . import models, otel
from .analysis import TemplateReport, analyze
from .answer import ToolCallAnswer, ToolResults
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .models.base import ModelError
from .program import Program, Result
from .recorder import Recorder
from .tools import Tool, ToolCallRecord, ToolError, ToolExecutionError, tool
from .trace import Trace
from .version import __version__

__all__ = [
    "Program",
    "Result",
    "analyze",
    "TemplateReport",
    "models",
    "Trace",
    "Recorder",
    "otel",
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
