"""A tool call as the model asked for it (OpenAI's shape).

It lives below both the backends, which produce calls, and the tools, which run them, so neither has to import the
other to name one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's shape, for calls whose id is empty or missing."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class ToolCall:
    """One call the model asked for. ``arguments_json`` is exactly what the model sent."""

    id: str
    name: str
    arguments_json: str = "{}"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = new_call_id()

    @property
    def arguments(self) -> dict:
        """Parsed arguments; raises ``ValueError`` when the model sent something that is not a JSON object."""
        text = self.arguments_json.strip() or "{}"
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
        return value

    def to_openai(self) -> dict:
        """The assistant-message form OpenAI expects (arguments as a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json or "{}"},
        }
