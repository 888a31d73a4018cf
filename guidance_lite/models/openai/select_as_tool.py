"""``select`` on a chat API: a forced call whose only argument is an enum of the options.

Why: servers that constrain tool arguments (OpenAI strict schemas, vLLM, llama.cpp) can then only produce an option.
The call is turned back into plain text (the interpreter matches it to an option); a server that ignores the forced
call answers in text, which passes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Union

from ..base import Choice, Completion, Delta

SELECT_TOOL = "select_option"


def select_params(options: list[str]) -> dict:
    """The request parameters that ask for one of ``options`` as a forced call."""
    return {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": SELECT_TOOL,
                    "description": "Answer by choosing exactly one of the options.",
                    "parameters": {
                        "type": "object",
                        "properties": {"option": {"type": "string", "enum": list(options)}},
                        "required": ["option"],
                        "additionalProperties": False,
                    },
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": SELECT_TOOL}},
    }


def option_from_call(choice: Choice) -> None:
    """Turn the forced select call back into plain text (the interpreter matches it to an option)."""
    for call in choice.tool_calls:
        if call.name == SELECT_TOOL:
            try:
                option = call.arguments.get("option")
            except ValueError:
                option = None
            if isinstance(option, str):
                choice.text = option
                break
    choice.tool_calls = []
    choice.finish_reason = "stop"


async def options_as_text(items: AsyncIterator[Union[Delta, Completion]]) -> AsyncIterator[Union[Delta, Completion]]:
    """The answer to a select request as text: the call's fragments are dropped, its option becomes the text."""
    async for item in items:
        if isinstance(item, Completion):
            for index, choice in enumerate(item.choices):
                option_from_call(choice)
                if choice.text:
                    yield Delta(text=choice.text, choice=index)
            yield item
        elif item.tool_index is None:  # a server that ignored the forced call answers in text
            yield item
