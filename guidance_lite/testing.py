"""ScriptedServer: an OpenAI-compatible HTTP server on 127.0.0.1 that answers with scripted replies.

Why a real server instead of mocking the SDK: tests, notebooks and benchmarks then exercise the real ``openai`` client,
HTTP, SSE streaming, retries and connection errors exactly as they happen against OpenAI, vLLM or llama.cpp. It uses
only the standard library (``http.server`` + threads; SSE and chunked transfer encoding are written by hand).

Usage::

    with ScriptedServer() as server:
        server.push("Hello!", {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})
        model = gl.models.OpenAI("scripted-model", base_url=server.base_url)
        ...
        server.requests  # every request body received, each with an extra "path" key
        server.max_in_flight  # the most requests it was answering at once (proof of concurrency)

Replies are used in order, one per request. A reply is a ``str`` (assistant text) or a ``dict`` with these keys:

- ``content``: assistant text (or None); ``text``: the text for ``/v1/completions`` (falls back to ``content``)
- ``tool_calls``: ``[{"id"?: str, "name": str, "arguments": dict | str}]`` (ids are generated when missing)
- ``finish_reason``: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``
- ``usage``: a usage dict to report, or ``False`` to report none (default: a rough characters/4 estimate)
- ``status``: an HTTP error status (e.g. 429, 500) answered with an OpenAI-style error JSON body;
  ``error_message`` sets its message, ``error_body`` replaces the whole JSON body (e.g. to mimic vLLM's shape),
  ``retry_after`` (seconds) sends a ``retry-after-ms`` header so the SDK retries quickly
- ``drop_after_chunks``: streaming: close the connection abruptly after this many SSE events; a non-streamed
  request with this key gets its connection closed without any response
- ``chunk_size``: split content and tool arguments into pieces this many characters long (default: word by word)
- ``omit_ids``: send tool calls without ids (as some local servers do)
- ``delay``: extra seconds to wait before answering this request (on top of the server's ``latency``)

Misbehaving servers (for tests of what a client does with them):

- ``raw_body``: str or bytes sent verbatim as the whole HTTP body (streamed requests too), with ``status``
  (default 200) and ``content_type`` (default ``application/json``): an HTML 502 page, a body that is not JSON,
  ``{"choices": null}``...
- ``raw_stream``: a list of str or bytes, each sent verbatim as one chunk of a chunked body with ``content_type``
  (default ``text/event-stream``); nothing is added (write ``data: ...\n\n`` and ``data: [DONE]\n\n`` yourself,
  or leave them out to truncate the stream). ``drop_after_chunks``, ``stall_after_chunks`` and ``chunk_delay``
  count these pieces.
- ``hang``: accept the request and never answer (the handler waits until the client disconnects or the server
  stops) — a server that hangs.
- ``stall_after_chunks``: streaming: send this many chunks, then nothing more while keeping the connection open
  (until the client disconnects or the server stops) — a stream that stalls.
- ``chunk_delay``: streaming: seconds to wait before each chunk — a slow stream.

A request asking for ``n > 1`` choices may get a list of replies (one per choice); a single reply is repeated.
Instead of ``push()`` a ``script(request_body) -> reply`` callable may compute replies (it is used when the queue is
empty). When the queue is empty and there is no script, the server replies ``"ok"``.
"""

from __future__ import annotations

import json
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Union

from .errors import GuidanceLiteError

Reply = Union[str, dict, list]
Script = Callable[[dict], Reply]

DEFAULT_REPLY = "ok"
REPLY_KEYS = frozenset(
    {
        "content",
        "text",
        "tool_calls",
        "finish_reason",
        "usage",
        "status",
        "error_message",
        "error_body",
        "retry_after",
        "drop_after_chunks",
        "chunk_size",
        "omit_ids",
        "delay",
        "raw_body",
        "raw_stream",
        "content_type",
        "hang",
        "stall_after_chunks",
        "chunk_delay",
    }
)
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_WORD_PIECES = re.compile(r"\s*\S+|\s+")
SSE_TYPE = "text/event-stream"
HOLD_POLL_SECONDS = 0.05  # how often a held connection checks whether the client left or the server stopped


class ScriptError(GuidanceLiteError, ValueError):
    """A reply the server can't use (raised by ``push``; answered as HTTP 500 when a script returns it)."""


def normalize_reply(reply: Reply) -> Union[dict, list[dict]]:
    """Check a reply and return it as a dict (or a list of dicts, one per choice)."""
    if isinstance(reply, list):
        if not reply:
            raise ScriptError("a list reply needs one reply per choice; got an empty list")
        return [_normalize_one(r) for r in reply]
    return _normalize_one(reply)


