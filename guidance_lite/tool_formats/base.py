"""The interface of a client-side tool-call format: everything one model family's tool syntax needs, in one class.

Why client side: many open models run behind servers that only do text completion (or parse tool calls badly), so we
render tool definitions/calls/results into the prompt syntax the model family was trained on and parse calls back out
of the generated text ourselves.

A format is one file: a :class:`ToolFormat` subclass decorated with ``@register_tool_format`` (see ``registry``). Its
class says how to render a conversation (``render_history``), how to read an output (``read_output``, driven by
``stream_parser.ToolStreamParser``), how it is recognised (tell-tales in chat templates and model names), and what
constrained generation needs (call prefix/suffix, extra triggers, the GBNF of several calls and of a text answer);
``constraints``, the registry's detection and the backends read these attributes and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ..chat_templates import ZERO_WIDTH_SPACE, neutralize
from ..tools import ToolCall, ToolChoice, ToolSpec, new_call_id, resolve_tool_choice, tool_specs
from .history import HistoryItem, normalize_history
from .json_reader import Reader
from .stream_parser import ToolStreamParser

if TYPE_CHECKING:  # pragma: no cover
    from ..constraints import GrammarBuilder

__all__ = ["ToolFormat", "ZERO_WIDTH_SPACE"]


class ToolFormat(ABC):
    """One model family's tool-call syntax: prompt rendering, output parsing, detection and grammar pieces."""

    name: str = "base"
    trigger: Optional[str] = None  # text that starts a tool call in free text (None: the whole output is the protocol)
    value_markers: tuple[str, ...] = ()  # this format's markers, neutralised inside values rendered into prompts

    # ---- detection (registry.detect_tool_format) ----------------------------------------------------------------
    chat_templates: tuple[str, ...] = ()  # our hand-written chat templates that imply this format
    template_telltales: tuple[str, ...] = ()  # strings whose presence in a Jinja chat template gives the format away
    model_names: Optional[str] = None  # a regex searched in a lower-cased model name
    detection_priority: int = 100  # formats are tried in this order (lower first): more specific tell-tales first

    # ---- constrained generation (constraints.tool_call_grammar) -------------------------------------------------
    extra_triggers: tuple[str, ...] = ()  # more strings that start a call in free text, besides ``trigger``
    mid_text_prefix: str = ""  # what a call needs in front when text came before it in the reply
    text_answer_grammar: Optional[str] = None  # GBNF of a plain answer, for formats that wrap text answers too

    # ---- prompt side --------------------------------------------------------------------------------------------
    def prepare_messages(
        self, messages: list[dict], tools: Optional[Sequence[Any]], tool_choice: Any = None
    ) -> list[dict]:
        """OpenAI-format messages + offered tools -> plain ``{role, content}`` messages for a chat template.

        ``tools``: ToolSpecs (or Tools / OpenAI tool dicts); ``tool_choice``: a ToolChoice (or as a template writes
        it). 'none' leaves the tools out; 'required' or a name adds an instruction to call (that) tool.
        """
        specs = tool_specs(tools)
        choice = resolve_tool_choice(tool_choice, specs)
        if choice.mode == "none":
            specs = ()
        return self.render_history(normalize_history(messages), list(specs), choice)

    @abstractmethod
    def render_history(self, history: list[HistoryItem], tools: list[ToolSpec], choice: ToolChoice) -> list[dict]:
        """The messages a chat template renders, in this format's syntax (``tools`` empty: none offered)."""

    @staticmethod
    def choice_instruction(choice: ToolChoice) -> str:
        """The sentence that tells the model it must call (a particular) tool now ('' unless a call is forced)."""
        if choice.mode == "required":
            return "You must call at least one of the tools in your next reply."
        if choice.mode == "named":
            return f"You must call the tool `{choice.name}` in your next reply."
        return ""

    def escape(self, text: str) -> str:
        """Neutralise this format's markers inside a value (U+200B after the first character) so a value can't forge
        a call or a result."""
        for marker in self.value_markers:
            if marker in text:
                text = text.replace(marker, marker[0] + ZERO_WIDTH_SPACE + marker[1:])
        return text

    def neutralize_value(self, text: str) -> str:
        """A value rendered into a text-mode prompt: chat-template control markers (``chat_templates.neutralize``)
        and this format's markers broken, so model output, tool results and arguments can't forge turns or calls."""
        return self.escape(neutralize(text))

    # ---- output side --------------------------------------------------------------------------------------------
    def parse(self, text: str, tools: Optional[Iterable[Any]] = None) -> tuple[str, list[ToolCall]]:
        """One-shot: (content text, calls with generated ids). ``tools``: the offered tools (names, specs or Tools);
        calls to any other name stay text (None: any name is a call)."""
        parser = self.stream_parser(tools)
        parser.feed(text)
        content, calls, _ = parser.finish()
        return content, calls

    def stream_parser(self, tools: Optional[Iterable[Any]] = None) -> ToolStreamParser:
        """A parser fed the output piece by piece (``tools`` as for ``parse``)."""
        return ToolStreamParser(self, tools)

    @abstractmethod
    def read_output(self, parser: ToolStreamParser) -> Reader:
        """The character-driven state machine that reads one output (see ``stream_parser``)."""

    def new_id(self) -> str:
        return new_call_id()

    # ---- constrained generation ---------------------------------------------------------------------------------
    @abstractmethod
    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str:
        """The literal text a forced call starts with (with ``tool_name``: up to where its arguments object starts)."""

    @abstractmethod
    def call_grammar_suffix(self) -> str:
        """The literal text that closes a single call after its arguments object."""

    def call_triggers(self) -> tuple[str, ...]:
        """Strings whose appearance in free text means the model has started a call (empty: no free text)."""
        return (self.trigger, *self.extra_triggers) if self.trigger else ()

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> Optional[str]:
        """GBNF for several calls in a row, given the rule ``one`` for a single call and each tool's (name, arguments
        rule); None when the format writes one call only."""
        return None

    def __repr__(self) -> str:
        return f"<ToolFormat {self.name}>"
