"""Client-side tool-call formats: render tools/calls/results into a model family's prompt syntax, parse calls back.

``get_tool_format(name)`` gives a :class:`ToolFormat`; ``detect_tool_format(chat_template, model_name)`` picks a name
from a Jinja chat template's tell-tale strings or a model name. See ``base`` for the parsing rules all formats share.
"""
from __future__ import annotations

import re
from typing import Optional, Union

from .base import ToolFormat, ToolStreamParser
from .functionary import FunctionaryV32Format
from .generic import GenericJsonFormat
from .hermes import HermesFormat
from .llama3 import Llama3JsonFormat
from .mistral import MistralFormat, mistral_call_id

FORMATS: dict[str, type[ToolFormat]] = {
    "hermes": HermesFormat,
    "llama3_json": Llama3JsonFormat,
    "mistral": MistralFormat,
    "functionary_v3_2": FunctionaryV32Format,
    "generic_json": GenericJsonFormat,
}

# what each of our hand-written chat templates implies when nothing more specific is known
_TEMPLATE_DEFAULTS = {"chatml": "hermes", "llama3": "llama3_json", "mistral": "mistral", "gemma": "generic_json"}


def get_tool_format(name_or_format: Union[str, ToolFormat]) -> ToolFormat:
    """A ToolFormat instance from its name (or the instance itself)."""
    if isinstance(name_or_format, ToolFormat):
        return name_or_format
    cls = FORMATS.get(name_or_format) if isinstance(name_or_format, str) else None
    if cls is None:
        raise ValueError(f"unknown tool format {name_or_format!r}; use one of: {', '.join(FORMATS)}")
    return cls()


def detect_tool_format(chat_template: Optional[str], model_name: Optional[str] = None) -> Optional[str]:
    """The tool format a chat template (a Jinja source or one of our template names) or a model name implies.

    Jinja tell-tales: ``<tool_call>`` -> hermes, ``[TOOL_CALLS]`` -> mistral, ``>>>`` -> functionary_v3_2,
    ``<|python_tag|>``/``ipython`` -> llama3_json. None when nothing matches.
    """
    if chat_template:
        if chat_template in _TEMPLATE_DEFAULTS:
            return _TEMPLATE_DEFAULTS[chat_template]
        if "<tool_call>" in chat_template:
            return "hermes"
        if "[TOOL_CALLS]" in chat_template:
            return "mistral"
        if ">>>" in chat_template:
            return "functionary_v3_2"
        if "<|python_tag|>" in chat_template or "ipython" in chat_template:
            return "llama3_json"
    if model_name:
        name = model_name.lower()
        if "functionary" in name:
            return "functionary_v3_2"
        if "hermes" in name or "qwen" in name:
            return "hermes"
        if re.search(r"mistral|mixtral|ministral|codestral", name):
            return "mistral"
        if re.search(r"llama[-_ ]?3", name):
            return "llama3_json"
    return None


__all__ = ["ToolFormat", "ToolStreamParser", "FORMATS", "get_tool_format", "detect_tool_format", "HermesFormat",
           "Llama3JsonFormat", "MistralFormat", "FunctionaryV32Format", "GenericJsonFormat", "mistral_call_id"]
