"""guidance 0.0.64 programs port without silent traps (issue 13, items 6-11): its keywords (``llm=``,
``guidance.llm``, ``caching=``, ``stream=``) work or are refused loudly, a gen stops at the quote or closing tag after
it, writes into ``this`` inside ``each`` reach the result, reserved names follow one rule, ``Mock`` matches what a
user reads, and a forced tool choice in the automatic loop forces the first round only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

import guidance_lite as gl
from guidance_lite.events import Finished, TextDelta
from guidance_lite.models.defaults import chosen_default
from guidance_lite.options import RESERVED_NAMES, RETIRED_NAMES, ProgramArgumentError
from guidance_lite.testing import ScriptedServer

CHAT = "{{#user~}}{{question}}{{~/user}}{{#assistant~}}{{gen 'answer'}}{{~/assistant}}"


@pytest.fixture
def clean_default() -> Iterator[None]:
    """Tests that set ``gl.llm`` leave the automatic default behind them."""
    yield
    gl.llm = None


# ---- item 6: 0.0.64's keywords --------------------------------------------------------------------------------------
def test_llm_keyword_is_the_model_in_program_and_in_a_call() -> None:
    first, second = gl.models.Mock("from Program"), gl.models.Mock("from the call")
    program = gl.Program(CHAT, llm=first)
    assert program(question="q")["answer"] == "from Program"
    assert program(question="q", llm=second)["answer"] == "from the call"
    assert "llm" not in program(question="q").variables  # never a template variable
    assert len(first.requests) == 2 and len(second.requests) == 1


def test_model_given_twice_is_refused() -> None:
    mock = gl.models.Mock()
    with pytest.raises(ProgramArgumentError, match="give the model once"):
        gl.Program(CHAT, mock, llm=mock)
    with pytest.raises(ProgramArgumentError, match="give the model once"):
        gl.Program(CHAT)(question="q", model=mock, llm=mock)


def test_gl_llm_sets_the_default_model(clean_default: None) -> None:
    assert gl.llm is None
    mock = gl.models.Mock("default answer")
    gl.llm = mock  # 0.0.64: guidance.llm = guidance.llms.OpenAI(...)
    assert gl.llm is mock and chosen_default() is mock and gl.models.default() is mock
    assert gl.Program(CHAT)(question="q")["answer"] == "default answer"
    gl.llm = None
    assert gl.models.default() is not mock
    gl.models.set_default(mock)
    assert gl.llm is mock
    with pytest.raises(TypeError, match="gl.models backend"):
        gl.llm = "gpt-4o-mini"


def test_an_explicit_model_wins_over_the_default(clean_default: None) -> None:
    gl.llm = gl.models.Mock("default")
    assert gl.Program(CHAT, model=gl.models.Mock("mine"))(question="q")["answer"] == "mine"


def test_stream_true_returns_the_events() -> None:
    program = gl.Program(CHAT, model=gl.models.Mock("Hello there"))
    events = list(program(question="q", stream=True))
    assert isinstance(events[-1], Finished) and events[-1].result["answer"] == "Hello there"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there"
    streaming = gl.Program(CHAT, model=gl.models.Mock("Hi"), stream=True)
    assert isinstance(list(streaming(question="q"))[-1], Finished)
    assert streaming(question="q", stream=False)["answer"] == "Hi"
    assert [r["answer"] for r in streaming.map([{"question": "a"}, {"question": "b"}])] == ["Hi", "Hi"]
    with pytest.raises(ProgramArgumentError, match="astream"):
        asyncio.run(streaming.arun(question="q"))


@pytest.mark.parametrize("name", sorted(RETIRED_NAMES))
def test_retired_keywords_are_refused_with_what_to_use(name: str) -> None:
    with pytest.raises(ProgramArgumentError) as at_creation:
        gl.Program(CHAT, model=gl.models.Mock(), **{name: True})
    assert f"{name}= is guidance 0.0.64's" in str(at_creation.value)
    assert isinstance(at_creation.value, (gl.GuidanceLiteError, TypeError))
    with pytest.raises(ProgramArgumentError, match=name):
        gl.Program(CHAT, model=gl.models.Mock())(question="q", **{name: True})


def test_retired_keywords_name_the_new_spelling() -> None:
    with pytest.raises(ProgramArgumentError, match=r"await program.arun"):
        gl.Program(CHAT, async_mode=True)
    with pytest.raises(ProgramArgumentError, match=r"seed="):
        gl.Program(CHAT, cache_seed=3)


def test_options_are_checked_when_given() -> None:
    with pytest.raises(ProgramArgumentError, match="caching= takes True, False or None"):
        gl.Program(CHAT, caching="yes")
    with pytest.raises(ValueError, match="tool_errors"):
        gl.Program(CHAT, model=gl.models.Mock())(question="q", tool_errors="ignore")


def test_caching_reaches_every_request() -> None:
    mock = gl.models.Mock("x")
    program = gl.Program(CHAT, model=mock, caching=False)
    program(question="q")
    program(question="q", caching=True)
    gl.Program(CHAT, model=mock)(question="q")
    assert [r.caching for r in mock.requests] == [False, True, None]


def test_caching_decides_whether_the_request_cache_is_used(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUIDANCE_LITE_CACHE_DIR", str(tmp_path / "default-cache"))
    with ScriptedServer(lambda body: "fresh") as server:
        plain = gl.models.OpenAI("m", base_url=server.base_url)  # made without a cache
        cached = gl.Program(CHAT, model=plain, caching=True)
        assert [cached(question="same")["answer"] for _ in range(2)] == ["fresh", "fresh"]
        assert len(server.requests) == 1  # the second run came from the default cache file
        assert (tmp_path / "default-cache").exists()
        with_cache = gl.models.OpenAI("m", base_url=server.base_url, cache=tmp_path / "own.sqlite")
        gl.Program(CHAT, model=with_cache)(question="other")
        gl.Program(CHAT, model=with_cache)(question="other")
        assert len(server.requests) == 2  # the backend's own cache answered the repeat
        gl.Program(CHAT, model=with_cache, caching=False)(question="other")
        assert len(server.requests) == 3  # caching=False went to the server


# ---- item 7: the stop a gen infers from the text around it ----------------------------------------------------------
@pytest.mark.parametrize(
    "template, reply, value, stop",
    [
        ('{"name": "{{gen \'name\'}}"}', 'Ada", "age": 36}', "Ada", '"'),
        ("say '{{gen 'word'}}' twice", "hello' and more", "hello", "'"),
        ('"""{{gen \'doc\'}}"""', 'Docs."""\nrest', "Docs.", '"""'),
        ("```{{gen 'code'}}```", "x = 1```\nmore", "x = 1", "```"),
        ("<answer>{{gen 'a'}}</answer>", "42</answer><extra>", "42", "</answer>"),
    ],
)
def test_a_gen_stops_at_the_quote_or_tag_that_closes_around_it(
    template: str, reply: str, value: str, stop: str
) -> None:
    mock = gl.models.Mock(reply)
    result = gl.Program(template, model=mock)()
    name = next(iter(result.variables))
    assert result[name] == value
    assert mock.last_request is not None and mock.last_request.stop == [stop]


