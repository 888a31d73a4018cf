"""The OpenAI API and OpenAI-compatible servers: the chat backend ``OpenAI`` and the transport it shares with
``models.completion.OpenAICompletion`` (kani's engines/openai layout: engine, translation, function calling)."""

from __future__ import annotations

from .chat import OpenAI
from .transport import DEFAULT_BASE_URL, OpenAITransport

__all__ = ["OpenAI", "OpenAITransport", "DEFAULT_BASE_URL"]
