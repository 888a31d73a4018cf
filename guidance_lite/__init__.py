"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

import sys
import types
from typing import Optional

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


class _Package(types.ModuleType):
    """The package module, with ``gl.llm``: guidance 0.0.64's settable default model (``guidance.llm = …``)."""

    @property
    def llm(self) -> Optional[models.Model]:
        """The model programs use when given none (None: the automatic choice of ``gl.models.default()``)."""
        from .models.defaults import chosen_default

        return chosen_default()

    @llm.setter
    def llm(self, model: Optional[models.Model]) -> None:
        from .models.defaults import set_default

        set_default(model)


sys.modules[__name__].__class__ = _Package
