"""Adding a backend is one class in one file (a ``Model`` subclass) plus one registration (README "Extending
guidance_lite"): an entry in ``gl.models.BACKENDS`` for a library backend, nothing at all for your own.

The backend below answers in capitals and calls a tool when the tool choice forces one. It only reads the request the
interpreter builds (messages or prompt, the offered tools as ToolSpecs, the resolved ToolChoice, select options) and
streams Deltas then one Completion; stops, events, tool dispatch and the automatic loop come for free.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Union

import pytest

import guidance_lite as gl
from guidance_lite import events as ev
from guidance_lite import models
from guidance_lite.models.base import Choice, Completion, Delta, GenRequest, Model, ToolCall, Usage


# ---- the whole backend ----------------------------------------------------------------------------------------------
class Shouty(Model):
    """Repeats the last user message (or the prompt's last line) in capitals; calls the chosen tool when a call is
    forced (every required argument set to "Paris"); picks the first option of a select."""

    name = "shouty"
    chat = True
    text = True
    supports_prefill = True
    can_constrain = True

    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        if request.tools and request.choice.forced:
            spec = request.choice.allowed(request.tools)[0]
            arguments = json.dumps({key: "Paris" for key in spec.parameters.get("required", [])})
            call = ToolCall("", spec.name, arguments)
            yield Delta(tool_index=0, tool_id=call.id, tool_name=call.name, tool_arguments=arguments)
            yield Completion([Choice("", [call], "tool_calls")], Usage(1, 1, 2), self.name)
            return
        if request.options:
            text = request.options[0]
        elif request.chat:
            text = next(m["content"] for m in reversed(request.messages or []) if m["role"] == "user").upper()
        else:
            text = request.prompt.splitlines()[-1].upper()
        for start in range(0, len(text), 3):
            yield Delta(text=text[start : start + 3])
        yield Completion([Choice(text, [], "stop")], Usage(1, len(text.split()), 1 + len(text.split())), self.name)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one registration of a library backend: its name and module in ``gl.models.BACKENDS``."""
    monkeypatch.setitem(models.BACKENDS, "Shouty", __name__)
    yield
    vars(models).pop("Shouty", None)  # the lazy lookup caches what it found


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


def test_it_is_found_by_name_once_registered(registered: None) -> None:
    assert gl.models.Shouty is Shouty


def test_a_chat_program_streams_through_it_with_client_side_stops() -> None:
    program = gl.Program(
        "{{#user}}hello there, friend{{/user}}{{#assistant}}{{gen 'reply' stop=','}}{{/assistant}}", model=Shouty()
    )
    events = list(program.stream())
    result = events[-1].result
    assert result["reply"] == "HELLO THERE"
    assert result.messages[-1] == {"role": "assistant", "content": "HELLO THERE"}
    assert "".join(e.text for e in events if isinstance(e, ev.TextDelta)) == "HELLO THERE"
    assert gl.Program("Say it loud\n{{gen 'x'}}", model=Shouty())()["x"] == "SAY IT LOUD"


def test_tools_reach_it_as_specs_and_a_resolved_choice() -> None:
    seen: list[GenRequest] = []

    class Recording(Shouty):
        async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
            seen.append(request)
            async for item in super().stream(request):
                yield item

    template = (
        "{{#user}}weather?{{/user}}{{#assistant}}{{gen 'answer' tools=[get_weather] tool_choice='required'}}"
        "{{/assistant}}{{#function}}{{answer()}}{{/function}}{{#assistant}}{{gen 'reply'}}{{/assistant}}"
    )
    result = gl.Program(template, model=Recording())(get_weather=get_weather)
    assert result.messages[2] == {"role": "tool", "tool_call_id": result.tool_calls[0].id, "content": "sunny in Paris"}
    assert result["reply"] == "WEATHER?"
    first = seen[0]
    assert [spec.name for spec in first.tools] == ["get_weather"] and first.tools[0].tool.fn is get_weather
    assert (first.choice.mode, first.choice.name) == ("required", "get_weather")  # the single-tool rule, resolved once
    assert first.tool_schemas() == [first.tools[0].definition]


def test_the_automatic_loop_and_select_run_on_it() -> None:
    result = gl.Program(
        "{{#user}}weather?{{/user}}{{#assistant}}{{gen 'answer' tools=[get_weather] "
        "tool_choice='get_weather' max_rounds=1}}{{/assistant}}",
        model=Shouty(),
    )(get_weather=get_weather)
    assert result["answer"] == "WEATHER?"  # the last round asks with tool_choice='none'
    assert [r.result for r in result.tool_calls] == ["sunny in Paris"]
    chosen = gl.Program(
        "{{#user}}pick{{/user}}{{#assistant}}{{select 'x' options=['yes', 'no']}}{{/assistant}}", model=Shouty()
    )()
    assert chosen["x"] == "yes"
