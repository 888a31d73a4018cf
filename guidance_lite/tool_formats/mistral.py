"""Mistral tool calls: ``[TOOL_CALLS][{"name": …, "arguments": {…}, "id"?: "abc123XYZ"}, …]``.

Prompt side: Mistral's control tokens (``[AVAILABLE_TOOLS]``, ``[TOOL_CALLS]``, ``[TOOL_RESULTS]``) must come from the
template, never from content (the chat templates neutralise them inside content). So ``prepare_messages`` returns
them as special roles that the ``mistral`` chat template (``guidance_lite.chat_templates``) renders, following the
Mistral 7B v0.3 / Large 2 template:

- ``{"role": "available_tools", "content": <JSON list of tools>}`` just before the last user message
  -> ``[AVAILABLE_TOOLS] […][/AVAILABLE_TOOLS]``
- ``{"role": "tool_calls", "content": <JSON list of {name, arguments, id}>}`` -> ``[TOOL_CALLS] […]</s>``
- ``{"role": "tool_results", "content": <JSON {"content": …, "call_id": …}>}`` -> ``[TOOL_RESULTS] {…}[/TOOL_RESULTS]``

Mistral call ids are 9 alphanumerics: ids from elsewhere (``call_…``) are mapped to such ids deterministically (same
id in the call and its result), and parsed calls get fresh 9-character ids (an ``id`` the model writes is read but not
used: a call's id must be known when its first delta streams).
Parsing also accepts a single object instead of the list, the v11 tokenizer's ``[TOOL_CALLS]name{…}`` and the newer
``[TOOL_CALLS]name[ARGS]{…}``, with text before the marker (kept as content) and several markers in a row.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from typing import Optional

from ..constraints import GrammarBuilder, json_call_objects
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value, result_value
from .json_reader import Malformed, Reader, expect_char, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_call_object, read_named_call

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
_ALPHANUMERIC = string.ascii_letters + string.digits
_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}\Z")


def mistral_call_id(call_id: Optional[str] = None) -> str:
    """A 9-alphanumeric id: ``call_id`` itself if it already is one, a stable digest of it otherwise, or random."""
    if call_id is None:
        return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))
    if _MISTRAL_ID.match(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode("utf-8")).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHANUMERIC))
        chars.append(_ALPHANUMERIC[digit])
    return "".join(chars)


@register_tool_format
class MistralFormat(ToolFormat):
    name = "mistral"
    trigger = TOOL_CALLS
    value_markers = (TOOL_CALLS, "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", ARGS)
    chat_templates = ("mistral",)
    template_telltales = (TOOL_CALLS,)
    model_names = "mistral|mixtral|ministral|codestral"
    detection_priority = 20

    def new_id(self) -> str:
        return mistral_call_id()

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        for item in history:
            if item.role == "tool":
                body = {"content": result_value(item.text), "call_id": mistral_call_id(item.call_id)}
                out.append({"role": "tool_results", "content": self.escape(json.dumps(body, ensure_ascii=False))})
            elif item.role == "assistant" and item.calls:
                if item.text:
                    out.append({"role": "assistant", "content": self.escape(item.text)})
                calls = [
                    {"name": c.name, "arguments": arguments_value(c), "id": mistral_call_id(c.id)} for c in item.calls
                ]
                out.append({"role": "tool_calls", "content": self.escape(json.dumps(calls, ensure_ascii=False))})
            else:
                out.append({"role": item.role, "content": self.escape(item.text)})
        instruction = self.choice_instruction(choice) if tools else ""
        if instruction:
            system = next((m for m in out if m["role"] == "system"), None)
            if system is not None:
                system["content"] += "\n\n" + instruction
            else:
                out.insert(0, {"role": "system", "content": instruction})
        if tools:
            listing = {
                "role": "available_tools",
                "content": self.escape(json.dumps([t.definition for t in tools], ensure_ascii=False)),
            }
            last_user = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
            out.insert(len(out) if last_user is None else last_user, listing)
        return out

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        if tool_name is None:
            return TOOL_CALLS + '[{"name": "'
        return TOOL_CALLS + '[{"name": ' + json.dumps(tool_name, ensure_ascii=False) + ', "arguments": '

    def call_grammar_suffix(self) -> str:
        return "}]"

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        call = json_call_objects(builder, tools, "arguments")
        return f'"[TOOL_CALLS][" {call} ( ", " {call} )* "]"'

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        while True:
            trigger, lead = yield from parser.read_text(ch, (TOOL_CALLS,))
            if trigger is None:
                return
            parser.begin_attempt(parser.offset(len(trigger)), lead)
            try:
                ch = yield from skip_whitespace((yield))
                if ch == "[":
                    ch = yield from skip_whitespace((yield))
                    while True:
                        call = parser.new_call()
                        ch = yield from read_call_object(ch, call)
                        parser.complete(call)
                        ch = yield from skip_whitespace(ch)
                        if ch == "]":
                            ch = yield
                            break
                        ch = yield from expect_char(ch, ",", "or ']' after a call in [TOOL_CALLS]")
                        ch = yield from skip_whitespace(ch)
                elif ch == "{":
                    call = parser.new_call()
                    ch = yield from read_call_object(ch, call)
                    parser.complete(call)
                else:
                    ch = yield from self._named_call(parser, ch)
                parser.end_attempt()
                ch = yield from parser.after_call(ch)
            except Malformed as error:
                parser.give_back(error)
                if parser.at_end:
                    return
                ch = yield

    @staticmethod
    def _named_call(parser: ToolStreamParser, ch: Optional[str]) -> Reader:
        """``name{…}`` (the v11 tokenizer, Mistral Small 3.1) or ``name[ARGS]{…}`` (Mistral Small 3.2 and later)."""
        name = ""
        while ch is not None and (ch.isalnum() or ch in "_-.") and len(name) < 64:
            name += ch
            ch = yield
        if not name:
            raise Malformed(f"expected '[', '{{' or a function name after {TOOL_CALLS}")
        if ch == "[":
            for wanted in ARGS:
                ch = yield from expect_char(ch, wanted, f"after the function name in {TOOL_CALLS}")
            ch = yield from skip_whitespace(ch)
        call, ch = yield from read_named_call(parser, ch, name, TOOL_CALLS + name)
        parser.complete(call)
        return ch
