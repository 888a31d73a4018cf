"""Raw aiohttp with no SDK: the ceiling for what any Python client on asyncio can do per request (JSON bodies written
and parsed with the standard library). Variants: ``plain`` (one JSON response) and ``stream`` (SSE read line by line).
"""

from __future__ import annotations

import json

import aiohttp

from .clients import PooledBatch, Unavailable
from .scenarios import MAX_TOKENS, MODEL, question

HEADERS = {"Authorization": "Bearer unused", "Content-Type": "application/json"}


class AiohttpBatch(PooledBatch):
    def __init__(self, base_url: str, variant: str) -> None:
        if variant not in ("plain", "stream"):
            raise Unavailable(f"unknown aiohttp batch variant {variant!r}")
        self.stream = variant == "stream"
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=HEADERS)

    async def one(self, i: int) -> str:
        body: dict = {
            "model": MODEL,
            "messages": [{"role": "user", "content": question(i)}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
        }
        if not self.stream:
            async with self.session.post(self.url, data=json.dumps(body)) as response:
                response.raise_for_status()
                return json.loads(await response.read())["choices"][0]["message"]["content"]
        body.update(stream=True, stream_options={"include_usage": True})
        parts = []
        async with self.session.post(self.url, data=json.dumps(body)) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                if chunk["choices"]:
                    content = chunk["choices"][0]["delta"].get("content")
                    if content:
                        parts.append(content)
        return "".join(parts)

    async def close(self) -> None:
        await self.session.close()


def batch_client(variant: str, base_url: str) -> AiohttpBatch:
    return AiohttpBatch(base_url, variant)
