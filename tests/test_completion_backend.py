"""OpenAICompletion over real HTTP (openai SDK -> ScriptedServer /v1/completions): exact prompts, parsed calls."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import pytest
from helpers import collect as run

from guidance_lite.chat_templates import render_chat
from guidance_lite.models.base import Delta, GenRequest, ModelError
from guidance_lite.models.completion import OpenAICompletion
from guidance_lite.testing import ScriptedServer
from guidance_lite.tool_formats import get_tool_format
from guidance_lite.tools import make_tool


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: City name.
    """
    return f"sunny in {city}"


def get_time() -> str:
    """Current time."""
    return "12:00"


TOOLS = [make_tool(get_weather), make_tool(get_time)]
SCHEMAS = [t.schema() for t in TOOLS]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def request(messages: Optional[list[dict]] = None, **params: Any) -> GenRequest:
    return GenRequest(messages_fn=lambda: list(messages or ASK), **params)


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if d.tool_index is None)


async def test_plain_chat_sends_the_rendered_prompt_and_streams_text(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": "It is sunny.", "chunk_size": 2})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, temperature=0)
    deltas, final = await run(model, request(ASK, max_tokens=20, stop=["\n\n"]))
    sent = scripted_server.requests[0]
    assert sent["path"] == "/v1/completions" and sent["stream"] is True
    assert sent["prompt"] == "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    assert sent["stop"] == ["<|im_end|>", "\n\n"] and sent["max_tokens"] == 20 and sent["temperature"] == 0
    assert len(deltas) == 6 and text_of(deltas) == "It is sunny."
    assert final.choices[0].text == "It is sunny." and final.choices[0].finish_reason == "stop"
    assert final.choices[0].tool_calls == [] and final.usage is not None and not final.usage.estimated
    await model.aclose()


async def test_text_mode_sends_the_prompt_as_is(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": " blue.", "usage": False})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    deltas, final = await run(model, GenRequest(prompt_fn=lambda: "The sky is", stream=False))
    assert scripted_server.requests[0]["prompt"] == "The sky is" and "stop" not in scripted_server.requests[0]
    assert text_of(deltas) == " blue." and final.choices[0].text == " blue." and final.usage.estimated
    with pytest.raises(ModelError, match="tools need role blocks"):
        await run(model, GenRequest(prompt_fn=lambda: "x", tools=TOOLS))
    await model.aclose()


async def test_prefill_continues_the_assistant_message(scripted_server: ScriptedServer) -> None:
    scripted_server.push(" 21 degrees.")
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, chat_template="llama3")
    await run(model, request(ASK, prefill="It is<|eot_id|>"))
    assert scripted_server.requests[0]["prompt"] == (
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nIt is<|\u200beot_id|>"
    )
    assert scripted_server.requests[0]["stop"] == ["<|eot_id|>", "<|eom_id|>"]
    await model.aclose()


async def test_hermes_tool_call_streams_and_parses(scripted_server: ScriptedServer) -> None:
    output = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    scripted_server.push({"text": output, "chunk_size": 3})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)  # chatml -> hermes
    deltas, final = await run(model, request(ASK, tools=TOOLS, tool_choice="auto"))
    expected = render_chat(get_tool_format("hermes").prepare_messages(ASK, SCHEMAS), "chatml")
    assert scripted_server.requests[0]["prompt"] == expected
    assert "<tools>\n" + json.dumps(SCHEMAS[0], ensure_ascii=False) in expected
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.text == "Let me check."
    assert [(c.name, c.arguments) for c in choice.tool_calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert text_of(deltas) == "Let me check."  # no call syntax leaked into text
    headers = [d for d in deltas if d.tool_name]
    assert [(d.tool_index, d.tool_id, d.tool_name) for d in headers] == [
        (i, c.id, c.name) for i, c in enumerate(choice.tool_calls)
    ]
    arguments = ["".join(d.tool_arguments for d in deltas if d.tool_index == i) for i in range(2)]
    assert arguments == [c.arguments_json for c in choice.tool_calls]
    await model.aclose()


@pytest.mark.parametrize(
    "choice,prefix",
    [
        ("required", '<tool_call>\n{"name": "'),
        ("get_weather", '<tool_call>\n{"name": "get_weather", "arguments": '),
    ],
)
async def test_forced_tool_choice_starts_the_call_in_the_prompt(
    scripted_server: ScriptedServer, choice: str, prefix: str
) -> None:
    rest = (
        'get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
        if choice == "required"
        else '{"city": "Oslo"}}\n</tool_call>'
    )
    scripted_server.push({"text": rest, "chunk_size": 1})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, tool_format="hermes")
    deltas, final = await run(model, request(ASK, tools=TOOLS, tool_choice=choice))
    prompt = scripted_server.requests[0]["prompt"]
    assert prompt.endswith("<|im_start|>assistant\n" + prefix)
    instruction = (
        "You must call at least one of the tools" if choice == "required" else "You must call the tool `get_weather`"
    )
    assert instruction in prompt
    assert [(c.name, c.arguments) for c in final.choices[0].tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert final.choices[0].text == "" and text_of(deltas) == ""
    # the streamed call carries its name and id even though part of the call was written in the prompt
    call = final.choices[0].tool_calls[0]
    headers = [d for d in deltas if d.tool_name]
    assert [(d.tool_index, d.tool_id, d.tool_name) for d in headers] == [(0, call.id, "get_weather")]
    assert "".join(d.tool_arguments for d in deltas if d.tool_index == 0) == call.arguments_json


async def test_tool_choice_none_renders_no_tools_and_parses_nothing(scripted_server: ScriptedServer) -> None:
    literal = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    scripted_server.push(literal)
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    _deltas, final = await run(model, request(ASK, tools=TOOLS, tool_choice="none"))
    assert scripted_server.requests[0]["prompt"] == render_chat(ASK, "chatml")
    assert final.choices[0].text == literal and final.choices[0].tool_calls == []


async def test_history_with_calls_and_results_is_rendered_in_the_format(scripted_server: ScriptedServer) -> None:
    history = ASK + [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Paris"},
    ]
    scripted_server.push("It is sunny in Paris.")
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    _, final = await run(model, request(history, tools=TOOLS))
    prompt = scripted_server.requests[0]["prompt"]
    assert prompt.endswith(
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nsunny in Paris\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    assert final.choices[0].text == "It is sunny in Paris." and final.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "template,fmt,output",
    [
        ("llama3", "llama3_json", '{"name": "get_weather", "parameters": {"city": "Rome"}}'),
        ("mistral", "mistral", '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome"}}]'),
    ],
)
async def test_other_families_are_detected_from_the_template(
    scripted_server: ScriptedServer, template: str, fmt: str, output: str
) -> None:
    scripted_server.push({"text": output, "chunk_size": 4})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, chat_template=template)
    assert model.tool_format.name == fmt
    _, final = await run(model, request(ASK, tools=TOOLS))
    expected = render_chat(get_tool_format(fmt).prepare_messages(ASK, SCHEMAS), template)
    assert scripted_server.requests[0]["prompt"] == expected
    assert [(c.name, c.arguments) for c in final.choices[0].tool_calls] == [("get_weather", {"city": "Rome"})]


