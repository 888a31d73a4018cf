"""A fast OpenAI-compatible chat-completions server for the peers benchmark, run in its own process.

Why not ``guidance_lite.testing.ScriptedServer``: it answers each request on its own thread with the standard
library's ``http.server``, and at concurrency 100 its own CPU caps the fastest clients (the issue measured raw aiohttp
at 0.45 of ideal for that reason). This server is one asyncio event loop that parses HTTP/1.1 by hand, waits the
latency with ``call_later`` (no thread per request) and writes each response in one go, so the client under test,
not the server, is what the figures show. A streamed answer thus reaches the client as one burst of SSE events, all
buffered at once: the same worst case on every run (with per-event writes, how many events pile up depends on how
the two processes happen to be scheduled), which shows whether a client hands each event on as it decodes it.
``GET /_stats`` reports the server process's CPU time, so the benchmark can say when the server saturates anyway.

The latency is part of the URL: ``base_url = http://127.0.0.1:PORT/latency/50/v1`` answers after 50 ms; one server
serves every scenario. ``…/latency/20/pace/2/v1`` instead spaces the SSE events 2 ms apart, one write each (a
server generating 500 tokens/s). Replies come from ``scenarios.reply`` (streamed word by word as SSE, or one JSON
body).

    python -m peers.server --port 0     # prints "READY <port>" and serves until its standard input closes
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import threading
import time
from typing import Any, Optional

from .scenarios import MODEL, reply

_PATH = re.compile(r"^(?:/latency/(\d+(?:\.\d+)?))?(?:/pace/(\d+(?:\.\d+)?))?(/v1)?(/[^?]*)")
_PIECES = re.compile(r"\s*\S+|\s+")
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_MAX_HEADER = 65536


def base_url(port: int, latency: float, pace: float = 0.0) -> str:
    """The ``base_url`` clients use to get answers after ``latency`` seconds (SSE events ``pace`` seconds apart)."""
    paced = f"/pace/{pace * 1000:g}" if pace else ""
    return f"http://127.0.0.1:{port}/latency/{latency * 1000:g}{paced}/v1"


def _rough_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _usage(body: dict, generated: str) -> dict:
    prompt = sum(
        _rough_tokens(str(m.get("content") or "")) + 4 for m in body.get("messages") or [] if isinstance(m, dict)
    )
    completion = _rough_tokens(generated)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chunk(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)


class Stats:
    """What ``GET /_stats`` reports."""

    def __init__(self) -> None:
        self.requests = 0
        self.ids = itertools.count()


class ChatProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection (requests answered in order; clients here never pipeline)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: Optional[asyncio.Transport] = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEADER:
                    self._send_now(self._json(431, {"error": {"message": "headers too large"}}, close=True))
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self._send_now(self._json(400, {"error": {"message": "bad request line"}}, close=True))
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._send_now(self._json(411, {"error": {"message": "send a Content-Length body"}}, close=True))
                return
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still arriving
            raw = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self._handle(method, target, raw)

    # ---- requests -------------------------------------------------------------------------------------------
    def _handle(self, method: str, target: str, raw: bytes) -> None:
        match = _PATH.match(target)
        latency = float(match.group(1)) / 1000 if match and match.group(1) else 0.0
        pace = float(match.group(2)) / 1000 if match and match.group(2) else 0.0
        path = match.group(4) if match else target
        if method == "GET" and path == "/_stats":
            self._send_now(self._json(200, {"cpu": time.process_time(), "requests": self.stats.requests}))
            return
        if method == "GET" and path == "/models":
            self._send_now(
                self._json(
                    200,
                    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]},
                )
            )
            return
        if method != "POST" or path != "/chat/completions":
            self._send_now(self._json(404, {"error": {"message": f"no endpoint {method} {path}"}}))
            return
        self.stats.requests += 1
        try:
            body = json.loads(raw or b"{}")
        except ValueError as err:
            self._send_now(self._json(400, {"error": {"message": f"bad JSON body: {err}"}}))
            return
        response = self._answer(body)
        if pace and len(response) > 1:
            for number, piece in enumerate(response):
                self.loop.call_later(latency + number * pace, self._send_now, piece)
        elif latency:
            self.loop.call_later(latency, self._send_now, b"".join(response))
        else:
            self._send_now(b"".join(response))

    def _answer(self, body: dict) -> list[bytes]:
        """The response in pieces: one for a JSON body, one per SSE event (sent apart only when paced)."""
        answer = reply(body)
        content: Optional[str] = answer.get("content")
        calls = answer.get("tool_calls") or []
        finish = "tool_calls" if calls else "stop"
        generated = (content or "") + "".join(c["arguments"] for c in calls)
        usage = _usage(body, generated)
        ident = f"chatcmpl-{next(self.stats.ids):024d}"
        created = int(time.time())
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return [
                self._json(
                    200,
                    {
                        "id": ident,
                        "object": "chat.completion",
                        "created": created,
                        "model": MODEL,
                        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                        "usage": usage,
                    },
                )
            ]
        prefix = 'data: {"id": "%s", "object": "chat.completion.chunk", "created": %d, "model": "%s", "choices": ' % (
            ident,
            created,
            MODEL,
        )
        deltas: list[tuple[dict, Optional[str]]] = [({"role": "assistant", "content": "" if content else None}, None)]
        deltas += [({"content": piece}, None) for piece in _PIECES.findall(content or "")]
        for index, call in enumerate(tool_calls):
            deltas.append(
                (
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    },
                    None,
                )
            )
            deltas += [
                ({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
                for piece in _PIECES.findall(call["function"]["arguments"])
            ]
        deltas.append(({}, finish))
        events = []
        for delta, reason in deltas:
            choice = json.dumps([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}])
            events.append(_chunk((prefix + choice + "}\n\n").encode()))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_chunk((prefix + '[], "usage": ' + json.dumps(usage) + "}\n\n").encode()))
        events[0] = _STREAM_HEAD + events[0]
        events.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return events

    # ---- responses ------------------------------------------------------------------------------------------
    @staticmethod
    def _json(status: int, payload: Any, *, close: bool = False) -> bytes:
        data = json.dumps(payload).encode()
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            411: "Length Required",
            431: "Request Header Fields Too Large",
        }.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        return head.encode() + data

    def _send_now(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if data.startswith(b"HTTP/") and b"\r\nConnection: close\r\n" in data[:300]:
            self.transport.close()


async def serve(port: int) -> None:
    """Serve until standard input closes (the parent ended or said stop)."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    server = await loop.create_server(lambda: ChatProtocol(stats), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print(f"READY {bound}", flush=True)
    async with server:
        await stop.wait()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
