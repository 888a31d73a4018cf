"""Item 18 of issue 9: a command called with the wrong number of positional arguments says what the user wrote
("gen takes at most 1 positional argument (the variable name), got 3"), with a hint — for every command, from the
arity the registry derives once from each handler's signature."""

from __future__ import annotations

import keyword

import pytest

import guidance_lite as gl
from guidance_lite.registry import COMMANDS, ArityError

# `not` is also the operator, so no call form of it reaches the command with two arguments
BOUNDED = sorted(
    name for name, command in COMMANDS.items() if command.arity[1] is not None and not keyword.iskeyword(name)
)


def test_gen_with_three_names_counts_what_the_user_wrote() -> None:
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program("{{gen 'x' 'y' 'z'}}", model=gl.models.Mock(), silent=True)()
    error = info.value
    assert error.message == "gen takes at most 1 positional argument (the variable name), got 3"
    assert "keyword" in error.hint and "{{gen 'name'" in error.hint
    assert isinstance(error.__cause__, ArityError)


@pytest.mark.parametrize("name", BOUNDED)
def test_every_command_counts_the_arguments_written(name: str) -> None:
    high = COMMANDS[name].arity[1]
    assert high is not None
    args = " ".join(["1"] * (high + 1))
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program(f"{{{{{name}({', '.join(['1'] * (high + 1))})}}}}", model=gl.models.Mock(), silent=True)()
    assert info.value.message.startswith(f"{name} takes ") and info.value.message.endswith(f", got {high + 1}")
    assert "takes from" not in info.value.message and "were given" not in info.value.message
    if high > 0:  # the handlebars form counts the same
        with pytest.raises(gl.TemplateRuntimeError, match=f"got {high + 1}"):
            gl.Program(f"{{{{{name} {args}}}}}", model=gl.models.Mock(), silent=True)()


def test_too_few_arguments_are_counted_too() -> None:
    with pytest.raises(gl.TemplateRuntimeError) as info:
        gl.Program("{{set}}", silent=True)()
    assert info.value.message == "set takes at least 1 positional argument (the variable name, value), got 0"
    with pytest.raises(
        gl.TemplateRuntimeError, match=r"await takes 1 positional argument \(the variable name\), got 0"
    ):
        gl.Program("{{await()}}", silent=True)()


def test_the_arity_of_a_plain_helper_comes_from_its_function() -> None:
    assert COMMANDS["join"].arity == (1, 2) and COMMANDS["len"].arity == (1, 1)
    with pytest.raises(
        gl.TemplateRuntimeError, match=r"^join takes at most 2 positional arguments \(items, sep\), got 3"
    ):
        gl.Program("{{join(xs, ',', 'x')}}", silent=True)(xs=[1])
