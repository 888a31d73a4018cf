"""Hermes 2 Pro / Qwen2.5 tool calls: ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``.

Prompt side follows the Qwen2.5 chat template (the current form of the Hermes convention): tool signatures in the
system prompt inside ``<tools></tools>``, assistant calls as ``<tool_call>`` blocks after the text, and tool results as
``<tool_response>`` blocks in one user turn per run of consecutive results (in call order).
Several ``<tool_call>`` blocks in a row are parallel calls. A missing ``</tool_call>`` at the very end is tolerated.

The forms Hermes-style models drift to are read as llama.cpp reads them: ``<function=name>{…}</function>`` and
``<function name="name">{…}</function>`` anywhere; other wrapper tags (``<function_call>``, ``<tool>``, ``<tools>``,
``<response>``, ``<json>``, ``<xml>``, ``<JSON>``), a ```` ``` ````/```` ```json ````/```` ```xml ```` fence and a bare
``{"name", "arguments"}`` object when they open the reply and the offered tools are known. A fenced block in the
middle of prose is an example, not a call; a bare object after prose is text (that is the Llama 3 habit).
"""

from __future__ import annotations

import json
from typing import Optional

from ..constraints import GrammarBuilder, separated_calls
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value
from .json_reader import WHITESPACE, Malformed, NotACall, Reader, expect_char, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_call_object, read_named_call

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
OPEN, CLOSE = "<tool_call>", "</tool_call>"
OPEN_TAG = "tool_call"
FUNCTION_EQUALS = "<function="  # the Llama 3.1 / functionary drift form, counted anywhere
FUNCTION_NAME_ATTRIBUTE = '<function name="'
FUNCTION_CLOSE = "</function>"
FENCE = "```"
FENCE_LANGUAGES = ("", "json", "xml")
# tags that wrap a call object when they open the reply (llama.cpp's Hermes 2 Pro parser accepts the same)
WRAPPER_TAGS = (OPEN_TAG, "function_call", "tool", "tools", "response", "json", "xml", "JSON")
MID_TEXT_TRIGGERS = (OPEN, FUNCTION_EQUALS, FUNCTION_NAME_ATTRIBUTE, FENCE)