def _normalize_one(reply: Any) -> dict:
    if isinstance(reply, str):
        return {"content": reply}
    if not isinstance(reply, dict):
        raise ScriptError(f"a reply must be a str or a dict, got {type(reply).__name__}: {reply!r}")
    unknown = set(reply) - REPLY_KEYS
    if unknown:
        raise ScriptError(f"unknown reply key(s) {sorted(unknown)}; valid keys are {sorted(REPLY_KEYS)}")
    for call in reply.get("tool_calls") or []:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ScriptError(f"each tool call needs a 'name' (and 'arguments'): got {call!r}")
    if "raw_body" in reply and not isinstance(reply["raw_body"], (str, bytes)):
        raise ScriptError(f"raw_body must be str or bytes, got {type(reply['raw_body']).__name__}")
    if "raw_stream" in reply and (
        not isinstance(reply["raw_stream"], list) or not all(isinstance(p, (str, bytes)) for p in reply["raw_stream"])
    ):
        raise ScriptError("raw_stream must be a list of str or bytes pieces (each sent as one chunk)")
    return dict(reply)


def _as_bytes(piece: Union[str, bytes]) -> bytes:
    return piece if isinstance(piece, bytes) else piece.encode("utf-8", "surrogatepass")  # lone surrogates too


def _pieces(text: str, size: Optional[int]) -> list[str]:
    """Split text into streaming pieces: fixed-size slices (mid-string, like real tokenizers) or words."""
    if not text:
        return []
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)]
    return _WORD_PIECES.findall(text)


def _rough_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _tool_calls(reply: dict) -> list[dict]:
    """The reply's tool calls in OpenAI's message shape (ids generated unless ``omit_ids``)."""
    calls = []
    for call in reply.get("tool_calls") or []:
        entry: dict = {
            "type": "function",
            "function": {"name": call["name"], "arguments": _arguments_text(call.get("arguments"))},
        }
        if not reply.get("omit_ids"):
            entry = {"id": call.get("id") or "call_" + uuid.uuid4().hex[:24], **entry}
        calls.append(entry)
    return calls


def _finish_reason(reply: dict) -> str:
    return reply.get("finish_reason") or ("tool_calls" if reply.get("tool_calls") else "stop")


