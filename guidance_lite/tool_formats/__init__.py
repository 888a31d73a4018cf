"""Client-side tool-call formats: render tools/calls/results into a model family's prompt syntax, parse calls back.

Each format is one module holding one ``@register_tool_format`` class (see ``base.ToolFormat``); importing this
package registers the built-in ones. ``get_tool_format(name)`` gives an instance, ``detect_tool_format(chat_template,
model_name)`` picks a name from the registered formats' own tell-tales.
"""

from __future__ import annotations

# Importing a format module registers its format; this order is the order formats are listed in (errors, docs).
# isort: off
from . import hermes, llama3, mistral, functionary, generic  # noqa: F401

# isort: on
from .base import ToolFormat
from .functionary import FunctionaryV32Format
from .generic import GenericJsonFormat
from .hermes import HermesFormat
from .llama3 import Llama3JsonFormat
from .mistral import MistralFormat, mistral_call_id
from .registry import FORMATS, detect_tool_format, get_tool_format, register_tool_format, unregister_tool_format
from .stream_parser import ToolStreamParser

__all__ = [
    "ToolFormat",
    "ToolStreamParser",
    "FORMATS",
    "get_tool_format",
    "detect_tool_format",
    "register_tool_format",
    "unregister_tool_format",
    "HermesFormat",
    "Llama3JsonFormat",
    "MistralFormat",
    "FunctionaryV32Format",
    "GenericJsonFormat",
    "mistral_call_id",
]
