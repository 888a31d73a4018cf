"""guidance_lite: LLM programs as handlebars-like templates, with structured chat state and real tool calling.

The public names only; ``import guidance_lite`` stays light (backends load when first used).
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any, Optional

from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .version import __version__

if TYPE_CHECKING:  # pragma: no cover - what the names below are, for type checkers and editors
    from . import models, otel
    from .analysis import TemplateReport, analyze
    from .answer import ToolCallAnswer, ToolResults
    from .limits import LimitExceeded, Limits
    from .models.base import ModelError
    from .program import Program, Result
    from .recorder import Recorder
    from .results import Results
    from .tools import Tool, ToolCallRecord, ToolError, ToolExecutionError, tool
    from .trace import Trace

# public name -> the module that defines it, imported when the name is first used: ``import guidance_lite`` then
# costs a few milliseconds, and the parser (lark), asyncio and the tools (pydantic) load with the first Program or tool
_LAZY = {
    "Program": ".program",
    "Result": ".program",
    "Limits": ".limits",
    "LimitExceeded": ".limits",
    "Results": ".results",
    "analyze": ".analysis",
    "TemplateReport": ".analysis",
    "models": ".models",
    "Trace": ".trace",
    "Recorder": ".recorder",
    "otel": ".otel",
    "tool": ".tools",
    "Tool": ".tools",
    "ToolCallRecord": ".tools",
    "ToolError": ".tools",
    "ToolExecutionError": ".tools",
    "ToolCallAnswer": ".answer",
    "ToolResults": ".answer",
    "ModelError": ".models.base",
}
_MODULES = frozenset({"models", "otel"})  # names that are submodules, not attributes of one


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


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(where, __name__)
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