async def test_non_streamed_and_n_choices(scripted_server: ScriptedServer) -> None:
    scripted_server.push(['<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', "No tool needed."])
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    deltas, final = await run(model, request(ASK, tools=TOOLS, n=2, stream=False))
    assert scripted_server.requests[0]["n"] == 2 and scripted_server.requests[0]["stream"] is False
    first, second = final.choices
    assert [c.name for c in first.tool_calls] == ["get_time"] and first.finish_reason == "tool_calls"
    assert second.text == "No tool needed." and second.tool_calls == []
    assert [d.choice for d in deltas if d.text] == [1] and [d.choice for d in deltas if d.tool_name] == [0]


async def test_streamed_n_choices_use_one_parser_each(scripted_server: ScriptedServer) -> None:
    scripted_server.push(
        [
            {"text": 'A<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', "chunk_size": 2},
            {"text": "B plain", "chunk_size": 2},
        ]
    )
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    deltas, final = await run(model, request(ASK, tools=TOOLS, n=2))
    assert [c.name for c in final.choices[0].tool_calls] == ["get_time"] and final.choices[0].text == "A"
    assert final.choices[1].text == "B plain" and not final.choices[1].tool_calls
    assert "".join(d.text for d in deltas if d.choice == 1) == "B plain"
    assert "".join(d.text for d in deltas if d.choice == 0) == "A"


