"""The one interface every model backend implements (kani-style: small, with quirks kept in backend modules).

The interpreter builds a :class:`GenRequest`, a backend streams :class:`Delta` pieces and ends with one
:class:`Completion`. Backends never see template nodes or program state, only this request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from ..errors import GuidanceLiteError
from ..stopping import REGEX_SECONDS, as_list
from ..tools.call import ToolCall, new_call_id
from ..tools.errors import ToolChoiceError
from ..tools.records import ToolCallRecord
from ..tools.spec import ToolChoice, ToolSpec, resolve_tool_choice, tool_specs

__all__ = [
    "Model",
    "ModelError",
    "GenParams",
    "GenRequest",
    "Delta",
    "Choice",
    "Completion",
    "Usage",
    "Message",
    "ToolCall",
    "new_call_id",
    "ToolChoice",
    "ToolSpec",
]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False  # True when counted with tiktoken because the backend gave no usage

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.estimated or other.estimated,
        )


@dataclass
class Delta:
    """A streamed piece of one choice: some text, or a fragment of a tool call (accumulated by ``tool_index``)."""

    text: str = ""
    choice: int = 0
    tool_index: Optional[int] = None
    tool_id: Optional[str] = None
    tool_name: Optional[str] = None
    tool_arguments: str = ""  # a fragment of the arguments JSON


@dataclass
class Choice:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: Optional[str] = None  # "stop" | "length" | "tool_calls" | ...
    stop_text: Optional[str] = None  # the stop string / regex match that ended generation, if known


@dataclass
class Completion:
    """The final item of every stream: all choices, complete, plus usage."""

    choices: list[Choice]
    usage: Optional[Usage] = None
    model: Optional[str] = None
    cached: bool = False


Message = dict  # an OpenAI chat-format message dict


class ModelError(GuidanceLiteError, RuntimeError):
    """A backend failure explained for people (what went wrong and what to change)."""


@dataclass
class GenParams:
    """What one generation asks for, apart from the conversation: sampling, stops, constraints and tools.

    The template side (``gen``, ``select``, ``geneach``) fills one in; ``generation.build_request`` adds the
    conversation to make a :class:`GenRequest`. ``tools`` are typed specs (Tools and OpenAI tool dicts are converted
    on creation); ``tool_choice`` is a ToolChoice, or as written in a hand-built request ('auto', 'required', 'none', a
    tool name, OpenAI's dict) — backends read :attr:`choice`, its resolution.
    """

    stop: Optional[list[str]] = None
    stop_regex: Optional[list[str]] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    n: int = 1
    seed: Optional[int] = None
    tools: Optional[Sequence[ToolSpec]] = None
    tool_choice: Union[ToolChoice, str, dict, None] = None
    parallel_tool_calls: Optional[bool] = None
    pattern: Optional[str] = None  # regex the output must match (constrained where the backend can)
    options: Optional[list[str]] = None  # select: the output must be one of these
    extra: dict[str, Any] = field(default_factory=dict)  # other model_kwargs, passed through (None: not given)
    # ask the server for a streamed answer? None: the interpreter decides (``generation.wants_stream``)
    stream: Optional[bool] = None
    _choice: Optional[ToolChoice] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stop is not None:
            self.stop = as_list(self.stop) or None
        if self.stop_regex is not None:
            self.stop_regex = as_list(self.stop_regex) or None
        if self.tools is not None:
            self.tools = tool_specs(self.tools) or None
        if self.extra:
            self.extra = {key: value for key, value in self.extra.items() if value is not None}

    @property
    def choice(self) -> ToolChoice:
        """``tool_choice`` resolved against ``tools`` (once); a ModelError when it does not fit them."""
        if self._choice is None:
            try:
                self._choice = resolve_tool_choice(self.tool_choice, self.tools or ())
            except ToolChoiceError as exc:
                raise ModelError(str(exc)) from None
        return self._choice

    def tool_schemas(self) -> Optional[list[dict]]:
        """The offered tools as OpenAI tool definitions, copies to change freely (None without tools)."""
        return [spec.schema() for spec in self.tools] if self.tools else None

    def settings(self) -> dict[str, Any]:
        """The parameters as keyword arguments (to build a request from them)."""
        return {f.name: getattr(self, f.name) for f in fields(GenParams) if f.init}


@dataclass
class GenRequest(GenParams):
    """Everything a backend needs for one generation: the parameters plus the conversation so far.

    ``messages`` and ``prompt`` are computed lazily from a snapshot of program state, so building a request costs the
    same whatever the transcript length; a backend reads the one it needs. ``messages`` is None for templates that
    use no role blocks (text mode); then ``prompt_with_values`` tells the template's text from the values in it.
    ``prefill`` is assistant text already rendered in the open assistant block.
    ``caching`` is the program's ``caching=`` option for backends with a request cache: None leaves it to the
    backend's ``cache=``, False neither reads nor writes the cache, True uses it (the default cache file when the
    backend was made without one).
    """

    messages_fn: Optional[Callable[[], list[Message]]] = None
    prompt_fn: Optional[Callable[[], str]] = None
    prefill: str = ""
    caching: Optional[bool] = None
    values_prompt_fn: Optional[Callable[[Callable[[str], str]], str]] = None
    regex_timeout: float = REGEX_SECONDS  # seconds one stop_regex match may take (the run's Limits.regex_seconds)
    _messages: Optional[list[Message]] = field(default=None, init=False, repr=False)
    _prompt: Optional[str] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stream is None:  # a request built by hand streams (the interpreter always decides)
            self.stream = True

    @property
    def chat(self) -> bool:
        return self.messages_fn is not None

    @property
    def messages(self) -> Optional[list[Message]]:
        if self._messages is None and self.messages_fn is not None:
            self._messages = self.messages_fn()
        return self._messages

    @property
    def prompt(self) -> str:
        if self._prompt is None:
            self._prompt = self.prompt_fn() if self.prompt_fn is not None else ""
        return self._prompt

    def prompt_with_values(self, escape: Callable[[str], str]) -> str:
        """The text-mode prompt with each value in it (inserted values, model output, tool results) passed through
        ``escape``, the template's own text as written: how a completion backend keeps values from forging chat
        turns (``ToolFormat.neutralize_value``). A request built without a program has no values to tell apart."""
        return self.values_prompt_fn(escape) if self.values_prompt_fn is not None else self.prompt


class Model:
    """Base class of all backends. Override ``stream`` (or ``complete``; each defaults to the other).

    Capability flags tell the interpreter what it may ask:
    - ``chat``: takes ``messages`` (every backend here does; completion backends render them with a chat template).
    - ``text``: takes a plain ``prompt`` (templates without role blocks).
    - ``supports_prefill``: can continue a partly written assistant message.
    - ``can_constrain``: enforces ``pattern`` / ``options`` / tool-argument schemas during generation.
    - ``server_stops``: how many stop strings the backend has the model itself stop at; with more (or a
      ``stop_regex``) a remote answer is streamed so that the client can end it early.
    """

    name: str = "model"
    chat: bool = True
    text: bool = False
    supports_prefill: bool = False
    can_constrain: bool = False
    server_stops: int = 0
    context_window: Optional[int] = None

    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        """Yield ``Delta`` pieces, then exactly one ``Completion``."""
        if type(self).complete is Model.complete:
            raise NotImplementedError(f"{type(self).__name__} must override stream() or complete()")
        completion = await self.complete(request)
        for i, choice in enumerate(completion.choices):
            if choice.text:
                yield Delta(text=choice.text, choice=i)
        yield completion

    async def complete(self, request: GenRequest) -> Completion:
        """The whole answer at once (default: drain ``stream``)."""
        if type(self).stream is Model.stream:
            raise NotImplementedError(f"{type(self).__name__} must override stream() or complete()")
        final: Optional[Completion] = None
        async for item in self.stream(request):
            if isinstance(item, Completion):
                final = item
        if final is None:
            raise ModelError(f"{self.name}: the stream ended without a completion")
        return final

    def tool_outcome(self, call: ToolCall, arguments: dict) -> Optional[ToolCallRecord]:
        """The outcome of a tool call this model already knows, used instead of running the tool: a replay answers
        from its trace. None (every live backend) runs the tool."""
        return None

    def count_tokens(self, text: str) -> int:
        """Token estimate for context-window checks (backends with a tokenizer override this)."""
        from ..tokens import count_tokens

        return count_tokens(text, model=self.name)

    async def aclose(self) -> None:
        """Release clients/connections (optional)."""
        return None
