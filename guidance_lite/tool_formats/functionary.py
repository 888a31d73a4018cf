"""Functionary v3.2 tool calls: ``>>>name\\n{…}`` per call, ``>>>all\\ntext`` for text meant for the user.

Prompt side follows MeetKai's v3.2 (Llama 3 based) template: a first system message explaining the ``>>>recipient``
protocol and listing the tools as a TypeScript ``namespace functions``, then the conversation; assistant turns as
``>>>all\\n{text}`` followed by ``>>>{name}\\n{arguments}`` per call, tool results in ``tool`` turns (render with the
llama3 chat template).

Parsing: segments start with ``>>>``; the very first segment may lack it (the real template ends the generation prompt
with ``>>>``): output starting with ``all\\n`` is text, output starting with ``name\\n{`` is a call. Text without any
``>>>`` is plain text. Raw code for the ``python`` tool (not JSON, up to the next ``>>>``) is a call with
``{"code": …}`` when the offered tools are known and include ``python`` (as llama.cpp reads it); otherwise it stays
text (with a warning).
"""

from __future__ import annotations

import json
from typing import Any, Optional, TypeGuard

from ..constraints import ROOT, GrammarBuilder, separated_calls
from ..tools import ToolChoice, ToolSpec
from .base import ToolFormat
from .history import HistoryItem, arguments_value
from .json_reader import WHITESPACE, Malformed, Reader, skip_whitespace
from .registry import register_tool_format
from .stream_parser import ToolStreamParser, read_named_call

MARKER = ">>>"
CODE_TOOL = "python"  # functionary writes raw code (not JSON) to a tool of this name
PROTOCOL = (
    "You are capable of executing available function(s) if required.\n"
    "Only execute function(s) when absolutely necessary.\n"
    "Ask for the required input to:recipient==all\n"
    "Use JSON for function arguments.\n"
    "Respond in this format:\n"
    ">>>${recipient}\n"
    "${content}\n"
    "Available functions:\n"
)


