"""Our OpenAI-compatible backends against a real local server: ``python -m llama_cpp.server`` serving SmolLM2.

The server is started once for the module on a free 127.0.0.1 port and killed afterwards. If it can't start, the
tests fail with its stderr (no skipping): the server extra is part of what ``.ci/install-local`` installs.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import collect

from guidance_lite.models.base import GenRequest
from guidance_lite.models.completion import OpenAICompletion
from guidance_lite.models.openai import OpenAI

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def base_url(llama_server_url: str) -> str:
    """The session's shared llama_cpp.server (tests/conftest.py)."""
    return llama_server_url


class FakeTool:
    def __init__(self, name: str, parameters: dict) -> None:
        self.name, self.parameters = name, parameters

    def schema(self) -> dict:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": "Weather forecast for a city",
                "parameters": self.parameters,
            },
        }


WEATHER = FakeTool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def ask(text: str, **params: Any) -> GenRequest:
    messages = [{"role": "user", "content": text}]
    params.setdefault("max_tokens", 24)
    params.setdefault("temperature", 0)
    return GenRequest(messages_fn=lambda: messages, **params)


async def test_chat_backend_plain_reply(base_url: str) -> None:
    model = OpenAI("smollm2", base_url=base_url)
    try:
        final = await model.complete(ask("What is the capital of France?", stream=False))
    finally:
        await model.aclose()
    choice = final.choices[0]
    assert choice.text.strip()
    assert choice.finish_reason in ("stop", "length")
    assert final.usage is not None and final.usage.completion_tokens > 0


async def test_chat_backend_streamed_reply(base_url: str) -> None:
    model = OpenAI("smollm2", base_url=base_url)
    try:
        deltas, final = await collect(model, ask("Name three colours."))
    finally:
        await model.aclose()
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == final.choices[0].text
    assert final.choices[0].text.strip()


async def test_completion_backend_plain_generation(base_url: str) -> None:
    model = OpenAICompletion("smollm2", base_url=base_url, chat_template="chatml", tool_format="hermes")
    try:
        deltas, final = await collect(model, ask("What is the capital of France?"))
    finally:
        await model.aclose()
    text = final.choices[0].text
    assert text.strip()
    assert "<|im_end|>" not in text and "<|im_start|>" not in text  # the template's stop sequence ended the turn
    assert "".join(d.text for d in deltas) == text


async def test_completion_backend_prompt_with_a_tool(base_url: str) -> None:
    """A forced call: the prompt ends with the start of a hermes call, so the model completes one (greedy decoding;
    the server does not constrain it, so only the shape is checked, not the arguments' schema)."""
    model = OpenAICompletion("smollm2", base_url=base_url, chat_template="chatml", tool_format="hermes")
    request = ask(
        "Weather in Paris? Call get_weather with city Paris.", tools=[WEATHER], tool_choice="get_weather", max_tokens=60
    )
    try:
        deltas, final = await collect(model, request)
    finally:
        await model.aclose()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.name for c in choice.tool_calls] == ["get_weather"]
    call = choice.tool_calls[0]
    assert call.id and isinstance(call.arguments, dict)
    streamed = [d for d in deltas if d.tool_index is not None]
    assert streamed and all(d.tool_index == 0 for d in streamed)
    assert "".join(d.tool_arguments for d in streamed) == call.arguments_json
    assert "<tool_call>" not in "".join(d.text for d in deltas)
