"""The tool formats by name: registration (one decorator per format class), lookup, and detection.

``detect_tool_format`` reads each registered class's own tell-tales (``chat_templates``, ``template_telltales``,
``model_names``), so a new format is recognised without touching this file.
"""

from __future__ import annotations

import re
from typing import Optional, TypeVar, Union

from .base import ToolFormat

FORMATS: dict[str, type[ToolFormat]] = {}  # name -> class, in registration order

FormatClass = TypeVar("FormatClass", bound=type[ToolFormat])


def register_tool_format(cls: FormatClass) -> FormatClass:
    """Class decorator: makes a ToolFormat subclass available by its ``name`` (``tool_format=`` of the backends,
    ``get_tool_format``) and to detection."""
    if not (isinstance(cls, type) and issubclass(cls, ToolFormat)):
        raise TypeError(f"@register_tool_format decorates ToolFormat subclasses, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name or name == ToolFormat.name:
        raise ValueError(f"{cls.__name__} needs a name of its own (class attribute name = '...')")
    if FORMATS.get(name, cls) is not cls:
        raise ValueError(f"a tool format named {name!r} is already registered ({FORMATS[name].__name__})")
    FORMATS[name] = cls
    return cls


def unregister_tool_format(name: str) -> None:
    """Forget a registered format (for tests that register their own)."""
    FORMATS.pop(name, None)


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

    First the format that declares one of our hand-written templates as its own, then the tell-tales of a Jinja
    source, then the model name; formats are tried in ``detection_priority`` order. None when nothing matches.
    """
    ranked = sorted(FORMATS.values(), key=lambda cls: cls.detection_priority)
    if chat_template:
        for cls in ranked:
            if chat_template in cls.chat_templates:
                return cls.name
        for cls in ranked:
            if any(telltale in chat_template for telltale in cls.template_telltales):
                return cls.name
    if model_name:
        lowered = model_name.lower()
        for cls in ranked:
            if cls.model_names and re.search(cls.model_names, lowered):
                return cls.name
    return None
