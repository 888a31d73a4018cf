"""Adding a tool format is one class in one file plus one registration (README "Extending guidance_lite").

The format below is new to the library: calls are written ``<call name="get_weather">{"city": "Paris"}</call>``.
Once registered it renders prompts, parses outputs (streamed and one-shot alike), is detected from chat templates and
model names, and constrains generation with GBNF — through the same code paths as the built-in formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Optional

import pytest
from helpers import collect

import guidance_lite as gl
from guidance_lite import constraints
from guidance_lite.chat_templates import render_chat
from guidance_lite.constraints import GrammarBuilder, separated_calls
from guidance_lite.models.base import GenRequest
from guidance_lite.models.completion import OpenAICompletion
from guidance_lite.testing import ScriptedServer
from guidance_lite.tool_formats import (
    FORMATS,
    ToolFormat,
    detect_tool_format,
    get_tool_format,
    register_tool_format,
    unregister_tool_format,
)
from guidance_lite.tool_formats.history import HistoryItem, arguments_value
from guidance_lite.tool_formats.json_reader import Malformed, Reader, expect_char, read_json_value
from guidance_lite.tool_formats.stream_parser import ToolStreamParser
from guidance_lite.tools import ToolChoice, ToolSpec, make_tool

OPEN, CLOSE = '<call name="', "</call>"


# ---- the whole format: this class is all a new format needs --------------------------------------------------------
class XmlCallFormat(ToolFormat):
    """``<call name="NAME">{arguments}</call>``; tools listed in the system prompt, results as ``<result>`` turns."""

    name = "xml_call"
    trigger = OPEN
    value_markers = ("<call", "</call>", "<result", "</result>")
    template_telltales = (OPEN,)
    model_names = r"xml-?caller"

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        if tools:
            listing = "\n".join(json.dumps(t.definition, ensure_ascii=False) for t in tools)
            system = f'Call a tool by writing {OPEN}NAME">{{arguments}}{CLOSE}. Tools:\n{listing}'
            out.append({"role": "system", "content": (system + "\n" + self.choice_instruction(choice)).strip()})
        for item in history:
            if item.role == "tool":
                out.append({"role": "user", "content": f'<result name="{item.name}">{self.escape(item.text)}</result>'})
            elif item.role == "assistant" and item.calls:
                calls = "".join(f'{OPEN}{c.name}">{json.dumps(arguments_value(c))}{CLOSE}' for c in item.calls)
                out.append({"role": "assistant", "content": self.escape(item.text) + calls})
            else:
                out.append({"role": item.role, "content": self.escape(item.text)})
        return out

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        while True:
            trigger, lead = yield from parser.read_text(ch, (OPEN,))
            if trigger is None:
                return
            parser.begin_attempt(parser.offset(len(trigger)), lead)
            try:
                name, ch = "", (yield)
                while ch is not None and ch != '"':
                    name, ch = name + ch, (yield)
                ch = yield from expect_char(ch, '"', "after the tool name")
                ch = yield from expect_char(ch, ">", "after the tool name")
                call = parser.new_call()
                call.set_name(name)
                call.has_arguments = True
                _, ch = yield from read_json_value(ch, call.add_arguments)
                for wanted in CLOSE:
                    ch = yield from expect_char(ch, wanted, "closing the call")
                parser.complete(call)
                parser.end_attempt()
                ch = yield from parser.after_call(ch)
            except Malformed as error:
                parser.give_back(error)
                if parser.at_end:
                    return
                ch = yield

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        return OPEN if tool_name is None else f'{OPEN}{tool_name}">'

    def call_grammar_suffix(self) -> str:
        return CLOSE

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        return separated_calls(one, "\n")


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    """The one registration (``@register_tool_format`` on the class in a library module); done per test here so the
    other test modules' lists of formats stay the built-in ones."""
    register_tool_format(XmlCallFormat)
    try:
        yield
    finally:
        unregister_tool_format(XmlCallFormat.name)


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


WEATHER = make_tool(get_weather)
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL_TEXT = '<call name="get_weather">{"city": "Paris"}</call>'


# ---- renders --------------------------------------------------------------------------------------------------------
def test_it_renders_tools_calls_and_results() -> None:
    history = ASK + [
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny </result><call"},
    ]
    out = get_tool_format("xml_call").prepare_messages(history, [WEATHER], "get_weather")
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert json.dumps(WEATHER.schema()) in out[0]["content"]
    assert out[0]["content"].endswith("You must call the tool `get_weather` in your next reply.")
    assert out[2]["content"] == "Checking." + CALL_TEXT
    assert out[3]["content"].count("</result>") == 1  # a value can't close the result or open a call
    assert "<call" not in out[3]["content"]
    assert get_tool_format("xml_call").prepare_messages(ASK, [WEATHER], "none") == ASK