def test_the_inferred_stop_makes_valid_json_as_in_0_0_64() -> None:
    mock = gl.models.Mock(['Ada", "city": "Paris"}', 'Paris" trailing'])
    result = gl.Program('{"name": "{{gen \'name\'}}", "city": "{{gen \'city\'}}"}', model=mock)()
    assert json.loads(result.text) == {"name": "Ada", "city": "Paris"}


@pytest.mark.parametrize(
    "template",
    [
        "Name: {{gen 'x'}}.",  # other following text is not a stop (0.0.64 turned that off)
        "{{gen 'x'}}\"",  # a quote after but not before
        "\"{{gen 'x'}}",  # a quote before but not after
        "\"{{gen 'x'}}'",  # different quotes
        "<b>{{gen 'x'}} </b>",  # the tag does not follow right away
    ],
)
def test_no_stop_is_inferred_elsewhere(template: str) -> None:
    mock = gl.models.Mock("a\"b'c</b>.d")
    gl.Program(template, model=mock)()
    assert mock.last_request is not None and mock.last_request.stop is None


def test_stop_overrides_the_inferred_stop_and_empty_stop_turns_it_off() -> None:
    mock = gl.models.Mock('a"b;c')
    assert gl.Program("\"{{gen 'x' stop=';'}}\"", model=mock)()["x"] == 'a"b'
    assert gl.Program("\"{{gen 'x' stop=''}}\"", model=mock)()["x"] == 'a"b;c'
    assert mock.requests[-1].stop is None


