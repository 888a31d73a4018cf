"""Which keyword arguments of ``Program(...)`` and of a call ``program(...)`` are not template variables.

One rule for both places: the model (``model=``, or guidance 0.0.64's ``llm=``) and the run options below mean the
same thing wherever they are given (a call overrides the Program's); every other keyword is a template variable.
``template_name`` names the template when it is parsed, so only ``Program`` takes it. guidance 0.0.64's keywords that
have no meaning here are refused with what to write instead, rather than silently becoming template variables.

This module sits below the program and the interpreter (it imports nothing of the package but the error root), so
``Program``, the CLI and the interpreter's error hints read the same lists.
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import GuidanceLiteError

MODEL_NAMES = ("model", "llm")  # llm= is guidance 0.0.64's spelling of model=
OPTION_NAMES = (
    "await_missing",
    "on_tool_call",
    "tool_errors",
    "tool_timeout",
    "silent",
    "caching",
    "stream",
    "limits",
    "record",
)
TEMPLATE_NAME = "template_name"
# guidance 0.0.64 keywords with no equivalent option here -> what to write instead
RETIRED_NAMES: dict[str, str] = {
    "async_mode": "run it from async code with `await program.arun(...)` (or `async for` over program.astream(...))",
    "cache_seed": "give gen a seed= (requests with a seed or temperature 0 are what the request cache keeps)",
    "logprobs": "guidance_lite does not collect log probabilities",
    "log": "the run's record is the Result: result.text, result.messages, result.tool_calls, result.generations",
    "logging": "the run's record is the Result: result.text, result.messages, result.tool_calls, result.generations",
}
RESERVED_NAMES = (*MODEL_NAMES, *OPTION_NAMES, TEMPLATE_NAME, *RETIRED_NAMES)


class ProgramArgumentError(GuidanceLiteError, TypeError):
    """A keyword argument of ``Program`` or of a call that can't be taken as written (the message says what to use)."""


def retired_message(name: str) -> str:
    return f"{name}= is guidance 0.0.64's and has no meaning in guidance_lite: {RETIRED_NAMES[name]}"


def check_no_retired(kwargs: dict) -> None:
    """Refuse guidance 0.0.64 keywords that would otherwise become template variables without anyone noticing."""
    for name in kwargs:
        if name in RETIRED_NAMES:
            raise ProgramArgumentError(retired_message(name))


def pick_model(kwargs: dict) -> Any:
    """Pop ``model=`` / ``llm=`` from ``kwargs`` (None when neither is given; both at once is an error)."""
    model, llm = kwargs.pop("model", None), kwargs.pop("llm", None)
    if model is not None and llm is not None:
        raise ProgramArgumentError("give the model once: model= (llm= is guidance 0.0.64's name for the same thing)")
    return model if model is not None else llm


def reserved_hint(name: str) -> Optional[str]:
    """How to fix a template that reads ``name`` as a variable when the name is reserved (None when it isn't)."""
    if name not in RESERVED_NAMES:
        return None
    if name in MODEL_NAMES:
        kind = "the model"
    elif name == TEMPLATE_NAME:
        kind = "the template's name"
    elif name in RETIRED_NAMES:
        kind = "a guidance 0.0.64 option that guidance_lite refuses"
    else:
        kind = "a program option"
    return (
        f"{name!r} is {kind}, not a template variable (a keyword {name}=… never reaches the template): "
        f"rename the variable in the template, e.g. {{{{{name}_}}}} with program({name}_=…)"
    )


__all__ = [
    "MODEL_NAMES",
    "OPTION_NAMES",
    "TEMPLATE_NAME",
    "RETIRED_NAMES",
    "RESERVED_NAMES",
    "ProgramArgumentError",
    "check_no_retired",
    "pick_model",
    "reserved_hint",
    "retired_message",
]
