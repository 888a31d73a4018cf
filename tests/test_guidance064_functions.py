"""guidance 0.0.64's function-calling programs run unchanged (issue 8, section 1).

``PROGRAM`` is the canonical program from the guidance pull request that introduced function calling, verbatim:
``functions=`` is a list of OpenAI function schemas, the implementation is passed by name, ``{{>@tool_def}}``
declares the tools, ``function_call="auto"`` offers them. ``WHILE_PROGRAM`` is its earlier ``{{#while True}}`` form.
Both run end to end through the real ``openai`` SDK against a scripted server, on Mock, on the completion backend
(client-side Hermes format) and on the local SmolLM2 model (a forced choice: a 135M model does not choose to call a
tool by itself). Then the pieces on their own: ``{{>tool_def}}`` forms, ``function_call=`` spellings and ``{{#while}}``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import AsyncIterator
from typing import Any, Union

import pytest
from helpers import assert_every_call_answered
from replay import ReplayServer, strict_server_problems

import guidance_lite as gl
from guidance_lite.models.base import Completion, Delta, GenRequest, Model
from guidance_lite.testing import ScriptedServer

PROGRAM = """{{~#system~}}
You are a helpful assistant.
{{>@tool_def}}
{{~/system~}}
{{~#user~}}
Get the current weather in New York City.
{{~/user~}}
{{~#each range(100)~}}
{{~#assistant~}}
{{gen 'answer' temperature=1.0 max_tokens=50 function_call="auto"}}
{{~/assistant~}}
{{#if callable(answer)}}
{{~#function name=answer.function_name~}}
{{answer()}}
{{~/function~}}
{{else}}
{{break}}
{{/if}}
{{~/each~}}"""

WHILE_PROGRAM = PROGRAM.replace("{{~#each range(100)~}}", "{{~#while True~}}").replace("{{~/each~}}", "{{~/while~}}")

FORMS = {"each": PROGRAM, "while": WHILE_PROGRAM}

FUNCTIONS = [
    {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    }
]
CALL = {"tool_calls": [{"name": "get_current_weather", "arguments": {"location": "New York City"}}]}
ANSWER = "It is 72 degrees and sunny in New York City."


class Weather:
    """The seed function of the issue (no annotations, a NumPy docstring with types), counting its runs."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self._lock = threading.Lock()
        runs, lock = self.runs, self._lock

        def get_current_weather(location, unit="fahrenheit"):  # type: ignore[no-untyped-def]
            """Get the current weather in a given location.
            Parameters
            ----------
            location : string
                The location to get the weather for.
            unit : str, optional
                The unit to get the weather in. Can be either "fahrenheit" or "celsius".
            """
            with lock:
                runs.append({"location": location, "unit": unit})
            return {"location": location, "temperature": 72, "unit": unit}

        self.fn = get_current_weather


def check_result(result: gl.Result, weather: Weather, answer: str = ANSWER) -> None:
    """What every backend must produce: one call answered, then the text answer; the readable tools line in text."""
    assert weather.runs == [{"location": "New York City", "unit": "fahrenheit"}]
    assert result["answer"] == answer
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert result.messages[0] == {"role": "system", "content": "You are a helpful assistant.\n"}  # no definitions
    assert_every_call_answered(result.messages)
    assert json.loads(result.messages[3]["content"]) == {
        "location": "New York City",
        "temperature": 72,
        "unit": "fahrenheit",
    }
    assert '[tools: get_current_weather(location: string, unit?: "celsius" | "fahrenheit")]' in result.text
    assert [r.name for r in result.tool_calls] == ["get_current_weather"]


# ---- the program, verbatim, on each backend ----------------------------------------------------------------------
@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_program_runs_through_the_sdk_against_a_scripted_server(form: str, scripted_server: ScriptedServer) -> None:
    scripted_server.push(CALL, ANSWER)
    weather = Weather()
    model = gl.models.OpenAI("gpt-3.5-turbo-0613", base_url=scripted_server.base_url)
    result = gl.Program(FORMS[form], model=model, silent=True)(functions=FUNCTIONS, get_current_weather=weather.fn)
    check_result(result, weather)
    first, second = scripted_server.requests
    # the schema the user wrote is sent as the tool, enum and all; the legacy settings arrive as written
    assert first["tools"] == [{"type": "function", "function": FUNCTIONS[0]}]
    assert first["tool_choice"] == "auto" and first["temperature"] == 1.0 and first["max_tokens"] == 50
    assert first["messages"][0] == {"role": "system", "content": "You are a helpful assistant.\n"}
    assert strict_server_problems(second["messages"]) == []
    assert second["messages"][-1]["role"] == "tool"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_program_runs_on_mock(form: str) -> None:
    mock = gl.models.Mock([CALL, ANSWER])
    weather = Weather()
    result = gl.Program(FORMS[form], model=mock, silent=True)(functions=FUNCTIONS, get_current_weather=weather.fn)
    check_result(result, weather)
    first, second = mock.requests
    assert [spec.definition for spec in first.tools] == [{"type": "function", "function": FUNCTIONS[0]}]
    assert first.tool_choice == "auto" and first.temperature == 1.0 and first.max_tokens == 50
    assert second.messages[-1]["role"] == "tool"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_program_runs_on_the_completion_backend(form: str, scripted_server: ScriptedServer) -> None:
    """Client-side tools: the definitions are rendered where Hermes models expect them and the call is parsed."""
    scripted_server.push(
        '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "New York City"}}\n</tool_call>', ANSWER
    )
    weather = Weather()
    model = gl.models.OpenAICompletion(
        "hermes-model", base_url=scripted_server.base_url, chat_template="chatml", tool_format="hermes"
    )
    result = gl.Program(FORMS[form], model=model, silent=True)(functions=FUNCTIONS, get_current_weather=weather.fn)
    check_result(result, weather)
    first, second = (r["prompt"] for r in scripted_server.requests)
    system = first.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert json.dumps({"type": "function", "function": FUNCTIONS[0]}) in system  # in the <tools> section
    assert "<tool_response>" in second


def test_the_program_answers_the_duplicate_id_calls_of_llamacpp_functionary() -> None:
    """The issue's report: llama.cpp (functionary) answers with two calls that both carry the id "get_weather" and
    content null. Both calls run once, each result goes back under its own id, and the loop ends on the text answer."""
    runs: list[str] = []

    def get_weather(location):  # type: ignore[no-untyped-def]
        """Weather.

        Parameters
        ----------
        location : str
            Where.
        """
        runs.append(location)
        return f"sunny in {location}"

    schema = {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}
    with ReplayServer(["llamacpp_functionary_duplicate_ids_stream.sse", "openai_text_stream.sse"]) as server:
        model = gl.models.OpenAI("functionary-small-v3.2", base_url=server.base_url, max_retries=0)
        result = gl.Program(PROGRAM, model=model, silent=True)(functions=[schema], get_weather=get_weather)
        follow_up = server.requests[1]["messages"]
    assert sorted(runs) == ["Lyon", "Paris"]
    assert strict_server_problems(follow_up) == []
    assert [m["content"] for m in follow_up if m["role"] == "tool"] == ["sunny in Paris", "sunny in Lyon"]
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]


class FirstRequestForced(Model):
    """The local model with the first request's choice forced to the tool and later ones to 'none': SmolLM2-135M does
    not decide to call a tool by itself, so the test decides for it, and the program text stays verbatim."""

    def __init__(self, inner: Model, tool: str) -> None:
        self.inner, self.tool = inner, tool
        self.name = inner.name
        self.chat, self.text = inner.chat, inner.text
        self.supports_prefill, self.can_constrain = inner.supports_prefill, inner.can_constrain
        self.requests: list[GenRequest] = []

    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        forced = dataclasses.replace(request, tool_choice=self.tool if not self.requests else "none")
        self.requests.append(forced)
        async for item in self.inner.stream(forced):
            yield item


@pytest.fixture(scope="module")
def local_model() -> Any:
    from guidance_lite.models.llamacpp import LlamaCpp

    model = LlamaCpp()
    model.load()
    yield model
    model.close()


@pytest.mark.local_model
def test_the_program_runs_on_the_local_model_with_a_forced_choice(local_model: Any) -> None:
    """(The ``{{#while True}}`` form differs only in the template: it runs on the other backends above.)"""
    weather = Weather()
    model = FirstRequestForced(local_model, "get_current_weather")
    result = gl.Program(PROGRAM, model=model, silent=True)(functions=FUNCTIONS, get_current_weather=weather.fn)
    assert [r.tool_choice for r in model.requests] == ["get_current_weather", "none"]
    (run,) = weather.runs  # the grammar-forced call, with whatever location the model wrote
    assert isinstance(run["location"], str) and run["unit"] in ("celsius", "fahrenheit")
    (record,) = result.tool_calls
    assert record.error is None and record.arguments is not None
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert isinstance(result["answer"], str)
    assert_every_call_answered(result.messages)
    prompt = model.inner.load().detokenize(model.inner.encode_request(model.requests[0]), special=True).decode()
    assert '"enum": ["celsius", "fahrenheit"]' in prompt  # the definitions, in the Hermes <tools> section


# ---- {{>tool_def}} ---------------------------------------------------------------------------------------------------
CHAT = """{{#system}}Be brief.{{>TOOLDEF}}{{/system}}{{#user}}weather?{{/user}}
{{#assistant}}{{gen 'answer' GENARGS}}{{/assistant}}"""


def chat(tool_def: str, gen_args: str) -> str:
    return CHAT.replace("TOOLDEF", tool_def).replace("GENARGS", gen_args)


def get_time(city: str) -> str:
    """The local time in a city."""
    return f"12:00 in {city}"


def test_tool_def_accepts_callables_with_schemas_from_their_docstrings() -> None:
    weather = Weather()
    mock = gl.models.Mock("fine")
    gl.Program(chat("@tool_def", 'function_call="auto"'), model=mock, silent=True)(functions=[weather.fn, get_time])
    (request,) = mock.requests
    assert [spec.name for spec in request.tools] == ["get_current_weather", "get_time"]
    properties = request.tools[0].parameters["properties"]
    assert properties["location"]["type"] == "string" and properties["unit"]["type"] == "string"
    assert request.tools[0].description == "Get the current weather in a given location."


def test_tool_def_with_explicit_functions_and_without_the_at_sign() -> None:
    mock = gl.models.Mock("fine")
    result = gl.Program(chat("tool_def functions=fs", 'function_call="auto"'), model=mock, silent=True)(
        fs=[{"type": "function", "function": copy.deepcopy(FUNCTIONS[0])}, get_time]
    )
    (request,) = mock.requests
    assert [spec.name for spec in request.tools] == ["get_current_weather", "get_time"]
    assert result.messages[0]["content"] == "Be brief."
    assert "[tools: get_current_weather(" in result.text and "get_time(city: string)]" in result.text


def test_a_variable_named_like_the_built_in_partial_wins_without_the_at_sign() -> None:
    mock = gl.models.Mock("fine")
    result = gl.Program(chat("tool_def", ""), model=mock, silent=True)(tool_def=" (my own partial)")
    assert result.messages[0]["content"] == "Be brief. (my own partial)"


def test_tools_restricts_a_gen_to_some_of_the_declared_tools() -> None:
    mock = gl.models.Mock("fine")
    gl.Program(chat("@tool_def", "tools=['get_time'] tool_choice='auto'"), model=mock, silent=True)(
        functions=[Weather().fn, get_time]
    )
    assert [spec.name for spec in mock.requests[0].tools] == ["get_time"]


def test_gens_without_function_call_offer_nothing() -> None:
    mock = gl.models.Mock("fine")
    gl.Program(chat("@tool_def", ""), model=mock, silent=True)(functions=FUNCTIONS)
    assert mock.requests[0].tools is None


@pytest.mark.parametrize(
    ("function_call", "choice"),
    [('"auto"', "auto"), ('"none"', "none"), ('"get_time"', "get_time"), ("{'name': 'get_time'}", "get_time")],
)
def test_function_call_is_the_legacy_spelling_of_tool_choice(function_call: str, choice: str) -> None:
    mock = gl.models.Mock("fine")
    gl.Program(chat("@tool_def", f"function_call={function_call}"), model=mock, silent=True)(
        functions=[Weather().fn, get_time]
    )
    assert mock.requests[0].choice == choice
    assert "function_call" not in mock.requests[0].extra  # not passed on to the backend as a parameter


def test_function_call_mistakes_have_clear_errors() -> None:
    mock = gl.models.Mock("fine")
    with pytest.raises(gl.TemplateRuntimeError, match="tool_choice= or its guidance 0.0.64 spelling"):
        gl.Program(chat("@tool_def", "function_call='auto' tool_choice='auto'"), model=mock)(functions=FUNCTIONS)
    with pytest.raises(gl.TemplateRuntimeError, match=r"none were declared: write \{\{>@tool_def\}\}"):
        gl.Program(chat("@tool_def", "function_call='auto'").replace("{{>@tool_def}}", ""), model=mock)()
    with pytest.raises(gl.TemplateRuntimeError, match="pass functions=") as info:
        gl.Program(chat("@tool_def", ""), model=mock)()
    assert info.value.line == 1
    with pytest.raises(gl.TemplateRuntimeError, match="no built-in partial '@tool_defs'.*@tool_def"):
        gl.Program(chat("@tool_defs", ""), model=mock)()


def test_check_reports_functions_as_the_programs_input() -> None:
    report = gl.analyze(PROGRAM)
    assert report.variables == ["functions"]
    assert "while" in gl.analyze(WHILE_PROGRAM).blocks
    assert gl.analyze("{{>tool_def functions=fs}}").variables == ["fs"]


# ---- {{#while}} -----------------------------------------------------------------------------------------------------
def test_while_re_evaluates_its_condition_and_supports_break_and_continue() -> None:
    program = gl.Program(
        "{{set 'i' 0}}{{#while i < 6}}{{set 'i' add(i, 1)}}{{#if i == 2}}{{continue}}{{/if}}"
        "{{#if i == 5}}{{break}}{{/if}}[{{i}}:{{@index}}]{{/while}}"
    )
    assert program().text == "[1:0][3:2][4:3]"
    assert gl.Program("{{#while False}}never{{/while}}done")().text == "done"


def test_a_runaway_while_is_an_error_naming_its_line_and_the_limit() -> None:
    program = gl.Program("{{set 'n' 0}}\n{{#while True max_iterations=7}}{{set 'n' add(n, 1)}}{{/while}}")
    with pytest.raises(gl.TemplateRuntimeError, match=r"ran 7 iterations.*max_iterations=7") as info:
        program()
    assert info.value.line == 2
    assert info.value.partial.variables["n"] == 7  # exactly the limit ran
    with pytest.raises(gl.TemplateRuntimeError, match="max_iterations=100"):
        gl.Program("{{#while True}}{{/while}}")()
    with pytest.raises(gl.TemplateRuntimeError, match="max_iterations must be a whole number"):
        gl.Program("{{#while True max_iterations=-1}}{{/while}}")()


def test_while_needs_a_condition() -> None:
    with pytest.raises(gl.TemplateSyntaxError, match="while"):
        gl.Program("{{#while}}x{{/while}}")
