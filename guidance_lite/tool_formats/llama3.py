"""Llama 3.1/3.2/3.3 JSON tool calls: ``{"name": …, "parameters": {…}}``, optionally after ``<|python_tag|>``.

Prompt side follows Meta's Llama 3.1 chat template with ``tools_in_user_message`` (its default): the tool
definitions (``json.dumps(tool, indent=4)``) and the answer-format instruction go in front of the first user message
(in the system message if there is no user message), assistant calls are rendered as their JSON (several joined by
``"; "``), and tool results go in ``ipython`` turns (render with the llama3 chat template).

Parsing: a call is JSON at the start of the output (leading whitespace allowed) whose first key is ``name`` (or
``type``/``function``/the arguments), or JSON after ``<|python_tag|>`` anywhere; parallel calls may be separated by
``;``, ``,``, whitespace, nothing or each by its own ``<|python_tag|>``. ``arguments`` is accepted as well as
``parameters``. Output starting with other JSON is plain text. When the offered tools are known (as the backends
pass them), a JSON object after prose is a call if it names an offered tool (a non-call object stays text), and after
``<|python_tag|>`` the built-in syntax ``name.call(arg=<json>, …)`` is a call to ``name`` and raw code is a call to
the offered ``python`` (else ``code_interpreter``) tool with ``{"code": …}``; without them those stay text.
"""

from __future__ import annotations

import json
from typing import Optional

from ..constraints import GrammarBuilder, separated_calls
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value
from .json_reader import WHITESPACE, Malformed, Reader, expect_char, read_json_value, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_call_object

PYTHON_TAG = "<|python_tag|>"
CODE_TOOLS = ("python", "code_interpreter")  # raw code after <|python_tag|> calls the first of these that is offered
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
        # with the offered tools known, a JSON object in the middle of prose is a call when it names one of them
        triggers = (PYTHON_TAG, "{") if parser.offered is not None else (PYTHON_TAG,)
        ch = yield
        pending = ""
        while ch is not None and ch in WHITESPACE:
            pending += ch
            ch = yield
        if ch == "{":
            ch, pending = yield from self._call_sequence(parser, ch, parser.offset(1), pending)
        while True:
            trigger, lead = yield from parser.read_text(ch, triggers, pending)
            pending = ""
            if trigger is None:
                return
            if trigger == "{":  # read_text consumed it: it is the current character
                ch, pending = yield from self._call_sequence(parser, trigger, parser.offset(1), lead)
                continue
            start = parser.offset(len(trigger))
            ch = yield from skip_whitespace((yield))
            if ch == "{" or parser.offered is None:
                ch, pending = yield from self._call_sequence(parser, ch, start, lead, bare=False)
            else:
                ch = yield from self._builtin_call(parser, ch, start, lead)

    def _call_sequence(
        self, parser: ToolStreamParser, ch: Optional[str], start: int, lead: str, bare: bool = True
    ) -> Reader:
        """Calls in a row from ``ch`` on, separated by ``;``, ``,``, whitespace or nothing. Returns the first character
        after them and the separator text read after the last call (text again, since no call followed it)."""
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
                    return None, ""
                return (yield), ""
            ch = yield from parser.after_call(ch)
            gap = ""
            while ch is not None and ch in WHITESPACE:
                gap += ch
                ch = yield
            if ch in (";", ","):
                gap += ch
                ch = yield
                while ch is not None and ch in WHITESPACE:
                    gap += ch
                    ch = yield
            if ch != "{":
                return ch, gap
            start, lead, bare = parser.offset(1), gap, True

    @staticmethod
    def _builtin_call(parser: ToolStreamParser, ch: Optional[str], start: int, lead: str) -> Reader:
        """After ``<|python_tag|>``: a built-in call ``name.call(arg=<json>, …)``, else raw code for the offered
        ``python`` (or ``code_interpreter``) tool. Returns the character after it."""
        parser.begin_attempt(start, lead)
        code_start = parser.offset(1)
        try:
            if ch is None:
                raise Malformed(f"nothing after {PYTHON_TAG}")
            name, ch = yield from _identifier(ch)
            ch = yield from skip_whitespace(ch)
            if name and ch == ".":
                ch = yield from skip_whitespace((yield))
                method, ch = yield from _identifier(ch)
                ch = yield from skip_whitespace(ch)
                if method == "call" and ch == "(":
                    call = parser.new_call()
                    call.set_name(name)
                    arguments, ch = yield from _call_arguments((yield))
                    call.set_arguments_value(arguments)
                    parser.complete(call)
                    parser.end_attempt()
                    return (yield from parser.after_call(ch))
            while ch is not None:  # raw code: the rest of the output
                ch = yield
            code = parser.consumed_since(code_start, lookahead=False).strip(WHITESPACE)
            call = parser.new_call()
            call.set_name(next((tool for tool in CODE_TOOLS if parser.accepts(tool)), CODE_TOOLS[-1]))
            call.set_arguments_value({"code": code})
            parser.complete(call)
            parser.end_attempt()
            return None
        except Malformed as error:
            parser.give_back(error)
            if parser.at_end:
                return None
            return (yield)


def _identifier(ch: Optional[str]) -> Reader:
    """A Python identifier from ``ch`` on (possibly empty); returns (identifier, next character)."""
    name = ""
    while ch is not None and (ch.isalnum() or ch == "_") and len(name) < 64:
        name += ch
        ch = yield
    return name, ch


def _call_arguments(ch: Optional[str]) -> Reader:
    """``arg=<json>, …)`` of a built-in call, from just after ``(``; returns (arguments, next character)."""
    arguments: dict = {}
    ch = yield from skip_whitespace(ch)
    while ch != ")":
        key, ch = yield from _identifier(ch)
        if not key:
            raise Malformed(f"expected an argument name in a built-in tool call, found {ch!r}")
        ch = yield from skip_whitespace(ch)
        ch = yield from expect_char(ch, "=", "after an argument name in a built-in tool call")
        ch = yield from skip_whitespace(ch)
        arguments[key], ch = yield from read_json_value(ch)
        ch = yield from skip_whitespace(ch)
        if ch == ",":
            ch = yield from skip_whitespace((yield))
        elif ch != ")":
            raise Malformed(f"expected ',' or ')' in a built-in tool call, found {ch!r}")
    return arguments, (yield)