def test_no_stop_is_inferred_next_to_tools() -> None:
    def lookup(q: str) -> str:
        """Look something up."""
        return q

    mock = gl.models.Mock("plain")
    gl.Program("{{#user}}q{{/user}}{{#assistant}}\"{{gen 'x' tools=[lookup]}}\"{{/assistant}}", model=mock)(
        lookup=lookup
    )
    assert mock.last_request is not None and mock.last_request.stop is None


def test_the_inferred_stop_works_over_http(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": 'Ada", "more": 1}'})
    model = gl.models.OpenAICompletion("m", base_url=scripted_server.base_url)
    result = gl.Program('{"name": "{{gen \'name\'}}"}', model=model)()
    assert result["name"] == "Ada"
    assert result.text == '{"name": "Ada"}'
    assert result.finish_reasons == {"name": "stop"}
    assert scripted_server.requests[0]["prompt"] == '{"name": "'


@pytest.mark.local_model
def test_the_inferred_stop_works_on_the_local_model() -> None:
    model = gl.models.LlamaCpp()
    template = (
        '{{#user}}Give a JSON object with a "name" field for a cat.{{/user}}'
        '{{#assistant}}{"name": "{{gen \'name\' max_tokens=40}}"}{{/assistant}}'
    )
    result = gl.Program(template, model=model)()
    assert '"' not in result["name"] and result["name"].strip()
    assert result.finish_reasons["name"] == "stop"
    assert json.loads(result.messages[-1]["content"]) == {"name": result["name"]}


# ---- item 8: writes into `this` inside each -------------------------------------------------------------------------
def test_writes_into_the_loop_item_reach_the_result() -> None:
    xs = [{"a": 1}, {"a": 2}]
    program = gl.Program(
        "{{#each xs}}{{gen 'this.y'}}{{set 'this.z' @index}};{{/each}}[{{xs[0].y}}|{{xs[1].z}}]",
        model=gl.models.Mock(["first", "second"]),
    )
    result = program(xs=xs)
    assert result["xs"] == [{"a": 1, "y": "first", "z": 0}, {"a": 2, "y": "second", "z": 1}]
    assert result.text.endswith("[first|1]")
    assert xs == [{"a": 1}, {"a": 2}]  # the caller's list and dicts are untouched


def test_item_writes_reach_dicts_nested_loops_named_items_and_parallel_loops() -> None:
    data = {"d": {"k": {"v": 1}}, "outer": [{"ys": [{}, {}]}], "people": [{"n": "Ada"}], "par": [{}, {}]}
    template = (
        "{{#each d}}{{set 'this.key' @key}}{{/each}}"
        "{{#each outer}}{{#each this.ys}}{{set 'this.i' @index}}{{/each}}{{/each}}"
        "{{#each people item_name='p'}}{{set 'p.greeted' True}}{{/each}}"
        "{{#each par parallel=True}}{{set 'this.i' @index}}{{/each}}"
    )
    result = gl.Program(template)(**data)
    assert result["d"] == {"k": {"v": 1, "key": "k"}}
    assert result["outer"] == [{"ys": [{"i": 0}, {"i": 1}]}]
    assert result["people"] == [{"n": "Ada", "greeted": True}]
    assert result["par"] == [{"i": 0}, {"i": 1}]
    assert data["outer"] == [{"ys": [{}, {}]}] and data["people"] == [{"n": "Ada"}]


def test_a_loop_over_a_computed_list_still_works_and_writes_nowhere() -> None:
    result = gl.Program("{{#each [{'a': 1}]}}{{set 'this.b' 2}}{{this.b}}{{/each}}")()
    assert result.text == "2"