async def test_bad_requests_fail_clearly(scripted_server: ScriptedServer) -> None:
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    with pytest.raises(ModelError, match="needs tools"):
        await run(model, request(ASK, tool_choice="required"))
    with pytest.raises(ModelError, match="not one of the offered tools"):
        await run(model, request(ASK, tools=TOOLS, tool_choice="get_stock"))
    with pytest.raises(ModelError, match="sets 'prompt' itself"):
        await run(model, request(ASK, extra={"prompt": "x"}))
    with pytest.raises(ValueError, match="chat_template must be one of"):
        OpenAICompletion("m", base_url=scripted_server.base_url, chat_template="vicuna")
    with pytest.raises(ValueError, match="unknown tool format"):
        OpenAICompletion("m", base_url=scripted_server.base_url, tool_format="xml")
    assert scripted_server.requests == []


async def test_stream_dropped_before_output_is_retried(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": "lost", "drop_after_chunks": 0}, {"text": "fine"})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, max_retries=1)
    _, final = await run(model, request(ASK))
    assert final.choices[0].text == "fine" and len(scripted_server.requests) == 2
    scripted_server.push({"text": "one two three", "drop_after_chunks": 2})
    with pytest.raises(ModelError, match="closed the stream after"):
        await run(model, request(ASK))
    await model.aclose()


async def test_server_errors_are_explained(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"status": 404, "error_message": "model 'nope' not found"})
    model = OpenAICompletion("nope", base_url=scripted_server.base_url, max_retries=0)
    with pytest.raises(ModelError, match="model 'nope' was not found"):
        await run(model, request(ASK))


def test_one_model_on_two_event_loops(scripted_server: ScriptedServer) -> None:
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    scripted_server.push("first", "second")
    texts = [asyncio.run(run(model, request(ASK)))[1].choices[0].text for _ in range(2)]
    assert texts == ["first", "second"]
    assert model.chat and model.text and model.supports_prefill


# ---- forced calls and constraints ----------------------------------------------------------------------------------
async def test_required_with_one_tool_starts_that_tools_call(scripted_server: ScriptedServer) -> None:
    scripted_server.push('{"city": "Oslo"}}\n</tool_call>')
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, tool_format="hermes")
    _, final = await run(model, request(ASK, tools=TOOLS[:1], tool_choice="required"))
    assert scripted_server.requests[0]["prompt"].endswith('<tool_call>\n{"name": "get_weather", "arguments": ')
    assert [(c.name, c.arguments) for c in final.choices[0].tool_calls] == [("get_weather", {"city": "Oslo"})]


async def test_a_forced_call_that_does_not_parse_is_an_error(scripted_server: ScriptedServer) -> None:
    scripted_server.push('get_weather", "description": "oops')
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, tool_format="hermes")
    with pytest.raises(ModelError, match="tool_choice='required' was not honoured"):
        await run(model, request(ASK, tools=TOOLS, tool_choice="required"))


async def test_constrain_llama_cpp_sends_gbnf_grammars(scripted_server: ScriptedServer) -> None:
    scripted_server.push("no", "123")
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, constrain="llama.cpp")
    assert model.can_constrain
    await run(model, request(ASK, options=["yes", "no"]))
    await run(model, request(ASK, pattern=r"\d+"))
    select_body, pattern_body = scripted_server.requests
    assert '"yes"' in select_body["grammar"] and '"no"' in select_body["grammar"]
    assert select_body["grammar"].startswith("root ::=") and pattern_body["grammar"].startswith("root ::=")


async def test_constrain_llama_cpp_forced_call_grammar_replaces_the_prompt_prefix(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.push('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>')
    model = OpenAICompletion(
        "scripted-model", base_url=scripted_server.base_url, tool_format="hermes", constrain="llama.cpp"
    )
    _, final = await run(model, request(ASK, tools=TOOLS, tool_choice="get_weather"))
    body = scripted_server.requests[0]
    assert body["prompt"].endswith("<|im_start|>assistant\n")  # the grammar makes the model write the whole call
    assert "get_weather" in body["grammar"] and "city" in body["grammar"]
    assert [(c.name, c.arguments) for c in final.choices[0].tool_calls] == [("get_weather", {"city": "Oslo"})]


def test_constrain_names_the_supported_servers() -> None:
    with pytest.raises(ValueError, match="constrain must be None or 'llama.cpp'"):
        OpenAICompletion("m", base_url="http://127.0.0.1:1/v1", constrain="vllm")
