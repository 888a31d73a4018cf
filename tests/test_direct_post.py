"""Plain requests posted straight over aiohttp (``models/openai/direct.py``) keep the SDK's retry policy, errors and
headers; a client passed as ``client=`` (or no aiohttp) keeps the SDK path. Retries are counted at the server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

import guidance_lite as gl
from guidance_lite.errors import TemplateRuntimeError
from guidance_lite.models.openai import transport as transport_module
from guidance_lite.models.openai.direct import retry_delay, should_retry
from guidance_lite.testing import ScriptedServer

CHAT = "{{#user}}hi{{/user}}{{#assistant}}{{gen 'answer'}}{{/assistant}}"


def run(model: Any) -> Any:
    return gl.Program(CHAT, model=model, silent=True)()


def chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from."""
    found = [err]
    while found[-1].__cause__ is not None:
        found.append(found[-1].__cause__)
    return found


def plain_bodies(server: ScriptedServer) -> list[dict]:
    return [r for r in server.requests if r["path"] == "/v1/chat/completions" and not r.get("stream")]


def test_503_twice_then_an_answer_is_retried_by_the_direct_path(scripted_server: ScriptedServer) -> None:
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=2)
    scripted_server.push(*[{"status": 503, "retry_after": 0.01}] * 2, "recovered")
    assert run(model)["answer"] == "recovered"
    assert len(plain_bodies(scripted_server)) == 3
    assert len(model.transport.posters) == 1  # it went over the direct path


def test_retries_run_out_with_the_sdk_wording(scripted_server: ScriptedServer) -> None:
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    scripted_server.push(*[{"status": 503, "retry_after": 0.01, "error_message": "busy"}] * 2)
    with pytest.raises(TemplateRuntimeError, match=r"failed \(503\) even after 1 retries.*busy") as caught:
        run(model)
    assert any(isinstance(err, openai.InternalServerError) for err in chain(caught.value))
    assert len(plain_bodies(scripted_server)) == 2


def test_a_server_saying_x_should_retry_false_gets_one_request(scripted_server: ScriptedServer) -> None:
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.url + "/v2", max_retries=3)
    with pytest.raises(TemplateRuntimeError, match=r"\(404\)"):
        run(model)
    assert len(scripted_server.requests) == 1  # ScriptedServer's 404 says x-should-retry: false


def test_retry_after_is_waited_for(scripted_server: ScriptedServer) -> None:
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    scripted_server.push({"status": 429, "retry_after": 0.4}, "ok")
    started = time.monotonic()
    assert run(model)["answer"] == "ok"
    assert time.monotonic() - started >= 0.4  # a lower bound: the server asked for 0.4 s between the attempts


def test_retry_policy_is_the_sdks() -> None:
    assert should_retry(503, {}) and should_retry(429, {}) and should_retry(408, {}) and should_retry(409, {})
    assert not should_retry(400, {}) and not should_retry(404, {})
    assert not should_retry(503, {"x-should-retry": "false"}) and should_retry(400, {"x-should-retry": "true"})
    assert not should_retry(429, {"retry-after": "120"})  # longer than a minute: the SDK gives up
    assert retry_delay(2, 2, {"retry-after-ms": "250"}) == 0.25
    assert retry_delay(2, 2, {"retry-after": "3"}) == 3.0
    first, second = retry_delay(2, 2, None), retry_delay(2, 1, None)
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0  # 0.5 s doubling, up to 25% less


@pytest.fixture
def header_server() -> Iterator[tuple[str, list[dict]]]:
    """A server that answers every chat request with one answer and keeps each request's headers and query."""
    seen: list[dict] = []
    answer = json.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()


def test_headers_and_query_are_the_sdks(header_server: tuple[str, list[dict]], monkeypatch: Any) -> None:
    base_url, seen = header_server
    monkeypatch.setenv("OPENAI_ORG_ID", "org-42")
    model = gl.models.OpenAI(
        "m", base_url=base_url, api_key="sk-secret-1234", extra_headers={"X-Trace": "t1"}, extra_query={"v": "2"}
    )
    assert run(model)["answer"] == "hello"
    (headers,) = seen
    assert headers["path"] == "/v1/chat/completions?v=2"
    assert headers["authorization"] == "Bearer sk-secret-1234"
    assert headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert headers["openai-organization"] == "org-42"
    assert headers["x-trace"] == "t1" and headers["x-stainless-retry-count"] == "0"
    assert headers["content-type"] == "application/json"


def test_a_client_passed_in_keeps_the_sdk_path(scripted_server: ScriptedServer) -> None:
    client = openai.AsyncOpenAI(base_url=scripted_server.base_url, api_key="k", max_retries=1)
    model = gl.models.OpenAI("scripted-model", client=client)
    scripted_server.push({"status": 503, "retry_after": 0.01}, "via the sdk")
    assert run(model)["answer"] == "via the sdk"
    assert len(plain_bodies(scripted_server)) == 2
    assert len(model.transport.posters) == 0


def test_without_aiohttp_plain_requests_go_through_the_sdk(scripted_server: ScriptedServer, monkeypatch: Any) -> None:
    monkeypatch.setattr(transport_module, "aiohttp_installed", lambda: False)
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    scripted_server.push({"status": 500, "retry_after": 0.01}, "still plain")
    assert run(model)["answer"] == "still plain"
    assert len(plain_bodies(scripted_server)) == 2
    assert len(model.transport.posters) == 0
