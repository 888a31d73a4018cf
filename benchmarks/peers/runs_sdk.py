"""The bare ``openai`` SDK, written as its documentation shows: the baselines guidance_lite is built on.

Batch variants are ``<transport>-<mode>``: transport ``httpx`` (the SDK's default HTTP client) or ``aiohttp``
(``openai[aiohttp]``'s ``DefaultAioHttpClient``), mode ``stream`` (SSE, text accumulated from the deltas) or ``plain``
(one JSON response). Every request sends the body guidance_lite sends for the same program.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from typing import Any, Optional

import openai

from .clients import FirstText, PooledBatch, Unavailable, warm_samples
from .scenarios import (
    FINAL_ANSWER,
    MAX_TOKENS,
    MODEL,
    SYSTEM_PROMPT,
    WEATHER_TOOL,
    get_weather,
    question,
    story,
    story_prompt,
    tool_question,
)

API_KEY = "unused"


def async_client(base_url: str, transport: str = "httpx") -> openai.AsyncOpenAI:
    if transport == "aiohttp":
        if importlib.util.find_spec("aiohttp") is None:
            raise Unavailable("aiohttp is not installed here (pip install 'openai[aiohttp]')")
        return openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, http_client=openai.DefaultAioHttpClient())
    if transport != "httpx":
        raise Unavailable(f"unknown transport {transport!r}")
    return openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY)


async def streamed_text(stream: Any) -> str:
    parts = []
    async for chunk in stream:
        if chunk.choices:
            content = chunk.choices[0].delta.content
            if content:
                parts.append(content)
    return "".join(parts)


class SdkBatch(PooledBatch):
    def __init__(self, base_url: str, variant: str) -> None:
        transport, _, mode = variant.partition("-")
        if mode not in ("stream", "plain"):
            raise Unavailable(f"unknown SDK batch variant {variant!r}")
        self.stream = mode == "stream"
        self.client = async_client(base_url, transport)

    async def one(self, i: int) -> str:
        messages = [{"role": "user", "content": question(i)}]
        if self.stream:
            stream = await self.client.chat.completions.create(
                model=MODEL,
                messages=messages,
                max_tokens=MAX_TOKENS,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
            )
            return await streamed_text(stream)
        response = await self.client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=MAX_TOKENS, temperature=0.0
        )
        return response.choices[0].message.content or ""

    async def close(self) -> None:
        await self.client.close()


def batch_client(variant: str, base_url: str) -> SdkBatch:
    return SdkBatch(base_url, variant)


def first_text(variant: str, base_url: str, words: int, repeats: int) -> list[float]:
    """Seconds from ``create(stream=True)`` to the first chunk with text: ``async`` (AsyncOpenAI) or ``sync``."""
    messages = [{"role": "user", "content": story_prompt(words)}]
    expected = story(words)
    if variant == "sync":
        client = openai.OpenAI(base_url=base_url, api_key=API_KEY)

        def once() -> float:
            watch = FirstText()
            for chunk in client.chat.completions.create(
                model=MODEL, messages=messages, temperature=0.0, stream=True, stream_options={"include_usage": True}
            ):
                if chunk.choices:
                    watch.add(chunk.choices[0].delta.content)
            return watch.seconds(expected, "the sync SDK")

        try:
            once()
            return [once() for _ in range(repeats)]
        finally:
            client.close()
    if variant != "async":
        raise Unavailable(f"unknown SDK first-text variant {variant!r}")

    async def run() -> list[float]:
        aclient = async_client(base_url)

        async def once() -> float:
            watch = FirstText()
            stream = await aclient.chat.completions.create(
                model=MODEL, messages=messages, temperature=0.0, stream=True, stream_options={"include_usage": True}
            )
            async for chunk in stream:
                if chunk.choices:
                    watch.add(chunk.choices[0].delta.content)
            return watch.seconds(expected, "the async SDK")

        try:
            return await warm_samples(once, repeats)
        finally:
            await aclient.close()

    return asyncio.run(run())


async def _tool_round(
    client: openai.AsyncOpenAI, messages: list[dict], stream: bool, model: str
) -> tuple[str, list[dict]]:
    """One request: the text and the tool calls (``{"id", "name", "arguments"}``), streamed or plain."""
    if not stream:
        response = await client.chat.completions.create(
            model=model, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto", temperature=0.0
        )
        message = response.choices[0].message
        return message.content or "", [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls or []
        ]
    chunks = await client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text: list[str] = []
    calls: dict[int, dict] = {}
    async for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for fragment in delta.tool_calls or []:
                entry = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = fragment.id or entry["id"]
                if fragment.function is not None:
                    entry["name"] = fragment.function.name or entry["name"]
                    entry["arguments"] += fragment.function.arguments or ""
    return "".join(text), [calls[i] for i in sorted(calls)]


async def hand_written_loop(
    client: openai.AsyncOpenAI, rounds: int, stream: bool, *, model: str = MODEL, question: Optional[str] = None
) -> str:
    """The tool loop written by hand: call, run the tools (in threads, as guidance_lite runs sync tools), repeat.
    Sends the same bodies as guidance_lite's loops (``bench_tool_loop.py`` checks that)."""
    messages: list[dict] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question or tool_question(rounds)},
    ]
    for _ in range(rounds + 1):
        text, calls = await _tool_round(client, messages, stream, model)
        if not calls:
            return text
        messages.append(
            {
                "role": "assistant",
                "content": text,
                "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in calls
                ],
            }
        )
        results = await asyncio.gather(*(asyncio.to_thread(get_weather, **json.loads(c["arguments"])) for c in calls))
        messages += [
            {"role": "tool", "tool_call_id": c["id"], "content": json.dumps(result)}
            for c, result in zip(calls, results)
        ]
    raise AssertionError(f"no final answer after {rounds + 1} requests")


def tool_loop(variant: str, base_url: str, rounds: int, repeats: int) -> list[float]:
    """Seconds per conversation written by hand: ``plain`` (non-streaming) or ``stream``."""
    if variant not in ("plain", "stream"):
        raise Unavailable(f"unknown SDK tool-loop variant {variant!r}")

    async def run() -> list[float]:
        client = async_client(base_url)

        async def once() -> float:
            started = time.perf_counter()
            final = await hand_written_loop(client, rounds, variant == "stream")
            seconds = time.perf_counter() - started
            if final != FINAL_ANSWER:
                raise AssertionError(f"hand-written loop answered {final!r}")
            return seconds

        try:
            return await warm_samples(once, repeats)
        finally:
            await client.close()

    return asyncio.run(run())