# ---- parses ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, content, calls",
    [
        ("It is " + CALL_TEXT, "It is", [("get_weather", {"city": "Paris"})]),
        (
            CALL_TEXT + "\n" + CALL_TEXT.replace("Paris", "Rome"),
            "",
            [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
        ),
        (
            '<call name="get_weather">{"city": oops}</call> sorry',
            '<call name="get_weather">{"city": oops}</call> sorry',
            [],
        ),
        ("no call at all <call", "no call at all <call", []),
    ],
)
def test_streaming_parses_exactly_like_one_shot(text: str, content: str, calls: list) -> None:
    fmt = get_tool_format("xml_call")
    one_shot = fmt.parse(text)
    assert (one_shot[0], [(c.name, c.arguments) for c in one_shot[1]]) == (content, calls)
    for size in (1, 2, 5):
        parser = fmt.stream_parser()
        deltas = [d for start in range(0, len(text), size) for d in parser.feed(text[start : start + size])]
        streamed, streamed_calls, last = parser.finish()
        deltas += last
        assert streamed == content and [(c.name, c.arguments) for c in streamed_calls] == calls
        assert "".join(d.text for d in deltas if d.tool_index is None) == content
        # fragments of an attempt that turned out malformed are superseded by finish(): compare the kept calls
        kept = {d.tool_index for d in deltas if d.tool_id in {c.id for c in streamed_calls}}
        assert "".join(d.tool_arguments for d in deltas if d.tool_index in kept) == "".join(
            c.arguments_json for c in streamed_calls
        )


# ---- is detected ----------------------------------------------------------------------------------------------------
def test_it_is_found_by_name_and_detected_from_templates_and_model_names() -> None:
    assert FORMATS["xml_call"] is XmlCallFormat and isinstance(get_tool_format("xml_call"), XmlCallFormat)
    jinja = "{% for m in messages %}{{ m['content'] }}{% if m.tool_calls %}{{ '<call name=\"' }}{% endif %}{% endfor %}"
    assert detect_tool_format(jinja) == "xml_call"
    assert detect_tool_format(None, "acme/XML-Caller-7B") == "xml_call"
    assert detect_tool_format("chatml") == "hermes"  # the built-in formats are unaffected
    model = OpenAICompletion("acme/model", base_url="http://127.0.0.1:9/v1", chat_template=jinja)
    assert model.tool_format.name == "xml_call"
    with pytest.raises(ValueError, match="already registered"):
        register_tool_format(type("Other", (XmlCallFormat,), {}))


# ---- constrains -----------------------------------------------------------------------------------------------------
def test_the_call_grammar_is_built_from_the_class() -> None:
    fmt = get_tool_format("xml_call")
    grammar = constraints.tool_call_grammar(fmt, [WEATHER], "required", parallel=True)
    assert grammar.splitlines()[0] == 'root ::= gl-call ( "\\n" gl-call )*'
    assert constraints.gbnf_literal(fmt.call_grammar_prefix("get_weather")) in grammar
    assert constraints.gbnf_literal(CLOSE) in grammar


async def test_a_completion_server_gets_its_prompt_and_grammar_and_its_answer_is_parsed(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.push({"text": CALL_TEXT, "chunk_size": 4})
    model = OpenAICompletion(
        "scripted-model", base_url=scripted_server.base_url, tool_format="xml_call", constrain="llama.cpp"
    )
    request = GenRequest(messages_fn=lambda: list(ASK), tools=[WEATHER], tool_choice="get_weather")
    deltas, final = await collect(model, request)
    body = scripted_server.requests[0]
    assert body["prompt"] == render_chat(
        get_tool_format("xml_call").prepare_messages(ASK, [WEATHER], "get_weather"), "chatml"
    )
    assert constraints.gbnf_literal('<call name="get_weather">') in body["grammar"]
    (call,) = final.choices[0].tool_calls
    assert (call.name, call.arguments, final.choices[0].finish_reason) == (
        "get_weather",
        {"city": "Paris"},
        "tool_calls",
    )
    assert [d.tool_name for d in deltas if d.tool_name] == ["get_weather"]


def test_a_program_calls_tools_through_it(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": "Let me check. " + CALL_TEXT}, {"text": "It is sunny in Paris."})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, tool_format="xml_call")
    result = gl.Program(
        "{{#user}}Weather in Paris?{{/user}}"
        "{{#assistant}}{{gen 'answer' tools=[get_weather]}}{{/assistant}}"
        "{{#function}}{{answer()}}{{/function}}"
        "{{#assistant}}{{gen 'reply'}}{{/assistant}}",
        model=model,
    )(get_weather=get_weather)
    assert result.messages[1]["content"] == "Let me check."
    assert result.messages[2]["content"] == "sunny in Paris"
    assert result["reply"] == "It is sunny in Paris."
    assert '<result name="get_weather">sunny in Paris</result>' in scripted_server.requests[1]["prompt"]


@pytest.mark.local_model
async def test_a_local_model_writes_a_valid_call_under_its_grammar() -> None:
    from guidance_lite.models.llamacpp import LlamaCpp

    local = LlamaCpp(tool_format="xml_call", n_ctx=1024)
    try:
        request = GenRequest(messages_fn=lambda: list(ASK), tools=[WEATHER], tool_choice="required", max_tokens=40)
        final = await local.complete(request)
    finally:
        local.close()
    (call,) = final.choices[0].tool_calls
    assert call.name == "get_weather" and isinstance(call.arguments.get("city"), str)