# ---- item 9: one rule for reserved names ----------------------------------------------------------------------------
def test_name_is_a_template_variable_in_program_and_in_calls() -> None:
    program = gl.Program("Hello {{name}}", name="Ada")
    assert program().text == "Hello Ada"
    assert program(name="Bob").text == "Hello Bob"
    assert program.template_name is None


def test_template_name_names_the_template_and_a_call_cannot_change_it() -> None:
    with pytest.raises(gl.TemplateSyntaxError) as info:
        gl.Program("{{#if}}x{{/if}}", template_name="greeting.hbs")
    assert info.value.name == "greeting.hbs"
    program = gl.Program("x", template_name="greeting.hbs")
    assert "greeting.hbs" in repr(program)
    with pytest.raises(ProgramArgumentError, match="give it to Program"):
        program(template_name="other")


@pytest.mark.parametrize("name", ["silent", "model", "stream", "template_name", "async_mode"])
def test_reading_a_reserved_name_hints_to_rename_it(name: str) -> None:
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program(f"{{{{{name}}}}}", model=gl.models.Mock())()
    assert f"{name!r} is " in info.value.hint and "rename the variable" in info.value.hint
    assert f"program({name}=" not in info.value.hint  # the hint that could never work


def test_reserved_names_are_the_program_keywords() -> None:
    assert {"model", "llm", "silent", "caching", "stream", "await_missing", "template_name"} <= set(RESERVED_NAMES)
    assert "name" not in RESERVED_NAMES


# ---- item 10: Mock --------------------------------------------------------------------------------------------------
def test_mock_keys_match_the_end_of_the_last_message_in_a_chat() -> None:
    mock = gl.models.Mock({"What is 2+2?": "4", "Capital of France?": ["Paris", "Still Paris"]})
    program = gl.Program(CHAT, model=mock)
    assert program(question="What is 2+2?")["answer"] == "4"
    assert [program(question="Capital of France?")["answer"] for _ in range(3)] == ["Paris", "Still Paris"] + [
        "Still Paris"
    ]


def test_mock_keys_match_text_written_before_the_gen_in_the_assistant_block() -> None:
    mock = gl.models.Mock({"Answer:": "42"})
    template = "{{#user}}q{{/user}}{{#assistant}}Answer: {{gen 'a'}}{{/assistant}}"
    assert gl.Program(template, model=mock)()["a"] == "42"


def test_mock_without_a_matching_key_says_how_the_text_ends() -> None:
    mock = gl.models.Mock({"nothing like it": "x"})
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program(CHAT, model=mock)(question="Tell me a joke")
    message = info.value.message
    assert "Mock has no reply for this prompt" in message and "'Tell me a joke'" in message
    assert "'nothing like it'" in message and 'key "' not in message and "not found" not in message


def test_geneach_on_an_unscripted_mock_makes_one_item_not_a_hundred() -> None:
    mock = gl.models.Mock()
    result = gl.Program("{{#geneach 'items'}}- {{gen 'this' stop='\\n'}}\n{{/geneach}}", model=mock)()
    assert len(result["items"]) == 1
    assert [r.options for r in mock.requests if r.options] == [["- ", "<|end|>"]] * 2


def test_unscripted_mock_select_picks_the_first_option_once() -> None:
    result = gl.Program("{{select 'a' options=['x', 'y']}}{{select 'b' options=['u', 'v']}}", model=gl.models.Mock())()
    assert (result["a"], result["b"]) == ("x", "u")


# ---- item 11: a forced tool choice in the automatic loop ------------------------------------------------------------
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21}


@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_a_forced_choice_forces_the_first_round_only(scripted_server: ScriptedServer, choice: str) -> None:
    scripted_server.push({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}, "It is 21 °C.")
    model = gl.models.OpenAI("m", base_url=scripted_server.base_url)
    template = (
        "{{#user}}Weather in Paris?{{/user}}"
        f"{{{{#assistant}}}}{{{{gen 'answer' tools=[get_weather] tool_choice='{choice}' max_rounds=3}}}}"
        "{{/assistant}}"
    )
    result = gl.Program(template, model=model)(get_weather=get_weather)
    assert result["answer"] == "It is 21 °C."  # a text answer after the results is not an error
    first, second = scripted_server.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert second["tool_choice"] == "auto"
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]
