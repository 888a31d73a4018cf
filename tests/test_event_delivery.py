"""Events reach the consumer of ``program.stream()`` / ``astream()`` as each is decided, even when the server sends
the whole reply as one burst that is already buffered (the run then never waits on the socket between chunks).

Ordering is proven with a counter (how many text pieces the backend had handed to the run when the consumer got an
event), never with timings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Union

import guidance_lite as gl
from guidance_lite import events as ev
from guidance_lite.models.base import Completion, Delta, GenRequest
from guidance_lite.models.openai import OpenAI
from guidance_lite.testing import ScriptedServer

WORDS = [f"w{i} " for i in range(60)]
TEMPLATE = "{{#user}}Tell a story.{{/user}}{{#assistant}}{{gen 'story'}}{{/assistant}}"


class CountingOpenAI(OpenAI):
    """The OpenAI backend, counting the text pieces it has handed to the run so far."""

    pieces = 0

    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        async for item in super().stream(request):
            if isinstance(item, Delta) and item.text:
                self.pieces += 1
            yield item


def burst(words: list[str]) -> dict:
    """A reply whose SSE events all travel in one chunk of the HTTP body (one burst, read in one go)."""
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": word}}]} for word in words]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    envelope = {"id": "chatcmpl-burst", "object": "chat.completion.chunk", "created": 0, "model": "scripted-model"}
    body = "".join(f"data: {json.dumps({**envelope, **event})}\n\n" for event in events) + "data: [DONE]\n\n"
    return {"raw_stream": [body]}


def counting_model(server: ScriptedServer) -> CountingOpenAI:
    return CountingOpenAI("scripted-model", base_url=server.base_url, api_key="sk-test")


async def test_astream_hands_each_text_event_over_before_the_next_piece_is_read(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.push(burst(WORDS))
    model = counting_model(scripted_server)
    seen: list[int] = []  # pieces read when the consumer got each TextDelta
    texts: list[str] = []
    async for event in gl.Program(TEMPLATE, model=model).astream():
        if isinstance(event, ev.TextDelta):
            seen.append(model.pieces)
            texts.append(event.text)
        final = event
    assert "".join(texts) == "".join(WORDS)
    assert seen == list(range(1, len(WORDS) + 1))  # the k-th event arrived before piece k+1 was read
    assert isinstance(final, ev.Finished) and final.result["story"] == "".join(WORDS)


def test_stream_hands_the_first_text_event_over_before_the_rest_of_the_burst_is_read(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.push(burst(WORDS), burst(WORDS[:5]))
    model = counting_model(scripted_server)
    program = gl.Program(TEMPLATE + "{{#user}}Again.{{/user}}{{#assistant}}{{gen 'again'}}{{/assistant}}", model=model)
    firsts: list[int] = []  # pieces read when the consumer got the first TextDelta of each reply
    variable = None
    texts: list[str] = []
    for event in program.stream():
        if isinstance(event, ev.TextDelta):
            if event.variable != variable:
                variable = event.variable
                firsts.append(model.pieces)
            texts.append(event.text)
        final = event
    assert firsts == [1, len(WORDS) + 1]  # each reply's first event, before its second piece was read
    assert "".join(texts) == "".join(WORDS) + "".join(WORDS[:5])
    assert isinstance(final, ev.Finished) and final.result["again"] == "".join(WORDS[:5])


def test_stream_left_after_the_first_event_ends_the_run(scripted_server: ScriptedServer) -> None:
    scripted_server.push(burst(WORDS), "second run")
    model = counting_model(scripted_server)
    program = gl.Program(TEMPLATE, model=model)
    events = program.stream()
    for event in events:
        if isinstance(event, ev.TextDelta):
            break
    events.close()  # what leaving a for loop early does when the generator is dropped
    assert program()["story"] == "second run"


async def test_a_consumer_busy_elsewhere_still_gets_every_event_in_order(scripted_server: ScriptedServer) -> None:
    import asyncio

    scripted_server.push(burst(WORDS))
    model = counting_model(scripted_server)
    kinds: list[str] = []
    texts: list[str] = []
    async for event in gl.Program(TEMPLATE, model=model).astream():
        await asyncio.sleep(0)  # the consumer awaits too: the run goes on meanwhile
        kinds.append(type(event).__name__)
        if isinstance(event, ev.TextDelta):
            texts.append(event.text)
    assert "".join(texts) == "".join(WORDS)
    assert kinds[-1] == "Finished" and kinds.index("VariableSet") > kinds.index("TextDelta")


def test_a_program_paused_while_streamed_resumes_without_its_finished_consumer(scripted_server: ScriptedServer) -> None:
    scripted_server.push(burst(WORDS[:3]), burst(WORDS[3:6]))
    template = TEMPLATE + "{{#user}}{{await 'more'}}{{/user}}{{#assistant}}{{gen 'again'}}{{/assistant}}"
    events = list(gl.Program(template, model=counting_model(scripted_server)).stream())
    paused = events[-1].result
    assert isinstance(events[-2], ev.Paused) and not paused.completed
    done = paused(more="go on")  # the stream() consumer is gone: the run must not wait for it to take events
    assert done.completed and done["again"] == "".join(WORDS[3:6])


async def test_a_program_paused_while_astreamed_resumes_without_its_finished_consumer(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.push(burst(WORDS[:3]), burst(WORDS[3:6]))
    template = TEMPLATE + "{{#user}}{{await 'more'}}{{/user}}{{#assistant}}{{gen 'again'}}{{/assistant}}"
    events = [e async for e in gl.Program(template, model=counting_model(scripted_server)).astream()]
    done = await events[-1].result.aresume(more="go on")
    assert done.completed and done["again"] == "".join(WORDS[3:6])
