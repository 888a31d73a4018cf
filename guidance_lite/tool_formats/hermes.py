"""Hermes 2 Pro / Qwen2.5 tool calls: ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``.

Prompt side follows the Qwen2.5 chat template (the current form of the Hermes convention): tool signatures in the
system prompt inside ``<tools></tools>``, assistant calls as ``<tool_call>`` blocks after the text, and tool results as
``<tool_response>`` blocks in one user turn per run of consecutive results (in call order).
Several ``<tool_call>`` blocks in a row are parallel calls. A missing ``</tool_call>`` at the very end is tolerated.
"""

from __future__ import annotations

import json
from typing import Optional

from ..constraints import GrammarBuilder, separated_calls
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value
from .json_reader import Malformed, Reader, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_call_object

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
        while True:
            trigger, lead = yield from parser.read_text(ch, (OPEN,))
            if trigger is None:
                return
            parser.begin_attempt(parser.offset(len(trigger)), lead)
            try:
                ch = yield from skip_whitespace((yield))
                call = parser.new_call()
                ch = yield from read_call_object(ch, call)
                ch = yield from skip_whitespace(ch)
                for wanted in CLOSE:  # the closing tag; the output may end early (e.g. cut by a stop string)
                    if ch is None:
                        break
                    if ch != wanted:
                        raise Malformed(f"expected {CLOSE} after the call, found {ch!r}")
                    ch = yield
                parser.complete(call)
                parser.end_attempt()
                ch = yield from parser.after_call(ch)
            except Malformed as error:
                parser.give_back(error)
                if parser.at_end:
                    return
                ch = yield
