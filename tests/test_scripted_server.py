"""ScriptedServer speaks OpenAI's wire format: checked with the real openai SDK and with raw HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import openai
import pytest
from helpers import Overlap

from guidance_lite.testing import DEFAULT_REPLY, ScriptedServer, ScriptError

MESSAGES = [{"role": "user", "content": "hi"}]


def client(server: ScriptedServer, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=max_retries)


def raw_post(server: ScriptedServer, path: str, body: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def sse_events(data: bytes) -> list:
    events = [line[len(b"data: ") :] for line in data.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_empty_queue_replies_ok_and_records_requests(scripted_server: ScriptedServer) -> None:
    response = client(scripted_server).chat.completions.create(model="m", messages=MESSAGES, temperature=0.5)
    assert response.choices[0].message.content == DEFAULT_REPLY == "ok"
    assert response.choices[0].finish_reason == "stop"
    (record,) = scripted_server.requests
    assert record["path"] == "/v1/chat/completions"
    assert record["messages"] == MESSAGES and record["temperature"] == 0.5 and record["model"] == "m"
    assert "test-key" not in json.dumps(scripted_server.requests)  # headers (credentials) are not recorded


def test_replies_are_used_in_order(scripted_server: ScriptedServer) -> None:
    scripted_server.push("one", {"content": "two"})
    c = client(scripted_server)
    texts = [c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content for _ in range(3)]
    assert texts == ["one", "two", "ok"]
    assert scripted_server.pending == 0


def test_script_computes_replies() -> None:
    def echo(body: dict) -> str:
        return "you said " + body["messages"][-1]["content"]

    with ScriptedServer(echo) as server:
        c = client(server)
        answer = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert answer.choices[0].message.content == "you said ping"


def test_a_failing_script_is_a_clear_500(scripted_server: ScriptedServer) -> None:
    scripted_server.script = lambda body: 1 / 0
    with pytest.raises(openai.InternalServerError, match="script failed: ZeroDivisionError"):
        client(scripted_server, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert len(scripted_server.requests) == 1  # x-should-retry: false, so the SDK did not retry


def test_push_checks_replies() -> None:
    server = ScriptedServer()
    with pytest.raises(ScriptError, match="unknown reply key"):
        server.push({"contents": "typo"})
    with pytest.raises(ScriptError, match="needs a 'name'"):
        server.push({"tool_calls": [{"arguments": {}}]})
    with pytest.raises(ScriptError, match="must be a str or a dict"):
        server.push(42)  # type: ignore[arg-type]
    assert server.pending == 0


def test_streamed_text_and_usage(scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {"content": "Hello streaming world", "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    )
    chunks = list(
        client(scripted_server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == ["Hello", " streaming", " world"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8


def test_streamed_usage_only_when_asked(scripted_server: ScriptedServer) -> None:
    chunks = list(client(scripted_server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    scripted_server.push({"content": "x", "usage": False})
    response = client(scripted_server).chat.completions.create(model="m", messages=MESSAGES)
    assert response.usage is None


def test_streamed_parallel_tool_calls_look_like_openai(scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {
            "chunk_size": 3,
            "tool_calls": [
                {"id": "call_a", "name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_time", "arguments": '{"zone": "UTC"}'},
            ],
        }
    )
    status, headers, data = raw_post(
        scripted_server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True}
    )
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    deltas = [e["choices"][0]["delta"] for e in sse_events(data)]
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    heads = [t for t in tool_deltas if "id" in t]
    assert [(h["index"], h["type"], h["function"]) for h in heads] == [
        (0, "function", {"name": "get_weather", "arguments": ""}),
        (1, "function", {"name": "get_time", "arguments": ""}),
    ]
    assert heads[0]["id"] == "call_a" and heads[1]["id"].startswith("call_")
    fragments = [t for t in tool_deltas if "id" not in t]
    assert all(set(t) == {"index", "function"} and set(t["function"]) == {"arguments"} for t in fragments)
    by_index = {i: "".join(t["function"]["arguments"] for t in fragments if t["index"] == i) for i in (0, 1)}
    assert by_index == {0: '{"city": "Paris"}', 1: '{"zone": "UTC"}'}
    assert all(len(t["function"]["arguments"]) <= 3 for t in fragments)
    assert sse_events(data)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_omit_ids(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"omit_ids": True, "tool_calls": [{"name": "f", "arguments": {}}]})
    _, _, data = raw_post(scripted_server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True})
    heads = [
        e["choices"][0]["delta"]["tool_calls"][0] for e in sse_events(data) if "tool_calls" in e["choices"][0]["delta"]
    ]
    assert heads and all("id" not in h for h in heads)
    scripted_server.push({"omit_ids": True, "tool_calls": [{"name": "f", "arguments": {"a": 1}}]})
    _, _, data = raw_post(scripted_server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    (call,) = json.loads(data)["choices"][0]["message"]["tool_calls"]
    assert "id" not in call and call["function"] == {"name": "f", "arguments": '{"a": 1}'}


def test_n_choices_stream_and_plain(scripted_server: ScriptedServer) -> None:
    scripted_server.push(["alpha beta", "gamma"], "same")
    chunks = list(client(scripted_server).chat.completions.create(model="m", messages=MESSAGES, n=2, stream=True))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "alpha beta", 1: "gamma"}
    response = client(scripted_server).chat.completions.create(model="m", messages=MESSAGES, n=3)
    assert [c.message.content for c in response.choices] == ["same"] * 3
    assert [c.index for c in response.choices] == [0, 1, 2]


def test_legacy_completions(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": "a completion"}, {"text": "streamed text here", "chunk_size": 5})
    c = client(scripted_server)
    response = c.completions.create(model="m", prompt="Once upon")
    assert response.choices[0].text == "a completion" and response.usage.prompt_tokens > 0
    chunks = list(c.completions.create(model="m", prompt="Once upon", stream=True))
    assert [ch.choices[0].text for ch in chunks] == ["strea", "med t", "ext h", "ere", ""]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert scripted_server.requests[0]["path"] == "/v1/completions"
    assert scripted_server.requests[0]["prompt"] == "Once upon"


def test_models_endpoint() -> None:
    with ScriptedServer(model="my-model") as server:
        assert [m.id for m in client(server).models.list()] == ["my-model"]


def test_error_replies_have_openai_shape(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"status": 429, "error_message": "too fast", "retry_after": 0.25})
    status, headers, data = raw_post(scripted_server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert status == 429 and headers["retry-after-ms"] == "250"
    assert json.loads(data) == {
        "error": {"message": "too fast", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    }
    scripted_server.push({"status": 400, "error_message": "bad"})
    with pytest.raises(openai.BadRequestError, match="bad"):
        client(scripted_server).chat.completions.create(model="m", messages=MESSAGES)


def test_unknown_endpoint_is_404(scripted_server: ScriptedServer) -> None:
    status, _, data = raw_post(scripted_server, "/v1/embeddings", {"input": "x"})
    assert status == 404 and "no endpoint POST /v1/embeddings" in json.loads(data)["error"]["message"]


def test_drop_after_chunks_breaks_the_stream(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "one two three four", "drop_after_chunks": 2})
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client(scripted_server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "one"]  # the role chunk, then one piece, then the connection closed


def test_drop_on_a_plain_request_closes_without_answer(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "x", "drop_after_chunks": 0})
    with pytest.raises(openai.APIConnectionError):
        client(scripted_server).chat.completions.create(model="m", messages=MESSAGES)


def test_delay_and_latency_are_applied() -> None:
    with ScriptedServer(latency=0.1) as server:
        server.push({"content": "late", "delay": 0.1})
        start = time.perf_counter()
        client(server).chat.completions.create(model="m", messages=MESSAGES)
        assert time.perf_counter() - start >= 0.2


async def test_serves_concurrently() -> None:
    overlap = Overlap(100)  # a reply is made only once all 100 requests are being answered at the same time

    def script(body: dict) -> str:
        overlap.wait()
        return body["messages"][0]["content"]

    with ScriptedServer(script) as server:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            answers = await asyncio.gather(
                *(
                    c.chat.completions.create(model="m", messages=[{"role": "user", "content": str(i)}])
                    for i in range(100)
                )
            )
        assert server.max_in_flight == 100
    assert sorted(int(a.choices[0].message.content) for a in answers) == list(range(100))
    assert overlap.peak == 100


def test_max_in_flight_counts_requests_answered_at_once() -> None:
    overlap = Overlap(3)

    def script(body: dict) -> str:
        if body["messages"][0]["content"] == "together":
            overlap.wait()
        return "ok"

    with ScriptedServer(script) as server:
        client(server).chat.completions.create(model="m", messages=MESSAGES)
        client(server).chat.completions.create(model="m", messages=MESSAGES)
        assert server.max_in_flight == 1  # one after the other

        async def together() -> None:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
                messages = [{"role": "user", "content": "together"}]
                await asyncio.gather(*(c.chat.completions.create(model="m", messages=messages) for _ in range(3)))

        asyncio.run(together())
        assert server.max_in_flight == 3
        server.clear()
        assert server.in_flight == 0 and server.max_in_flight == 0


def test_stop_is_idempotent_and_really_stops() -> None:
    server = ScriptedServer().start()
    c = client(server)
    c.chat.completions.create(model="m", messages=MESSAGES)  # leaves a pooled keep-alive connection
    port = server.port
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(ConnectionRefusedError):
        socket_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        socket_conn.request("GET", "/v1/models")
    with pytest.raises(RuntimeError, match="not running"):
        server.base_url


# ---- misbehaving on purpose ------------------------------------------------------------------------------------------
def test_raw_body_is_sent_verbatim_with_its_status_and_type(scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {"raw_body": "<html>502</html>", "content_type": "text/html"}, {"raw_body": b"\xff", "status": 503}
    )
    status, headers, data = raw_post(scripted_server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert (status, headers["Content-Type"], data) == (200, "text/html", b"<html>502</html>")
    body = {"model": "m", "messages": MESSAGES, "stream": True}  # streamed requests get the raw body too
    status, headers, data = raw_post(scripted_server, "/v1/chat/completions", body)
    assert (status, headers["Content-Type"], data) == (503, "application/json", b"\xff")


def raw_chunks(server: ScriptedServer, body: dict, timeout: float = 10) -> tuple[list[tuple[float, bytes]], bool]:
    """The chunks of a chunked answer with their arrival times since the request was sent (so a server-side delay is
    a lower bound of them, however late this thread runs), and whether the body ended (False: the read timed out with
    the connection still open)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    start, chunks = time.monotonic(), []
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    try:
        while True:
            size = int(response.fp.readline().strip(), 16)
            if size == 0:
                return chunks, True
            chunks.append((time.monotonic() - start, response.fp.read(size)))
            response.fp.readline()
    except TimeoutError:
        return chunks, False
    finally:
        conn.close()