def _prompt_text(body: dict) -> str:
    if "messages" in body:
        return json.dumps(body.get("messages"))
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: benchmarks open 100+ connections at once
    allow_reuse_address = True
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (an interrupted program, a timeout, a size cap) is normal, not a
        traceback on stderr (which would land in the next notebook cell)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers (the SDK pools connections)
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and notebooks read their own output
        return None

    def setup(self) -> None:
        super().setup()
        # small SSE writes must leave at once (Nagle + delayed ACK otherwise add ~40 ms to every request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.scripted._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.scripted._track(self.connection, False)

    # ---- plumbing ---------------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: Optional[dict] = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, *, retry: bool = True, code: Optional[str] = None) -> None:
        error_type = _ERROR_TYPES.get(status, ("server_error", None))[0]
        headers = {} if retry else {"x-should-retry": "false"}
        self._send_json(
            status, {"error": {"message": message, "type": error_type, "param": None, "code": code}}, headers
        )

    def _drop(self) -> None:
        """Close the connection abruptly (no chunked terminator): the client sees a broken stream."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hold(self) -> None:
        """Keep the connection open and send nothing until the client disconnects or the server stops."""
        self.close_connection = True
        stopping = self.server.scripted._stopping
        try:
            self.wfile.flush()
            while not stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], HOLD_POLL_SECONDS)
                if readable and not self.connection.recv(65536):  # b'': the client went away
                    return
        except OSError:
            return

    def _send_raw(self, reply: dict) -> None:
        """``raw_body`` verbatim, with ``status`` (default 200) and ``content_type``."""
        data = _as_bytes(reply["raw_body"])
        self.send_response(int(reply.get("status") or 200))
        self.send_header("Content-Type", reply.get("content_type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client gave up (a size cap, a timeout)
            self.close_connection = True

    def _path(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path if path.startswith("/v1/") else "/v1" + path

    # ---- endpoints ----------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        scripted = self.server.scripted
        path = self._path()
        scripted._record({"path": path})
        if path == "/v1/models":
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": scripted.model, "object": "model", "created": 0, "owned_by": "guidance_lite"}],
                },
            )
        else:
            self._error(404, f"ScriptedServer has no endpoint GET {path}", retry=False)

    def do_POST(self) -> None:
        scripted = self.server.scripted
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as err:
            scripted._record({"path": path, "invalid_body": raw.decode("utf-8", "replace")})
            self._error(400, f"ScriptedServer could not parse the request body as JSON: {err}", retry=False)
            return
        record = {"path": path, **body}
        scripted._record(record)
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._error(404, f"ScriptedServer has no endpoint POST {path}", retry=False)
            return
        scripted._in_flight_change(+1)  # until the answer starts going out (a client can't see it end before then)
        try:
            reply = scripted._next_reply(record)
            first = reply[0] if isinstance(reply, list) else reply
            answering = scripted._pause(scripted.latency + float(first.get("delay") or 0.0))
        except Exception as err:  # a failing script becomes a clear, non-retried HTTP 500 for the client
            scripted._in_flight_change(-1)
            self._error(500, f"ScriptedServer script failed: {type(err).__name__}: {err}", retry=False)
            return
        scripted._in_flight_change(-1)
        if not answering:
            return  # the server is stopping
        if first.get("hang"):
            self._hold()
        elif "raw_body" in first:
            self._send_raw(first)
        elif "raw_stream" in first:
            self._send_chunks(
                [_as_bytes(piece) for piece in first["raw_stream"]], first, first.get("content_type") or SSE_TYPE
            )
        elif first.get("status"):
            self._send_error_reply(first)
        elif "drop_after_chunks" in first and not body.get("stream"):
            self._drop()
        elif path == "/v1/chat/completions":
            self._answer_chat(body, reply)
        else:
            self._answer_completion(body, reply)

    def _send_error_reply(self, reply: dict) -> None:
        status = int(reply["status"])
        headers = {}
        if reply.get("retry_after") is not None:
            headers["retry-after-ms"] = str(int(float(reply["retry_after"]) * 1000))
        if reply.get("error_body") is not None:
            self._send_json(status, reply["error_body"], headers)
            return
        error_type, code = _ERROR_TYPES.get(status, ("server_error", None))
        message = reply.get("error_message") or f"scripted error {status}"
        self._send_json(
            status, {"error": {"message": message, "type": error_type, "param": None, "code": code}}, headers
        )

    def _choices(self, body: dict, reply: Union[dict, list[dict]]) -> list[dict]:
        n = int(body.get("n") or 1)
        replies = reply if isinstance(reply, list) else [reply]
        return [replies[i] if i < len(replies) else replies[-1] for i in range(n)]

    def _usage(self, body: dict, completions: list[str], reply: dict) -> Optional[dict]:
        if reply.get("usage") is False:
            return None
        if isinstance(reply.get("usage"), dict):
            return reply["usage"]
        prompt = _rough_tokens(_prompt_text(body))
        completion = sum(_rough_tokens(text) for text in completions)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _envelope(self, obj: str) -> dict:
        prefix = "chatcmpl-" if obj.startswith("chat") else "cmpl-"
        return {
            "id": prefix + uuid.uuid4().hex[:24],
            "object": obj,
            "created": int(time.time()),
            "model": self.server.scripted.model,
        }

    def _answer_chat(self, body: dict, reply: Union[dict, list[dict]]) -> None:
        choices = self._choices(body, reply)
        first = choices[0]
        calls = [_tool_calls(choice) for choice in choices]
        generated = [
            (c.get("content") or "") + "".join(t["function"]["arguments"] for t in cs) for c, cs in zip(choices, calls)
        ]
        usage = self._usage(body, generated, first)
        if not body.get("stream"):
            payload = self._envelope("chat.completion")
            payload["choices"] = []
            for i, (choice, choice_calls) in enumerate(zip(choices, calls)):
                message: dict = {"role": "assistant", "content": choice.get("content"), "refusal": None}
                if choice_calls:
                    message["tool_calls"] = choice_calls
                payload["choices"].append(
                    {"index": i, "message": message, "logprobs": None, "finish_reason": _finish_reason(choice)}
                )
            if usage is not None:
                payload["usage"] = usage
            self._send_json(200, payload)
            return
        envelope = self._envelope("chat.completion.chunk")
        per_choice = [self._chat_deltas(choice, choice_calls) for choice, choice_calls in zip(choices, calls)]
        events: list[dict] = []
        for step in range(max(len(d) for d in per_choice)):  # interleave choices, as OpenAI does
            for i, deltas in enumerate(per_choice):
                if step < len(deltas):
                    delta, finish = deltas[step]
                    events.append(
                        {
                            **envelope,
                            "choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}],
                        }
                    )
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            events.append({**envelope, "choices": [], "usage": usage})
        self._stream(events, first)

    def _chat_deltas(self, reply: dict, calls: list[dict]) -> list[tuple[dict, Optional[str]]]:
        size = reply.get("chunk_size")
        content = reply.get("content")
        deltas: list[tuple[dict, Optional[str]]] = [({"role": "assistant", "content": "" if content else None}, None)]
        deltas += [({"content": piece}, None) for piece in _pieces(content or "", size)]
        for index, call in enumerate(calls):
            head: dict = {"index": index}
            if "id" in call:
                head["id"] = call["id"]
            head.update({"type": "function", "function": {"name": call["function"]["name"], "arguments": ""}})
            deltas.append(({"tool_calls": [head]}, None))
            deltas += [
                ({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
                for piece in _pieces(call["function"]["arguments"], size)
            ]
        deltas.append(({}, _finish_reason(reply)))
        return deltas

    def _answer_completion(self, body: dict, reply: Union[dict, list[dict]]) -> None:
        choices = self._choices(body, reply)
        texts: list[str] = [str(c["text"]) if c.get("text") is not None else (c.get("content") or "") for c in choices]
        usage = self._usage(body, texts, choices[0])
        if not body.get("stream"):
            payload = self._envelope("text_completion")
            payload["choices"] = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": _finish_reason(c)}
                for i, (c, text) in enumerate(zip(choices, texts))
            ]
            if usage is not None:
                payload["usage"] = usage
            self._send_json(200, payload)
            return
        envelope = self._envelope("text_completion")
        per_choice = [
            [(piece, None) for piece in _pieces(text, c.get("chunk_size"))] + [("", _finish_reason(c))]
            for c, text in zip(choices, texts)
        ]
        events: list[dict] = []
        for step in range(max(len(p) for p in per_choice)):
            for i, pieces in enumerate(per_choice):
                if step < len(pieces):
                    text, finish = pieces[step]
                    events.append(
                        {**envelope, "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": finish}]}
                    )
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            events.append({**envelope, "choices": [], "usage": usage})
        self._stream(events, choices[0])

    def _stream(self, events: list[dict], reply: dict) -> None:
        """Send SSE events, then ``data: [DONE]``."""
        payloads = [f"data: {json.dumps(event)}\n\n".encode() for event in events] + [b"data: [DONE]\n\n"]
        self._send_chunks(payloads, reply, SSE_TYPE)

    def _send_chunks(self, pieces: list[bytes], reply: dict, content_type: str) -> None:
        """Send pieces with chunked encoding (one chunk each), applying ``chunk_delay``, ``drop_after_chunks`` and
        ``stall_after_chunks``."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        drop_after = reply.get("drop_after_chunks")
        stall_after = reply.get("stall_after_chunks")
        delay = float(reply.get("chunk_delay") or 0.0)
        scripted = self.server.scripted
        try:
            for count, data in enumerate(pieces):
                if drop_after is not None and count >= int(drop_after):
                    self._drop()
                    return
                if stall_after is not None and count >= int(stall_after):
                    self._hold()
                    return
                if not scripted._pause(delay):
                    return
                if data:  # an empty chunk would end the body
                    self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
            if stall_after is not None:
                self._hold()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client gave up (a timeout, a size cap): nothing left to send
            self.close_connection = True


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1 answering scripted replies (see the module docstring)."""

    def __init__(
        self, script: Optional[Script] = None, *, latency: float = 0.0, model: str = "scripted-model", port: int = 0
    ) -> None:
        if script is not None and not callable(script):
            raise TypeError(f"script must be a callable taking the request body, got {type(script).__name__}")
        self.script = script
        self.latency = float(latency)
        self.model = model
        self.requests: list[dict] = []
        self._port = port
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._connections: set = set()
        self.in_flight = 0  # generation requests being answered right now
        self.max_in_flight = 0  # the most at once since start (or clear): requests that overlapped
        self._httpd: Optional[_HTTPServer] = None
        self._stopping = threading.Event()  # set by stop(): ends delays, stalls and hangs
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> ScriptedServer:
        """Start serving in a daemon thread (no-op when already running)."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.scripted = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"ScriptedServer:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open keep-alive connections (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the ScriptedServer is not running: call start() or use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to OpenAI clients."""
        return self.url + "/v1"

    # ---- scripting ------------------------------------------------------------------------------------------
    def push(self, *replies: Reply) -> ScriptedServer:
        """Queue replies, used one per request in order (checked now, so mistakes fail at the push)."""
        checked = [normalize_reply(reply) for reply in replies]
        with self._lock:
            self._queue.extend(checked)
        return self

    @property
    def pending(self) -> int:
        """Replies queued and not yet used."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Forget queued replies, recorded requests and the peak of requests in flight."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def _in_flight_change(self, step: int) -> None:
        with self._lock:
            self.in_flight += step
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server stops first (then False)."""
        return seconds <= 0 or not self._stopping.wait(seconds)

    def _record(self, record: dict) -> None:
        with self._lock:
            self.requests.append(record)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _next_reply(self, record: dict) -> Union[dict, list[dict]]:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.script is not None:
            return normalize_reply(self.script(dict(record)))
        return normalize_reply(DEFAULT_REPLY)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"ScriptedServer({where}, {len(self.requests)} requests, {self.pending} replies queued)"