def typescript_type(schema: Any) -> str:
    """A JSON schema as the TypeScript type functionary was trained to read."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"]) or "never"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(typescript_type(s) for s in schema[key]) or "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(typescript_type({**schema, "type": k}) for k in kind) or "any"
    if kind == "string":
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        item = typescript_type(schema.get("items", {}))
        return f"({item})[]" if "|" in item else f"{item}[]"
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if not properties:
            return "object"
        return "{\n" + _typescript_members(properties, schema.get("required") or []) + "}"
    return "any"


def _typescript_members(properties: dict, required: list) -> str:
    lines = []
    for name, prop in properties.items():
        if isinstance(prop, dict) and prop.get("description"):
            lines.append(f"// {prop['description']}\n")
        optional = "" if name in required else "?"
        lines.append(f"{name}{optional}: {typescript_type(prop)},\n")
    return "".join(lines)


def typescript_namespace(tools: list[ToolSpec]) -> str:
    parts = ["// Supported function definitions that should be called when necessary.\nnamespace functions {\n\n"]
    for tool in tools:
        if tool.description:
            parts.append(f"// {tool.description}\n")
        properties = tool.parameters.get("properties") or {}
        if properties:
            members = _typescript_members(properties, tool.parameters.get("required") or [])
            parts.append(f"type {tool.name} = (_: {{\n{members}}}) => any;\n\n")
        else:
            parts.append(f"type {tool.name} = () => any;\n\n")
    parts.append("} // namespace functions")
    return "".join(parts)


def _is_name_char(ch: Optional[str]) -> TypeGuard[str]:
    return ch is not None and (ch.isalnum() or ch == "_")


@register_tool_format
class FunctionaryV32Format(ToolFormat):
    name = "functionary_v3_2"
    trigger = MARKER
    value_markers = (MARKER,)
    template_telltales = (MARKER,)
    model_names = "functionary"
    detection_priority = 30
    # text for the user follows ">>>all\n"; once it starts, the rest of the reply is free
    text_answer_grammar = f'{ROOT} ::= ">>>all\\n" [^\\x00]*'

    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        out: list[dict] = []
        if tools:
            system = PROTOCOL + typescript_namespace(tools)
            instruction = self.choice_instruction(choice)
            if instruction:
                system += "\n\n" + instruction
            out.append({"role": "system", "content": system})
        for item in history:
            if item.role == "assistant":
                content = f"{MARKER}all\n{self.escape(item.text)}" if item.text else ""
                for call in item.calls:
                    args = json.dumps(arguments_value(call), ensure_ascii=False)
                    content += f"{MARKER}{call.name}\n{self.escape(args)}"
                out.append({"role": "assistant", "content": content})
            else:  # values outside assistant turns can't forge an assistant call: left as they are
                out.append({"role": item.role, "content": item.text})
        return out

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        return MARKER if tool_name is None else f"{MARKER}{tool_name}\n"

    def call_grammar_suffix(self) -> str:
        return ""

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> str:
        return separated_calls(one, "\n")

    def read_output(self, parser: ToolStreamParser) -> Reader:
        ch = yield
        pending = ""
        word = ""
        marker_read = False  # a segment ended at the next ">>>" (raw code): its recipient comes next
        while _is_name_char(ch):
            word += ch
            ch = yield
        if word and ch == "\n":
            if word == "all":
                ch = yield
            else:
                gap = "\n"
                ch = yield
                while ch is not None and ch in WHITESPACE:
                    gap += ch
                    ch = yield
                if ch == "{" or _takes_code(parser, word, ch):
                    ch, marker_read = yield from self._call(parser, ch, word, 0)
                else:
                    pending = word + gap
        else:
            pending = word
        while True:
            if marker_read:
                trigger, lead = MARKER, ""
            else:
                trigger, lead = yield from parser.read_text(ch, (MARKER,), pending)
                pending = ""
            if trigger is None:
                return
            parser.begin_attempt(parser.offset(len(trigger)), lead)
            try:
                name = ""
                ch = yield
                while _is_name_char(ch):
                    name += ch
                    ch = yield
                if not name:
                    raise Malformed(f"expected a recipient name after {MARKER}")
                ch = yield from _expect_newline(ch)
            except Malformed as error:
                parser.give_back(error)
                marker_read = False
                if parser.at_end:
                    return
                ch = yield
                continue
            if name == "all":
                parser.end_attempt()
                marker_read = False
                continue
            ch = yield from skip_whitespace(ch)
            ch, marker_read = yield from self._call(parser, ch, name, None)

    @staticmethod
    def _call(parser: ToolStreamParser, ch: Optional[str], name: str, start: Optional[int]) -> Reader:
        """The call to ``name`` from ``ch`` on: JSON arguments, or raw code for an offered ``python`` tool (which runs
        to the next ``>>>`` or the end). Returns (the next character, whether a ``>>>`` ending the code was read)."""
        if start is not None:
            parser.begin_attempt(start)
        try:
            if _takes_code(parser, name, ch):
                return (yield from _code_call(parser, ch, name))
            call, ch = yield from read_named_call(parser, ch, name, MARKER + name)
            parser.complete(call)
            parser.end_attempt()
        except Malformed as error:
            parser.give_back(error)
            if parser.at_end:
                return None, False
            return (yield), False
        return (yield from parser.after_call(ch)), False


def _takes_code(parser: ToolStreamParser, name: str, ch: Optional[str]) -> bool:
    """Whether the segment is raw code: for the offered ``python`` tool, arguments that are not a JSON object."""
    return name == CODE_TOOL and ch != "{" and parser.offered is not None and parser.accepts(name)


def _code_call(parser: ToolStreamParser, ch: Optional[str], name: str) -> Reader:
    """Raw code up to the next ``>>>`` (consumed) or the end, as a call with ``{"code": …}``."""
    code = ""
    while ch is not None:
        code += ch
        if code.endswith(MARKER):
            code = code[: -len(MARKER)]
            break
        ch = yield
    code = code.strip(WHITESPACE)
    if not code:
        raise Malformed(f"no code after {MARKER}{name}")
    call = parser.new_call()
    call.set_name(name)
    call.set_arguments_value({"code": code})
    parser.complete(call)
    parser.end_attempt()
    return None, ch is not None


def _expect_newline(ch: Optional[str]) -> Reader:
    if ch != "\n":
        raise Malformed(f"expected a newline after the recipient name, found {ch!r}")
    return (yield)