def test_raw_stream_sends_each_piece_as_one_chunk(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"raw_stream": ["data: {not json\n\n", b"", "data: [DONE]"]})
    chunks, ended = raw_chunks(scripted_server, {"model": "m", "messages": MESSAGES, "stream": True})
    assert [data for _, data in chunks] == [b"data: {not json\n\n", b"data: [DONE]"] and ended


def test_chunk_delay_and_stall_after_chunks(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "a b c", "chunk_delay": 0.1, "stall_after_chunks": 2})
    chunks, ended = raw_chunks(scripted_server, {"model": "m", "messages": MESSAGES, "stream": True}, timeout=1.0)
    assert not ended and len(chunks) == 2  # the role chunk and "a", then silence with the connection open
    assert chunks[0][0] >= 0.1 and chunks[1][0] >= 0.2  # a delay before each chunk (arrival gaps may shrink)


def test_hang_holds_the_request_until_the_client_leaves_or_the_server_stops() -> None:
    server = ScriptedServer().start()
    server.push({"hang": True}, {"hang": True})
    with pytest.raises(openai.APITimeoutError):
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=0.3).chat.completions.create(
            model="m", messages=MESSAGES
        )
    held = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    held.request("POST", "/v1/chat/completions", json.dumps({"model": "m", "messages": MESSAGES}))
    time.sleep(0.2)
    start = time.monotonic()
    server.stop()  # releases the held request: stop() does not wait for it to time out
    assert time.monotonic() - start < 5
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        held.getresponse()


def test_push_checks_raw_replies() -> None:
    server = ScriptedServer()
    with pytest.raises(ScriptError, match="raw_body must be str or bytes"):
        server.push({"raw_body": {"choices": []}})
    with pytest.raises(ScriptError, match="raw_stream must be a list of str or bytes"):
        server.push({"raw_stream": "data: x"})
