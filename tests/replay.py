"""Replaying recorded server answers byte for byte, and what a strict OpenAI-compatible server would reject.

Used by ``tests/test_server_shapes.py`` and by ``benchmarks/corpus_baseline.py`` (which puts tests/ on sys.path).
A :class:`ReplayServer` is a raw ``http.server`` on 127.0.0.1 that answers each request with the next recorded body
from ``tests/data/server_shapes`` exactly as stored (JSON bodies with their Content-Length, SSE streams event by
event with chunked encoding), so the real ``openai`` SDK parses the very bytes the server sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SERVER_SHAPES = Path(__file__).resolve().parent / "data" / "server_shapes"
FINAL_TEXT = {"json": "openai_text.json", "sse": "openai_text_stream.sse"}  # the recorded answer that ends a loop
QUESTION = "What is the weather in Paris and Lyon?"
# the template tool loop run over each shape's recorded turns
LOOP_TEMPLATE = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(rounds)~}}
{{#assistant~}}{{gen 'answer' tools=tools stream=streamed}}{{~/assistant}}
{{~#if not callable(answer)}}{{break}}{{/if~}}
{{#function~}}{{answer()}}{{~/function}}
{{~/each}}"""


def load_shapes() -> list[dict]:
    """Every server shape's sidecar (``<id>.expected.json``), sorted by id."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SERVER_SHAPES.glob("*.expected.json"))]


class ReplayServer:
    """Serves recorded bodies byte for byte, one per request, in order (the last one again when they run out);
    ``requests`` holds every request body received."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = list(bodies)
        self.requests: list[dict] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                replay.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                name = replay.bodies[min(len(replay.requests), len(replay.bodies)) - 1]
                data = (SERVER_SHAPES / name).read_bytes()
                self.send_response(200)
                if name.endswith(".sse"):
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for event in data.split(b"\n\n"):
                        if event:
                            piece = event + b"\n\n"
                            self.wfile.write(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"


def strict_server_problems(messages: list[dict]) -> list[str]:
    """What a strict OpenAI-compatible server would reject in a request's messages: calls without an id, an id used
    twice, a result for no unanswered call, calls never answered, arguments that are not a JSON string."""
    problems: list[str] = []
    seen: set[str] = set()
    pending: list[str] = []
    for number, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id in pending:
                pending.remove(call_id)
            else:
                problems.append(f"message {number}: tool result for {call_id!r}, which is not an unanswered call")
            continue
        if pending:
            problems.append(f"message {number}: calls {pending} were never answered")
            pending = []
        for call in message.get("tool_calls") or []:
            call_id = call.get("id")
            if not call_id:
                problems.append(f"message {number}: a call without id")
            elif call_id in seen:
                problems.append(f"message {number}: id {call_id!r} used twice")
            else:
                seen.add(call_id)
                pending.append(call_id)
            if not isinstance((call.get("function") or {}).get("arguments"), str):
                problems.append(f"message {number}: arguments are not a JSON string")
    if pending:
        problems.append(f"calls {pending} were never answered")
    return problems
