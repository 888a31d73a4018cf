"""The OpenAI backend through the real openai SDK, over HTTP, against ScriptedServer on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import openai as openai_sdk
import pytest
from helpers import collect

from guidance_lite import tokens
from guidance_lite.models.base import GenRequest, ModelError
from guidance_lite.models.openai import OpenAI
from guidance_lite.models.openai.translation import stable_call_id
from guidance_lite.testing import ScriptedServer

SECRET_KEY = "sk-test-9f8e7d6c5b4a39281706"


class StubTool:
    """Stands in for guidance_lite.tools.Tool: a name and the OpenAI tool schema."""

    def __init__(self, name: str, properties: Optional[dict] = None) -> None:
        self.name = name
        self.properties = properties or {}

    def schema(self) -> dict:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": f"{self.name} tool",
                "parameters": {"type": "object", "properties": self.properties, "required": list(self.properties)},
            },
        }


WEATHER = StubTool("get_weather", {"city": {"type": "string"}})
TIME = StubTool("get_time", {"zone": {"type": "string"}})


def user(text: str = "hi") -> GenRequest:
    return GenRequest(messages_fn=lambda: [{"role": "user", "content": text}])


def make_request(messages: list[dict], **kwargs: Any) -> GenRequest:
    return GenRequest(messages_fn=lambda: messages, **kwargs)


def chat_bodies(server: ScriptedServer) -> list[dict]:
    return [r for r in server.requests if r["path"] == "/v1/chat/completions"]


@pytest.fixture
def model(scripted_server: ScriptedServer) -> OpenAI:
    return OpenAI("scripted-model", base_url=scripted_server.base_url, api_key=SECRET_KEY)


# ---- plain and streamed text -------------------------------------------------------------------------------
async def test_streamed_text_arrives_in_pieces(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "Hello there, world", "chunk_size": 4})
    deltas, final = await collect(model, user())
    assert [d.text for d in deltas] == ["Hell", "o th", "ere,", " wor", "ld"]
    assert final.choices[0].text == "Hello there, world"
    assert final.choices[0].finish_reason == "stop"
    assert final.cached is False
    (body,) = chat_bodies(scripted_server)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "scripted-model"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


async def test_non_streamed_request_yields_one_delta(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push("The whole answer at once")
    request = user()
    request.stream = False
    deltas, final = await collect(model, request)
    assert [d.text for d in deltas] == ["The whole answer at once"]
    assert final.choices[0].text == "The whole answer at once"
    (body,) = chat_bodies(scripted_server)
    assert not body.get("stream") and "stream_options" not in body


@pytest.mark.parametrize("stream", [True, False])
async def test_two_choices(model: OpenAI, scripted_server: ScriptedServer, stream: bool) -> None:
    scripted_server.push(["first answer", "second answer"])
    request = user()
    request.n, request.stream = 2, stream
    deltas, final = await collect(model, request)
    assert [c.text for c in final.choices] == ["first answer", "second answer"]
    assert "".join(d.text for d in deltas if d.choice == 1) == "second answer"
    assert chat_bodies(scripted_server)[0]["n"] == 2


# ---- tool calls ----------------------------------------------------------------------------------------------
async def test_streamed_tool_call_split_mid_string(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {"tool_calls": [{"id": "call_abc", "name": "get_weather", "arguments": {"city": "Paris"}}], "chunk_size": 3}
    )
    deltas, final = await collect(model, make_request([{"role": "user", "content": "weather?"}], tools=[WEATHER]))
    tool_deltas = [d for d in deltas if d.tool_index is not None]
    assert tool_deltas[0].tool_id == "call_abc" and tool_deltas[0].tool_name == "get_weather"
    assert all(d.tool_id is None and d.tool_name is None for d in tool_deltas[1:])
    fragments = [d.tool_arguments for d in tool_deltas]
    assert len([f for f in fragments if f]) == len('{"city": "Paris"}') // 3 + 1  # really split mid-string
    assert "".join(fragments) == '{"city": "Paris"}'
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls" and choice.text == ""
    (call,) = choice.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_abc", "get_weather", {"city": "Paris"})


async def test_parallel_tool_calls_without_ids_get_ids(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {
            "content": "Checking.",
            "omit_ids": True,
            "chunk_size": 3,
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_time", "arguments": '{"zone": "CET"}'},
            ],
        }
    )
    request = make_request([{"role": "user", "content": "both"}], tools=[WEATHER, TIME], parallel_tool_calls=True)
    deltas, final = await collect(model, request)
    firsts = {d.tool_index: d for d in deltas if d.tool_id is not None}
    assert sorted(firsts) == [0, 1]
    calls = final.choices[0].tool_calls
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert [c.arguments for c in calls] == [{"city": "Paris"}, {"zone": "CET"}]
    assert all(c.id.startswith("call_") and len(c.id) > 5 for c in calls)
    assert calls[0].id != calls[1].id
    assert [firsts[0].tool_id, firsts[1].tool_id] == [c.id for c in calls]  # streamed ids == final ids
    assert final.choices[0].text == "Checking."
    assert chat_bodies(scripted_server)[0]["parallel_tool_calls"] is True


async def test_non_streamed_tool_calls_without_ids(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"omit_ids": True, "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
    request = make_request([{"role": "user", "content": "x"}], tools=[WEATHER], stream=False)
    deltas, final = await collect(model, request)
    (call,) = final.choices[0].tool_calls
    assert call.id and call.name == "get_weather" and call.arguments == {"city": "Oslo"}
    assert [(d.tool_index, d.tool_id, d.tool_arguments) for d in deltas] == [(0, call.id, '{"city": "Oslo"}')]


# ---- exact request bodies -------------------------------------------------------------------------------------
async def test_conversation_with_tool_results_is_normalized(model: OpenAI, scripted_server: ScriptedServer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?", "_line": 3},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {"id": "", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "", "content": "25C"},
    ]
    await collect(model, make_request(messages, tools=[WEATHER]))
    await collect(model, make_request(messages, tools=[WEATHER]))
    first, second = chat_bodies(scripted_server)
    sent = first["messages"]
    generated = stable_call_id(2, 1, "get_weather", '{"city": "Rome"}')
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": generated,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": generated, "content": "25C"},
    ]
    assert second["messages"] == sent  # the same conversation always gives the same body
    assert first["tools"] == [WEATHER.schema()]
    assert messages[2]["content"] is None and "_line" in messages[1]  # the caller's messages are untouched


async def test_tool_message_without_any_call_id_is_an_error(model: OpenAI, scripted_server: ScriptedServer) -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "tool", "content": "orphan"}]
    with pytest.raises(ModelError, match="tool message #1 has no tool_call_id"):
        await collect(model, make_request(messages))
    assert scripted_server.requests == []


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
    ],
)
async def test_tool_choice_shapes(model: OpenAI, scripted_server: ScriptedServer, choice: str, expected: Any) -> None:
    if choice in ("required", "get_time"):  # a forced choice must come back as a call
        scripted_server.push({"tool_calls": [{"name": "get_time", "arguments": {}}]})
    await collect(model, make_request([{"role": "user", "content": "x"}], tools=[WEATHER, TIME], tool_choice=choice))
    body = chat_bodies(scripted_server)[0]
    assert body["tool_choice"] == expected
    assert "parallel_tool_calls" not in body  # None: not sent


async def test_required_with_one_tool_is_sent_as_that_tool(model: OpenAI, scripted_server: ScriptedServer) -> None:
    """llama.cpp's server ignores 'required' but honours a named choice; with one tool they mean the same."""
    scripted_server.push({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
    await collect(model, make_request([{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice="required"))
    assert chat_bodies(scripted_server)[0]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_a_forced_choice_answered_in_text_is_an_error(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push("I'd rather chat.")
    request = make_request([{"role": "user", "content": "x"}], tools=[WEATHER, TIME], tool_choice="required")
    with pytest.raises(ModelError, match="tool_choice='required' was not honoured.*rather chat"):
        await collect(model, request)


async def test_unknown_tool_choice_fails_before_sending(model: OpenAI, scripted_server: ScriptedServer) -> None:
    request = make_request([{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice="get_stock")
    with pytest.raises(ModelError, match="'get_stock' is not one of the offered tools \\('get_weather'\\)"):
        await collect(model, request)
    with pytest.raises(ModelError, match="needs tools"):
        await collect(model, make_request([{"role": "user", "content": "x"}], tool_choice="required"))
    assert scripted_server.requests == []


async def test_parallel_tool_calls_false_is_sent_only_with_tools(
    model: OpenAI, scripted_server: ScriptedServer
) -> None:
    await collect(model, make_request([{"role": "user", "content": "x"}], tools=[WEATHER], parallel_tool_calls=False))
    await collect(model, make_request([{"role": "user", "content": "x"}], parallel_tool_calls=False))
    with_tools, without_tools = chat_bodies(scripted_server)
    assert with_tools["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in without_tools and "tools" not in without_tools
    assert "tool_choice" not in with_tools


async def test_sampling_parameters_and_params_merge(scripted_server: ScriptedServer) -> None:
    model = OpenAI(
        "scripted-model",
        base_url=scripted_server.base_url,
        temperature=0.9,
        frequency_penalty=0.5,
        extra_body={"top_k": 20},
    )
    request = make_request(
        [{"role": "user", "content": "x"}],
        stop=["a", "b", "c", "d", "e", ""],
        max_tokens=7,
        temperature=0.0,
        top_p=0.5,
        seed=11,
        extra={"frequency_penalty": 0.1, "logprobs": True},
    )
    await collect(model, request)
    body = chat_bodies(scripted_server)[0]
    assert body["stop"] == ["a", "b", "c", "d"]  # OpenAI takes 4; the interpreter enforces the rest
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (7, 0.0, 0.5, 11)
    assert body["frequency_penalty"] == 0.1 and body["logprobs"] is True and body["top_k"] == 20
    assert "n" not in body and "tools" not in body
    await collect(model, user())
    assert chat_bodies(scripted_server)[1]["temperature"] == 0.9  # the default applies when gen sets none


async def test_reasoning_models_get_max_completion_tokens(scripted_server: ScriptedServer) -> None:
    model = OpenAI("o3-mini", base_url=scripted_server.base_url)
    await collect(model, make_request([{"role": "user", "content": "x"}], max_tokens=5))
    body = chat_bodies(scripted_server)[0]
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body


async def test_pattern_sends_a_plain_request(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push("maybe not a match")
    request = make_request([{"role": "user", "content": "x"}], pattern="[a-z]+")
    _, final = await collect(model, request)
    assert final.choices[0].text == "maybe not a match"  # the interpreter checks it, not the backend
    body = chat_bodies(scripted_server)[0]
    assert set(body) == {"path", "model", "messages", "stream", "stream_options"}


# ---- requests a chat model can't serve -------------------------------------------------------------------------
async def test_prefill_and_text_mode_are_refused(model: OpenAI, scripted_server: ScriptedServer) -> None:
    with pytest.raises(ModelError, match="put gen at the start of the assistant block"):
        await collect(model, make_request([{"role": "user", "content": "x"}], prefill="Sure, "))
    with pytest.raises(ModelError, match=r"need role blocks: wrap the prompt in \{\{#user\}\}"):
        await collect(model, GenRequest(prompt_fn=lambda: "Tell me a joke:"))
    assert scripted_server.requests == []


async def test_context_window_is_checked_before_sending(scripted_server: ScriptedServer) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, context_window=60)
    long_text = "word " * 200
    prompt = tokens.count_message_tokens([{"role": "user", "content": long_text}], "scripted-model")
    with pytest.raises(ModelError) as info:
        await collect(model, make_request([{"role": "user", "content": long_text}], max_tokens=10))
    assert f"about {prompt + 10} tokens" in str(info.value) and "context window of 60" in str(info.value)
    assert scripted_server.requests == []
    assert OpenAI("gpt-4o-mini", api_key="k").context_window == 128000


# ---- retries and broken streams -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500])
async def test_sdk_retries_rate_limits_and_server_errors(
    model: OpenAI, scripted_server: ScriptedServer, status: int
) -> None:
    scripted_server.push({"status": status, "retry_after": 0.01}, "recovered")
    _, final = await collect(model, user())
    assert final.choices[0].text == "recovered"
    assert len(chat_bodies(scripted_server)) == 2


async def test_retries_run_out(scripted_server: ScriptedServer) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    scripted_server.push(*[{"status": 429, "retry_after": 0.01, "error_message": "slow down"}] * 2)
    with pytest.raises(ModelError, match=r"rate limited .*\(429\) even after 1 retries.*slow down"):
        await collect(model, user())
    assert len(chat_bodies(scripted_server)) == 2


async def test_stream_dropped_before_content_is_retried(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "lost", "drop_after_chunks": 1}, "second try")
    deltas, final = await collect(model, user())
    assert "".join(d.text for d in deltas) == final.choices[0].text == "second try"
    assert len(chat_bodies(scripted_server)) == 2


async def test_stream_dropping_every_time_gives_up(scripted_server: ScriptedServer) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    scripted_server.push(*[{"content": "lost", "drop_after_chunks": 0}] * 2, "never used")
    with pytest.raises(ModelError, match="closed the stream before sending any output, 2 time"):
        await collect(model, user())
    assert len(chat_bodies(scripted_server)) == 2


async def test_stream_dropped_after_content_raises(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "abc def ghi", "chunk_size": 3, "drop_after_chunks": 3}, "never used")
    seen: list[str] = []
    with pytest.raises(ModelError, match="closed the stream after 6 characters"):
        async for item in model.stream(user()):
            seen.append(item.text)
    assert "".join(seen) == "abc de"  # the caller got the partial output before the error
    assert len(chat_bodies(scripted_server)) == 1


# ---- server refusals and other errors --------------------------------------------------------------------------
async def test_vllm_auto_tool_choice_refusal(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        {
            "status": 400,
            "error_body": {
                "object": "error",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
                "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            },
        }
    )
    with pytest.raises(ModelError) as info:
        await collect(model, make_request([{"role": "user", "content": "x"}], tools=[WEATHER], tool_choice="auto"))
    text = str(info.value)
    assert "--enable-auto-tool-choice --tool-call-parser" in text and "OpenAICompletion" in text


async def test_llamacpp_jinja_refusal(scripted_server: ScriptedServer) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, max_retries=0)
    scripted_server.push({"status": 500, "error_message": "tools param requires --jinja flag"})
    with pytest.raises(ModelError, match="start llama-server with --jinja"):
        await collect(model, make_request([{"role": "user", "content": "x"}], tools=[WEATHER]))


async def test_bad_api_key_error_never_shows_the_key(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"status": 401, "error_message": f"Incorrect API key provided: {SECRET_KEY}."})
    with pytest.raises(ModelError) as info:
        await collect(model, user())
    assert "OPENAI_API_KEY" in str(info.value) and SECRET_KEY not in str(info.value)
    assert SECRET_KEY not in repr(model)


async def test_model_not_found(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"status": 404, "error_message": "The model `scripted-model` does not exist"})
    with pytest.raises(ModelError, match="model 'scripted-model' was not found at http://127.0.0.1"):
        await collect(model, user())


async def test_connection_refused_names_the_base_url() -> None:
    server = ScriptedServer().start()
    base_url = server.base_url
    server.stop()
    model = OpenAI("scripted-model", base_url=base_url, max_retries=0)
    with pytest.raises(ModelError, match=f"could not connect to {base_url}"):
        await collect(model, user())


# ---- usage ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [True, False])
async def test_usage_from_the_server(model: OpenAI, scripted_server: ScriptedServer, stream: bool) -> None:
    scripted_server.push({"content": "hi", "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}})
    request = user()
    request.stream = stream
    _, final = await collect(model, request)
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (11, 2, 13)
    assert final.usage.estimated is False


async def test_usage_estimated_when_the_server_sends_none(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push({"content": "a fairly long answer with several words", "usage": False})
    _, final = await collect(model, user("count me"))
    usage = final.usage
    assert usage is not None and usage.estimated is True
    assert usage.prompt_tokens == tokens.count_message_tokens(
        [{"role": "user", "content": "count me"}], "scripted-model"
    )
    assert usage.completion_tokens == tokens.count_tokens("a fairly long answer with several words")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# ---- cache ---------------------------------------------------------------------------------------------------
async def test_cache_replays_deterministic_requests(scripted_server: ScriptedServer, tmp_path: Any) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, cache=tmp_path / "c.sqlite")
    scripted_server.push(
        {"content": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}
    )
    request = make_request([{"role": "user", "content": "x"}], tools=[WEATHER], temperature=0)
    first_deltas, first = await collect(model, request)
    again = make_request([{"role": "user", "content": "x"}], tools=[WEATHER], temperature=0, stream=False)
    deltas, replay = await collect(model, again)
    assert len(chat_bodies(scripted_server)) == 1  # no HTTP request for the hit
    assert replay.cached is True and first.cached is False
    assert replay.choices == first.choices and replay.usage == first.usage
    assert "".join(d.text for d in deltas) == "Let me check."
    assert "".join(d.tool_arguments for d in deltas) == "".join(d.tool_arguments for d in first_deltas)


async def test_cache_skips_sampled_requests(scripted_server: ScriptedServer, tmp_path: Any) -> None:
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, cache=tmp_path / "c.sqlite")
    scripted_server.push("one", "two", "three", "four")
    for _ in range(2):
        await collect(model, make_request([{"role": "user", "content": "x"}], temperature=0.7))
    two = make_request([{"role": "user", "content": "x"}], temperature=0, n=2)
    await collect(model, two)
    await collect(model, two)
    assert len(chat_bodies(scripted_server)) == 4
    seeded = make_request([{"role": "user", "content": "x"}], temperature=0.7, seed=3)
    _, a = await collect(model, seeded)
    _, b = await collect(model, seeded)
    assert b.cached and a.choices == b.choices and len(chat_bodies(scripted_server)) == 5


async def test_cache_true_uses_the_cache_dir_env(
    scripted_server: ScriptedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUIDANCE_LITE_CACHE_DIR", str(tmp_path))
    model = OpenAI("scripted-model", base_url=scripted_server.base_url, cache=True)
    await collect(model, make_request([{"role": "user", "content": "x"}], seed=1))
    assert (tmp_path / "requests.sqlite").exists()


# ---- clients and event loops ------------------------------------------------------------------------------------
def test_one_instance_across_two_event_loops(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.push("first loop", "second loop")
    first = asyncio.run(collect(model, user()))[1]
    second = asyncio.run(collect(model, user()))[1]
    assert [first.choices[0].text, second.choices[0].text] == ["first loop", "second loop"]
    assert len(model.transport.clients) <= 1  # clients of closed loops are not kept


async def test_real_tool_schema_is_sent(model: OpenAI, scripted_server: ScriptedServer) -> None:
    from guidance_lite.tools import Tool

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    tool = Tool("get_weather", get_weather)
    scripted_server.push({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Lima"}}]})
    _, final = await collect(
        model, make_request([{"role": "user", "content": "x"}], tools=[tool], tool_choice="get_weather")
    )
    body = chat_bodies(scripted_server)[0]
    assert body["tools"] == [tool.schema()]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert final.choices[0].tool_calls[0].arguments == {"city": "Lima"}


async def test_aclose_then_reuse(model: OpenAI, scripted_server: ScriptedServer) -> None:
    await collect(model, user())
    first_client = model.transport.client()
    await model.aclose()
    assert first_client.is_closed()
    _, final = await collect(model, user())
    assert final.choices[0].text == "ok"


async def test_given_clients(scripted_server: ScriptedServer) -> None:
    sync_client = openai_sdk.OpenAI(base_url=scripted_server.base_url, api_key="k", max_retries=0)
    model = OpenAI("scripted-model", client=sync_client)
    assert model.max_retries == 0 and model.base_url == scripted_server.base_url
    scripted_server.push("via sync client settings")
    assert (await collect(model, user()))[1].choices[0].text == "via sync client settings"
    async_client = openai_sdk.AsyncOpenAI(base_url=scripted_server.base_url, api_key="k")
    model = OpenAI("scripted-model", client=async_client)
    await collect(model, user())
    assert model.transport.client() is async_client
    await model.aclose()  # the caller's client stays open and in use
    await collect(model, user())
    assert model.transport.client() is async_client and not async_client.is_closed()
    with pytest.raises(ValueError, match="either client= or base_url="):
        OpenAI("scripted-model", client=async_client, base_url="http://x")


def test_given_async_client_on_a_second_loop(scripted_server: ScriptedServer) -> None:
    async_client = openai_sdk.AsyncOpenAI(base_url=scripted_server.base_url, api_key="k")
    model = OpenAI("scripted-model", client=async_client)

    async def run() -> tuple[Any, str]:
        _, final = await collect(model, user())
        return model.transport.client(), final.choices[0].text

    scripted_server.push("one", "two")
    first_client, first = asyncio.run(run())
    second_client, second = asyncio.run(run())
    assert first_client is async_client and second_client is not async_client  # bound to the first loop
    assert (first, second) == ("one", "two")
    assert second_client.base_url == async_client.base_url


def test_missing_api_key_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelError, match="set the OPENAI_API_KEY environment variable"):
        OpenAI("gpt-4o-mini")
    assert OpenAI("local", base_url="http://127.0.0.1:1/v1").base_url == "http://127.0.0.1:1/v1"


async def test_concurrent_requests_share_one_client(model: OpenAI, scripted_server: ScriptedServer) -> None:
    scripted_server.script = lambda body: "echo: " + body["messages"][-1]["content"]
    results = await asyncio.gather(*(collect(model, user(f"q{i}")) for i in range(20)))
    assert [final.choices[0].text for _, final in results] == [f"echo: q{i}" for i in range(20)]
    assert json.loads(json.dumps(chat_bodies(scripted_server)[0]))["messages"][0]["role"] == "user"


# ---- select on a chat API: a forced call with an enum --------------------------------------------------------------
@pytest.mark.parametrize("streamed", [True, False])
def test_select_is_a_forced_call_with_an_enum_of_the_options(scripted_server, streamed) -> None:
    import guidance_lite as gl

    scripted_server.push({"tool_calls": [{"name": "select_option", "arguments": {"option": "no"}}], "chunk_size": 3})
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url)
    program = gl.Program(
        "{{#user}}Is it raining?{{/user}}{{#assistant}}{{select 'x' options=['yes', 'no']}}{{/assistant}}", model=model
    )
    events = list(program.stream()) if streamed else None
    result = events[-1].result if streamed else program()
    assert result["x"] == "no"
    assert result.messages[-1] == {"role": "assistant", "content": "no"}
    body = scripted_server.requests[0]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "select_option"}}
    schema = body["tools"][0]["function"]["parameters"]
    assert schema["properties"]["option"]["enum"] == ["yes", "no"] and schema["required"] == ["option"]
    if streamed:
        assert not any(type(e).__name__ == "ToolCallDelta" for e in events)


def test_select_falls_back_to_matching_text_when_the_server_ignores_the_call(scripted_server) -> None:
    import guidance_lite as gl

    scripted_server.push("yes")
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url)
    result = gl.Program(
        "{{#user}}q{{/user}}{{#assistant}}{{select 'x' options=['yes', 'no']}}{{/assistant}}", model=model
    )()
    assert result["x"] == "yes"


def test_select_without_tools_sends_a_plain_request(scripted_server) -> None:
    import guidance_lite as gl

    scripted_server.push("no")
    model = gl.models.OpenAI("scripted-model", base_url=scripted_server.base_url, select_with_tools=False)
    result = gl.Program(
        "{{#user}}q{{/user}}{{#assistant}}{{select 'x' options=['yes', 'no']}}{{/assistant}}", model=model
    )()
    assert result["x"] == "no" and "tools" not in scripted_server.requests[0]
