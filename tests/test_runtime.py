"""The runtime's building blocks on their own: the interpreter's ``failures_at`` and ``set_variable``, the state's
``hidden`` scopes, copy-on-write variables, and errors that pickle and share one root."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import guidance_lite as gl
from guidance_lite import nodes as n
from guidance_lite.control import BreakLoop
from guidance_lite.errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from guidance_lite.events import VariableSet
from guidance_lite.interpreter import Interpreter
from guidance_lite.state import GEN, ProgramState, ToolCallBookkeepingError
from guidance_lite.variables import OwnedValues, assign_path


async def _never_pauses(variable: str) -> None:
    raise AssertionError(f"paused on {variable}")


def _no_templates(value: Any, name: str) -> tuple[n.Template, dict]:
    raise AssertionError("no template expected")


def make_interpreter(variables: dict | None = None, **options: Any) -> Interpreter:
    return Interpreter(
        ProgramState(variables),
        None,
        "line one\n  {{tag}}\n",
        options,
        pause=_never_pauses,
        load_template=_no_templates,
    )


TAG = n.Text(2, 3, "tag")  # a node on line 2, column 3 of the source above


# ---- failures_at -------------------------------------------------------------------------------------------------
def test_failures_at_turns_a_failure_into_an_error_at_the_node():
    interp = make_interpreter()
    with pytest.raises(TemplateRuntimeError) as info, interp.failures_at(TAG):
        raise ValueError("bad value")
    err = info.value
    assert (err.line, err.col, err.message) == (2, 3, "ValueError: bad value")
    assert "{{tag}}" in str(err) and isinstance(err.__cause__, ValueError)


def test_failures_at_lets_errors_with_a_line_and_loop_signals_through():
    interp = make_interpreter()
    inner = TemplateRuntimeError("already placed", line=7)
    with pytest.raises(TemplateRuntimeError) as info, interp.failures_at(TAG):
        raise inner
    assert info.value is inner
    with pytest.raises(BreakLoop) as loop, interp.failures_at(TAG):
        raise BreakLoop()
    assert loop.value.node is TAG  # so "{{break}} outside of a loop" can name the tag


def test_failures_at_names_a_missing_variable_and_suggests_close_names():
    interp = make_interpreter({"question": "?"})
    with pytest.raises(TemplateRuntimeError) as info, interp.failures_at(TAG):
        interp.lookup("questoin")
    assert "'questoin' is not defined" in info.value.message and "'question'" in info.value.hint


# ---- set_variable and copy-on-write --------------------------------------------------------------------------------
def test_set_variable_assigns_without_touching_caller_data_and_announces_it():
    caller = {"inner": {"x": 1}}
    interp = make_interpreter({"obj": caller})
    events: list = []
    interp.listeners.append(events.append)
    interp.set_variable("obj.inner.y", 2)
    interp.set_variable("items", "a", append=True)
    interp.set_variable("items", "b", append=True)
    assert interp.state.variables["obj"] == {"inner": {"x": 1, "y": 2}}
    assert caller == {"inner": {"x": 1}}
    assert interp.state.variables["items"] == ["a", "b"]
    assert events == [VariableSet("obj.inner.y", 2), VariableSet("items", "a"), VariableSet("items", "b")]


def test_assign_writes_into_the_innermost_scope_that_binds_the_name():
    variables: dict = {"this": {"outer": True}}
    frame = {"this": {"item": 1}}
    owned = OwnedValues()
    assign_path(variables, [frame], owned, "this.done", True)
    assert frame["this"] == {"item": 1, "done": True}
    assert variables == {"this": {"outer": True}}


def test_owned_values_copy_once_then_write_in_place():
    owned = OwnedValues()
    data = {"a": 1}
    copy = owned.own(data)
    assert copy == data and copy is not data
    assert owned.own(copy) is copy
    made = owned.new([])
    assert owned.appended(made, 1) is made and made == [1]
    with pytest.raises(TypeError, match="list_append needs a list"):
        owned.appended("text", 1)


# ---- hidden scopes -------------------------------------------------------------------------------------------------
def test_hidden_text_counts_while_open_and_is_gone_afterwards():
    state = ProgramState()
    state.append("shown ")
    with state.hidden() as scope:
        assert scope is not None and state.current_scope == scope
        state.append("secret", GEN)
        assert state.visible_text_since(0) == "shown secret"
    assert state.current_scope == 0
    assert state.text == "shown " and state.visible_text_since(0) == "shown "


def test_hidden_false_writes_visibly_and_hidden_closes_on_failure():
    state = ProgramState()
    with state.hidden(False) as scope:
        assert scope is None
        state.append("plain")
    with pytest.raises(RuntimeError), state.hidden(True):
        raise RuntimeError("boom")
    assert state.open_scopes == [] and state.text == "plain"


# ---- errors ------------------------------------------------------------------------------------------------------
def test_syntax_errors_pickle_with_their_message_and_position():
    with pytest.raises(TemplateSyntaxError) as info:
        gl.Program("ok\n{{#if}}{{/if}}")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is TemplateSyntaxError and str(copy) == str(info.value)
    assert (copy.line, copy.col, copy.hint) == (info.value.line, info.value.col, info.value.hint)


def test_runtime_errors_pickle_without_their_partial_result():
    with pytest.raises(TemplateRuntimeError) as info:
        gl.Program("before\n{{missing}}")()
    assert info.value.partial is not None and info.value.partial.text == "before\n"
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.line == 2 and copy.partial is None


def test_bookkeeping_errors_are_library_errors_and_value_errors():
    state = ProgramState()
    for caught in (GuidanceLiteError, ValueError):
        with pytest.raises(caught, match="no assistant message asked for tool call 'call_x'"):
            state.answer_call("call_x")
    with pytest.raises(GuidanceLiteError):
        state.answer_call("call_x")
    assert isinstance(pickle.loads(pickle.dumps(ToolCallBookkeepingError("m"))), ToolCallBookkeepingError)


# ---- partials and parse through the program's loader ---------------------------------------------------------------
def test_partials_and_parse_load_templates_through_the_program():
    inner = gl.Program("[{{who}}{{args[0]}}]", who="default ")
    result = gl.Program("{{>inner 1}}{{>text who='t'}}{{parse code}}")(
        inner=inner, text="<{{who}}>", code="{{set 'x' 5}}{{x}}"
    )
    assert result.text == "[default 1]<t>5"
    with pytest.raises(TemplateRuntimeError, match="a partial must be a Program or a template string, got int"):
        gl.Program("{{>p}}")(p=3)