@register_tool_format
class HermesFormat(ToolFormat):
    name = "hermes"
    trigger = OPEN
    value_markers = (OPEN, CLOSE, "<tool_response>", "</tool_response>", "<tools>", "</tools>")
    chat_templates = ("chatml",)
    template_telltales = (OPEN,)
    model_names = "hermes|qwen"
    detection_priority = 10

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        system_texts = [self.escape(item.text) for item in history if item.role == "system"]
        if tools:
            section = (
                TOOLS_PREAMBLE
                + "".join("\n" + self.escape(json.dumps(t.definition, ensure_ascii=False)) for t in tools)
                + TOOLS_POSTAMBLE
            )
            instruction = self.choice_instruction(choice)
            if instruction:
                section += "\n\n" + instruction
            system_texts.append(section)
        if system_texts:
            out.append({"role": "system", "content": "\n\n".join(system_texts)})
        for item in history:
            if item.role == "system":
                continue
            if item.role == "tool":
                block = f"<tool_response>\n{self.escape(item.text)}\n</tool_response>"
                if out and out[-1].get("_tool_results"):
                    out[-1]["content"] += "\n" + block
                else:
                    out.append({"role": "user", "content": block, "_tool_results": True})
                continue
            if item.role == "assistant" and item.calls:
                parts = [self.escape(item.text)] if item.text else []
                for call in item.calls:
                    body = json.dumps({"name": call.name, "arguments": arguments_value(call)}, ensure_ascii=False)
                    parts.append(f"{OPEN}\n{self.escape(body)}\n{CLOSE}")
                out.append({"role": "assistant", "content": "\n".join(parts)})
                continue
            out.append({"role": item.role, "content": self.escape(item.text)})
        for message in out:
            message.pop("_tool_results", None)
        return out

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        if tool_name is None:
            return OPEN + '\n{"name": "'
        return OPEN + "\n" + '{"name": ' + json.dumps(tool_name, ensure_ascii=False) + ', "arguments": '

    def call_grammar_suffix(self) -> str:
        return "}\n" + CLOSE

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        return separated_calls(one, "\n")

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        pending = ""
        while ch is not None and ch in WHITESPACE:
            pending += ch
            ch = yield
        if parser.offered is not None and ch is not None and ch in "`<{":
            ch = yield from self._opening(parser, ch, pending)
            pending = ""
        while True:
            trigger, lead = yield from parser.read_text(ch, MID_TEXT_TRIGGERS, pending)
            pending = ""
            if trigger is None:
                return
            if trigger == FENCE:  # a fenced block in prose is an example, not a call
                ch = yield from self._rest_of_fence(parser, (yield), lead + FENCE)
                continue
            parser.begin_attempt(parser.offset(len(trigger)), lead)
            try:
                if trigger == OPEN:
                    ch = yield from skip_whitespace((yield))
                    ch = yield from self._call_object(parser, ch, OPEN_TAG, first_key_decides=False)
                else:
                    ch = yield from self._function_tag(parser, (yield), trigger)
                parser.end_attempt()
                ch = yield from parser.after_call(ch)
            except Malformed as error:
                parser.give_back(error)
                if parser.at_end:
                    return
                ch = yield

    def _opening(self, parser: ToolStreamParser, ch: Optional[str], lead: str) -> Reader:
        """The drift forms that count only when they open the reply: a ```/```json/```xml fence, a wrapper tag
        (``<tool>``, ``<response>``, ``<json>`` …) or a bare ``{"name", "arguments"}`` object. Returns the character
        after them (or after the failed attempt, which is given back as text)."""
        parser.begin_attempt(parser.offset(1), lead)
        fenced = False
        try:
            if ch == "`":
                ch = yield from _fence_opening(ch)
                fenced = True
                ch = yield from skip_whitespace(ch)
            while True:
                if ch == "{":
                    call = parser.new_call()
                    ch = yield from read_call_object(ch, call, first_key_decides=True)
                    parser.complete(call)
                elif ch == "<":
                    ch = yield from self._opening_tag(parser, (yield))
                else:
                    raise NotACall(f"the reply opens with {ch!r}, not a tool call")
                ch = yield from skip_whitespace(ch)
                if not fenced or ch not in ("{", "<"):
                    break
            if fenced:
                for wanted in FENCE:  # the closing fence; the output may end early
                    if ch is None:
                        break
                    ch = yield from expect_char(ch, wanted, "closing the ``` fence after the call")
            parser.end_attempt()
            return (yield from parser.after_call(ch))
        except Malformed as error:
            parser.give_back(error)
            if parser.at_end:
                return None
            ch = yield
            if fenced:  # the fence was given back as text: the rest of it is text too
                ch = yield from self._rest_of_fence(parser, ch, "")
            return ch

    def _opening_tag(self, parser: ToolStreamParser, ch: Optional[str]) -> Reader:
        """After ``<`` at the start of the reply: ``<tool_call>`` or another wrapper tag around a call object, or
        ``<function=name>`` / ``<function name="name">``."""
        tag = ""
        while ch is not None and (ch.isalnum() or ch == "_") and len(tag) < 20:
            tag += ch
            ch = yield
        if tag == "function" and ch == "=":
            return (yield from self._function_tag(parser, (yield), FUNCTION_EQUALS))
        if tag == "function" and ch == " ":
            ch = yield
            for wanted in FUNCTION_NAME_ATTRIBUTE[len("<function ") :]:
                ch = yield from expect_char(ch, wanted, "in <function name=…>")
            return (yield from self._function_tag(parser, ch, FUNCTION_NAME_ATTRIBUTE))
        if ch != ">" or tag not in WRAPPER_TAGS:
            raise NotACall(f"<{tag} is not a tool-call tag")
        ch = yield from skip_whitespace((yield))
        return (yield from self._call_object(parser, ch, tag, first_key_decides=tag != OPEN_TAG))

    @staticmethod
    def _call_object(parser: ToolStreamParser, ch: Optional[str], tag: str, *, first_key_decides: bool) -> Reader:
        """A call object and the closing ``</tag>`` (which the output may end before, e.g. cut by a stop string)."""
        call = parser.new_call()
        ch = yield from read_call_object(ch, call, first_key_decides=first_key_decides)
        ch = yield from skip_whitespace(ch)
        ch = yield from _closing_tag(ch, f"</{tag}>")
        parser.complete(call)
        return ch

    @staticmethod
    def _function_tag(parser: ToolStreamParser, ch: Optional[str], opening: str) -> Reader:
        """``<function=name>{…}</function>`` or ``<function name="name">{…}</function>`` from the name on."""
        end = ">" if opening == FUNCTION_EQUALS else '"'
        name = ""
        while ch is not None and ch != end and ch not in WHITESPACE and len(name) < 64:
            name += ch
            ch = yield
        ch = yield from expect_char(ch, end, f"after the function name in {opening}…")
        if end == '"':
            ch = yield from expect_char(ch, ">", f"closing {opening}…")
        ch = yield from skip_whitespace(ch)
        written = opening + name + (">" if end == ">" else '">')
        call, ch = yield from read_named_call(parser, ch, name, written)
        ch = yield from skip_whitespace(ch)
        ch = yield from _closing_tag(ch, FUNCTION_CLOSE)
        parser.complete(call)
        return ch

    @staticmethod
    def _rest_of_fence(parser: ToolStreamParser, ch: Optional[str], opened: str) -> Reader:
        """Text inside a fenced block (an example, or a failed fenced call) up to and including the closing fence."""
        parser.emit_text(opened)
        trigger, lead = yield from parser.read_text(ch, (FENCE,))
        if trigger is None:
            return None
        parser.emit_text(lead + FENCE)
        return (yield)


def _fence_opening(ch: Optional[str]) -> Reader:
    """```, ```json or ```xml and the newline after it; anything else is not a fenced call."""
    fence = ""
    while ch == "`" and len(fence) < len(FENCE):
        fence += ch
        ch = yield
    info = ""
    while fence == FENCE and ch is not None and ch.isalnum() and len(info) < 10:
        info += ch
        ch = yield
    if fence != FENCE or info.lower() not in FENCE_LANGUAGES or ch != "\n":
        raise NotACall("not a ```json / ```xml fence around a call")
    return (yield)


def _closing_tag(ch: Optional[str], closing: str) -> Reader:
    """Consume ``closing``; the output may end before it (a stop string, the end of the token budget)."""
    for wanted in closing:
        if ch is None:
            break
        if ch != wanted:
            raise Malformed(f"expected {closing} after the call, found {ch!r}")
        ch = yield
    return ch
