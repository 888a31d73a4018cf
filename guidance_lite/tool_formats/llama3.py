"""Llama 3.1/3.2/3.3 JSON tool calls: ``{"name": …, "parameters": {…}}``, optionally after ``<|python_tag|>``.

Prompt side follows Meta's Llama 3.1 chat template with ``tools_in_user_message`` (its default): the tool
definitions (``json.dumps(tool, indent=4)``) and the answer-format instruction go in front of the first user message
(in the system message if there is no user message), assistant calls are rendered as their JSON (several joined by
``"; "``), and tool results go in ``ipython`` turns (render with the llama3 chat template).

Parsing: a call is JSON at the start of the output (leading whitespace allowed) whose first key is ``name`` (or
``type``/``function``), or JSON after ``<|python_tag|>`` anywhere; several calls separated by ``;`` are parallel calls.
``arguments`` is accepted as well as ``parameters``. Output starting with other JSON is plain text.
Built-in tool syntax (``<|python_tag|>brave_search.call(...)``) is not a JSON call and stays text (with a warning).
"""

from __future__ import annotations

import json
from typing import Optional

from ..constraints import GrammarBuilder, separated_calls
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value
from .json_reader import WHITESPACE, Malformed, Reader, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_call_object

PYTHON_TAG = "<|python_tag|>"
TOOLS_INTRO = (
    "Given the following functions, please respond with a JSON for a function call with its proper "
    "arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its '
    "value}.Do not use variables.\n\n"
)


@register_tool_format
class Llama3JsonFormat(ToolFormat):
    name = "llama3_json"
    trigger = '{"name"'
    value_markers = (PYTHON_TAG,)
    chat_templates = ("llama3",)
    template_telltales = (PYTHON_TAG, "ipython")
    model_names = r"llama[-_ ]?3"
    detection_priority = 40
    extra_triggers = (PYTHON_TAG,)
    mid_text_prefix = PYTHON_TAG  # bare JSON is a call only at the start of the reply

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        for item in history:
            if item.role == "tool":
                out.append({"role": "ipython", "content": self.escape(item.text)})
            elif item.role == "assistant" and item.calls:
                calls = "; ".join(
                    json.dumps({"name": c.name, "parameters": arguments_value(c)}, ensure_ascii=False)
                    for c in item.calls
                )
                text = self.escape(item.text)
                out.append({"role": "assistant", "content": (text + "\n\n" if text else "") + self.escape(calls)})
            else:
                out.append({"role": item.role, "content": self.escape(item.text)})
        if tools:
            block = TOOLS_INTRO + "".join(
                self.escape(json.dumps(t.definition, indent=4, ensure_ascii=False)) + "\n\n" for t in tools
            )
            instruction = self.choice_instruction(choice)
            if instruction:
                block += instruction + "\n\n"
            first_user = next((m for m in out if m["role"] == "user"), None)
            if first_user is not None:
                first_user["content"] = block + first_user["content"]
            else:
                system = next((m for m in out if m["role"] == "system"), None)
                if system is not None:
                    system["content"] = system["content"] + "\n\n" + block.rstrip("\n")
                else:
                    out.insert(0, {"role": "system", "content": block.rstrip("\n")})
        return out

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        if tool_name is None:
            return '{"name": "'
        return '{"name": ' + json.dumps(tool_name, ensure_ascii=False) + ', "parameters": '

    def call_grammar_suffix(self) -> str:
        return "}"

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        return separated_calls(one, "; ")

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        lead = ""
        while ch is not None and ch in WHITESPACE:
            lead += ch
            ch = yield
        if ch == "{":
            ch = yield from self._call_sequence(parser, ch, parser.offset(1), lead, bare=True)
            lead = ""
        while True:
            trigger, before = yield from parser.read_text(ch, (PYTHON_TAG,), lead)
            lead = ""
            if trigger is None:
                return
            start = parser.offset(len(trigger))
            ch = yield from skip_whitespace((yield))
            ch = yield from self._call_sequence(parser, ch, start, before, bare=False)

    def _call_sequence(self, parser: ToolStreamParser, ch: Optional[str], start: int, lead: str, bare: bool) -> Reader:
        """Calls separated by ';' from ``ch`` on; returns the first character after them (or after a failure)."""
        while True:
            parser.begin_attempt(start, lead)
            try:
                call = parser.new_call()
                ch = yield from read_call_object(ch, call, first_key_decides=bare)
                parser.complete(call)
                parser.end_attempt()
            except Malformed as error:
                parser.give_back(error)
                if parser.at_end:
                    return None
                return (yield)
            ch = yield from skip_whitespace(ch)
            if ch != ";":
                return ch
            ch = yield from skip_whitespace((yield))
            if ch != "{":
                return ch
            start, lead, bare = parser.offset(1), "", True
