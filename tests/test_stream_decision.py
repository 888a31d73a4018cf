"""Answers are streamed when someone listens and plain when nobody does (issue 10), proved by the request bodies the
scripted server received and by the events the listeners got; the plain path keeps what streaming gave (text, tool
calls, usage), and the transport's per-loop clients are closed when their loop shuts down."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from helpers import AUTO_LOOP

import guidance_lite as gl
import guidance_lite.events as ev
from guidance_lite.testing import ScriptedServer

CHAT = "{{#user}}hi{{/user}}{{#assistant}}{{gen 'answer' ARGS}}{{/assistant}}"
WORDS = "the weather in Paris is sunny today"


def model_for(server: ScriptedServer) -> Any:
    return gl.models.OpenAI("scripted-model", base_url=server.base_url)


def program(server: ScriptedServer, args: str = "", **options: Any) -> gl.Program:
    return gl.Program(CHAT.replace("ARGS", args), model=model_for(server), silent=True, **options)


def streamed(server: ScriptedServer) -> list[bool]:
    """Whether each request the server received asked for a stream (absent counts as no)."""
    return [bool(request.get("stream")) for request in server.requests]


def test_a_silent_run_asks_for_a_plain_answer_and_keeps_text_and_usage(scripted_server: ScriptedServer) -> None:
    scripted_server.push(WORDS)
    result = program(scripted_server)()
    assert result["answer"] == WORDS
    assert streamed(scripted_server) == [False] and "stream_options" not in scripted_server.requests[0]
    assert result.usage.total_tokens > 0 and not result.usage.estimated  # the server's own counts


def test_stream_gets_every_delta_of_a_streamed_answer(scripted_server: ScriptedServer) -> None:
    scripted_server.push(WORDS)
    events = list(program(scripted_server).stream())
    deltas = [e.text for e in events if isinstance(e, ev.TextDelta)]
    assert streamed(scripted_server) == [True]
    assert len(deltas) > 1 and "".join(deltas) == WORDS
    assert isinstance(events[-1], ev.Finished) and events[-1].result["answer"] == WORDS


async def test_astream_gets_every_delta_of_a_streamed_answer(scripted_server: ScriptedServer) -> None:
    scripted_server.push(WORDS)
    deltas = [e.text async for e in program(scripted_server).astream() if isinstance(e, ev.TextDelta)]
    assert streamed(scripted_server) == [True]
    assert len(deltas) > 1 and "".join(deltas) == WORDS


async def test_tool_calls_arrive_the_same_plain_and_streamed(scripted_server: ScriptedServer) -> None:
    def get_weather(city: str) -> str:
        """The weather.

        Args:
            city: where
        """
        return f"sunny in {city}"

    results = []
    for listen in (False, True):
        scripted_server.push(
            {"tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]}, "It is sunny."
        )
        loop = gl.Program(AUTO_LOOP, model=model_for(scripted_server), silent=True)
        if listen:
            events = [e async for e in loop.astream(question="Weather?", tools=[get_weather])]
            assert any(isinstance(e, ev.ToolCallDelta) for e in events)
            result = events[-1].result
        else:
            result = await loop.arun(question="Weather?", tools=[get_weather])
        results.append((result["answer"], [(t.name, t.arguments, t.result) for t in result.tool_calls]))
    assert streamed(scripted_server) == [False, False, True, True]
    assert results[0] == results[1] == ("It is sunny.", [("get_weather", {"city": "Paris"}, "sunny in Paris")])


@pytest.mark.parametrize(
    ("args", "streams"),
    [
        ("stop='.'", False),  # the server stops there itself
        ("stop=['x', 'y', 'z', 'q']", False),
        ("stop=['x', 'y', 'z', 'q', 'w']", True),  # OpenAI takes 4: the fifth is enforced by ending the stream
        ("stop_regex='[0-9]'", True),
        ("stream=True", True),  # as the gen says
    ],
)
def test_a_silent_run_streams_only_when_a_stop_needs_it(
    scripted_server: ScriptedServer, args: str, streams: bool
) -> None:
    scripted_server.push("no digits here")
    assert program(scripted_server, args)()["answer"] == "no digits here"
    assert streamed(scripted_server) == [streams]


def test_stream_false_is_kept_while_someone_listens(scripted_server: ScriptedServer) -> None:
    scripted_server.push(WORDS)
    deltas = [e.text for e in program(scripted_server, "stream=False").stream() if isinstance(e, ev.TextDelta)]
    assert streamed(scripted_server) == [False] and "".join(deltas) == WORDS  # the whole answer, as one delta


def test_a_stop_string_ends_a_plain_answer_like_a_streamed_one(scripted_server: ScriptedServer) -> None:
    scripted_server.push("one. two. three.", "one. two. three.")
    plain = program(scripted_server, "stop='two' save_stop_text=True")()
    watched = [e for e in program(scripted_server, "stop='two' save_stop_text=True").stream()][-1].result
    assert streamed(scripted_server) == [False, True]
    assert plain["answer"] == watched["answer"] == "one. "
    assert plain["answer_stop_text"] == watched["answer_stop_text"] == "two"


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """A real IPython shell recording its displays (so that a run gets the live view)."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    instance = InteractiveShell.instance(config=config)
    instance.display_pub = CapturingDisplayPublisher()
    yield instance
    InteractiveShell.clear_instance()


def test_the_live_view_streams(scripted_server: ScriptedServer, shell: Any) -> None:
    scripted_server.push(WORDS)
    gl.Program(CHAT.replace("ARGS", ""), model=model_for(scripted_server))()
    assert streamed(scripted_server) == [True]


def test_an_event_stream_sent_for_a_plain_request_is_read_as_a_stream(scripted_server: ScriptedServer) -> None:
    chunk = '{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "%s"}, "finish_reason": %s}]}'
    events = [chunk % ("Hello", "null"), chunk % (" there", '"stop"'), "[DONE]"]
    scripted_server.push({"raw_stream": [f"data: {event}\n\n" for event in events]})
    assert program(scripted_server)()["answer"] == "Hello there"
    assert streamed(scripted_server) == [False]


def test_the_clients_of_a_loop_are_closed_when_it_shuts_down(scripted_server: ScriptedServer) -> None:
    model = model_for(scripted_server)
    scripted_server.push(WORDS, WORDS)
    clients = []

    async def both() -> None:
        await gl.Program(CHAT.replace("ARGS", ""), model=model, silent=True).arun()
        await gl.Program(CHAT.replace("ARGS", "stream=True"), model=model, silent=True).arun()
        clients.extend([model.transport.client(), model.transport.client(streamed=True)])
        assert not any(client.is_closed() for client in clients)

    asyncio.run(both())
    assert len(clients) == 2 and all(client.is_closed() for client in clients)
