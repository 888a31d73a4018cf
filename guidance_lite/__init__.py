"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

import sys
import types
from typing import Any, Optional

from . import models, otel
from .analysis import TemplateReport, analyze
from .answer import ToolCallAnswer, ToolResults
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .limits import LimitExceeded, Limits
from .models.base import ModelError
from .program import Program, Result
from .recorder import Recorder
from .results import Results
from .tools import Tool, ToolCallRecord, ToolError, ToolExecutionError, tool
from .trace import Trace
from .version import __version__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext guidance_lite``: the ``%%program`` and ``%%run_program`` cell magics (IPython loads only when
    this runs, never when the package is imported)."""
    from .magics import register

    register(ipython)


__all__ = [
    "Program",
    "Result",
    "Limits",
    "LimitExceeded",
    "Results",
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
