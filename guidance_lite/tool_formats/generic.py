"""Generic JSON protocol, for models with no tool-call format of their own (like llama.cpp's generic handler).

The system prompt explains it: the whole reply is one JSON object, either
``{"tool_call": {"name": …, "arguments": {…}}}``, ``{"tool_calls": [{"name": …, "arguments": {…}}, …]}`` (parallel) or
``{"response": "text"}``. The ``response`` string streams as text while it is generated. A reply wrapped in a
```` ```json ```` fence is accepted; a reply that is not JSON at all is kept as plain text (with a warning). Past
assistant turns are rendered in the same protocol; tool results go in a user turn as
``{"tool_response": {"id": …, "name": …, "content": …}}`` lines.
"""

from __future__ import annotations

import json
from typing import Optional

from ..constraints import JSON_STRING, ROOT, GrammarBuilder, json_call_objects
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value, result_value
from .json_reader import WHITESPACE, Malformed, Reader, expect_char, read_json_string, read_json_value, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, logger, read_call_object

FENCE = "```"
PROTOCOL = (
    "You can call tools. Reply with exactly one JSON object and nothing else, in one of these shapes:\n"
    '- to call one tool: {"tool_call": {"name": "<tool name>", "arguments": {<arguments>}}}\n'
    '- to call several tools at once: {"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}, '
    "...]}\n"
    '- to answer in text: {"response": "<your answer>"}\n'
    'Tool results come back in a user message as {"tool_response": {...}} lines.\n\n'
    "Available tools:\n"
)


@register_tool_format
class GenericJsonFormat(ToolFormat):
    name = "generic_json"
    trigger = None  # the whole reply is the protocol: constrain it from the start
    value_markers = ()
    chat_templates = ("gemma",)  # the fallback for templates that imply no format of their own
    text_answer_grammar = f'{ROOT} ::= "{{\\"response\\": " gl-json-string "}}"\ngl-json-string ::= {JSON_STRING}'

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        system_texts = [item.text for item in history if item.role == "system"]
        if tools:
            section = PROTOCOL + json.dumps([t.definition for t in tools], indent=2, ensure_ascii=False)
            instruction = self.choice_instruction(choice)
            if instruction:
                section += "\n\n" + instruction
            system_texts.append(section)
        if system_texts:
            out.append({"role": "system", "content": "\n\n".join(system_texts)})
        uses_protocol = bool(tools) or any(item.calls or item.role == "tool" for item in history)
        for item in history:
            if item.role == "system":
                continue
            if item.role == "tool":
                line = json.dumps(
                    {"tool_response": {"id": item.call_id, "name": item.name, "content": result_value(item.text)}},
                    ensure_ascii=False,
                )
                if out and out[-1].get("_tool_results"):
                    out[-1]["content"] += "\n" + line
                else:
                    out.append({"role": "user", "content": line, "_tool_results": True})
            elif item.role == "assistant" and uses_protocol:
                out.append({"role": "assistant", "content": self._assistant_json(item)})
            else:
                out.append({"role": item.role, "content": item.text})
        for message in out:
            message.pop("_tool_results", None)
        return out

    @staticmethod
    def _assistant_json(item: HistoryItem) -> str:
        calls = [{"name": c.name, "arguments": arguments_value(c), "id": c.id} for c in item.calls]
        if len(calls) > 1:
            body: dict = {"tool_calls": calls}
        elif calls:
            body = {"tool_call": calls[0]}
        else:
            body = {"response": item.text}
        return json.dumps(body, ensure_ascii=False)

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        if tool_name is None:
            return '{"tool_call": {"name": "'
        return '{"tool_call": {"name": ' + json.dumps(tool_name, ensure_ascii=False) + ', "arguments": '

    def call_grammar_suffix(self) -> str:
        return "}}"

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        call = json_call_objects(builder, tools, "arguments")
        return f'{one} | "{{\\"tool_calls\\": [" {call} ( ", " {call} )* "]}}"'

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        lead = ""
        while ch is not None and ch in WHITESPACE:
            lead += ch
            ch = yield
        begin = parser.offset(0 if ch is None else 1)  # where the reply proper (fence or object) starts
        fenced = False
        if ch == "`":
            fence = info = ""
            while ch == "`" and len(fence) < len(FENCE):
                fence += ch
                ch = yield
            while fence == FENCE and ch is not None and ch.isalnum() and len(info) < 10:
                info += ch
                ch = yield
            if fence == FENCE and ch == "\n":
                fenced = True
                ch = yield from skip_whitespace((yield))
        if ch != "{":
            if ch is not None or parser.consumed_since(begin, lookahead=False):
                logger.warning("%s: the reply is not a JSON object of the tool protocol; keeping it as text", self.name)
            yield from parser.read_text(ch, (), lead + parser.consumed_since(begin, lookahead=ch is not None))
            return
        parser.begin_attempt(begin, lead)
        try:
            ch = yield from self._reply_object(parser, ch)
            ch = yield from skip_whitespace(ch)
            if fenced and ch == "`":
                for wanted in FENCE:
                    ch = yield from expect_char(ch, wanted, "closing the ``` fence")
                ch = yield from skip_whitespace(ch)
            parser.end_attempt()
        except Malformed as error:
            parser.give_back(error)
            if parser.at_end:
                return
            ch = yield
        yield from parser.read_text(ch, ())

    @staticmethod
    def _reply_object(parser: ToolStreamParser, ch: Optional[str]) -> Reader:
        """``{"tool_call": …}`` / ``{"tool_calls": […]}`` / ``{"response": "…"}``; unknown keys are ignored."""
        ch = yield from skip_whitespace((yield))
        understood = False
        while ch != "}":
            if ch != '"':
                raise Malformed(f"expected a key in the reply object, found {ch!r}")
            key, ch = yield from read_json_string(ch)
            ch = yield from skip_whitespace(ch)
            ch = yield from expect_char(ch, ":", "after a key in the reply object")
            ch = yield from skip_whitespace(ch)
            if key == "tool_call" and ch == "{":
                call = parser.new_call()
                ch = yield from read_call_object(ch, call)
                parser.complete(call)
                understood = True
            elif key == "tool_calls" and ch == "[":
                ch = yield from skip_whitespace((yield))
                while ch != "]":
                    call = parser.new_call()
                    ch = yield from read_call_object(ch, call)
                    parser.complete(call)
                    ch = yield from skip_whitespace(ch)
                    if ch == ",":
                        ch = yield from skip_whitespace((yield))
                    elif ch != "]":
                        raise Malformed(f"expected ',' or ']' in tool_calls, found {ch!r}")
                ch = yield
                understood = True
            elif key == "response" and ch == '"':
                _, ch = yield from read_json_string(ch, parser.emit_text)
                understood = True
            else:
                _, ch = yield from read_json_value(ch)
            ch = yield from skip_whitespace(ch)
            if ch == ",":
                ch = yield from skip_whitespace((yield))
            elif ch != "}":
                raise Malformed(f"expected ',' or '}}' in the reply object, found {ch!r}")
        if not understood:
            raise Malformed('the reply object has none of "tool_call", "tool_calls", "response"')
        return (yield)
