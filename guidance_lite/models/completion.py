"""Legacy text-completion backend (``/v1/completions``) with client-side chat templates and tool calling.

Why: many open models are served by endpoints that only complete text, or whose own tool-call parsing is missing or
broken. Here chat messages are rendered into the model family's prompt (``chat_templates``), tool definitions, calls
and results into its tool syntax (``tool_formats``), and calls are parsed back out of the generated text while it
streams. The server is reached through the same transport as the chat backend (``models.openai.transport``: clients
per event loop, retries, error explanations, usage, the request cache).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .. import constraints, tokens
from ..chat_templates import TEMPLATES, render_chat, stop_sequences
from ..tool_formats import ToolFormat, ToolStreamParser, detect_tool_format, get_tool_format
from .base import Choice, Completion, Delta, GenRequest, ModelError, Usage
from .openai.http import DEFAULT_MAX_RESPONSE_BYTES
from .openai.params import MAX_STOP_SEQUENCES, check_context, check_forced_calls, sampling_fields, split_params
from .openai.remote import RemoteModel
from .openai.transport import COMPLETIONS, DEFAULT_BASE_URL, usage_from_api
from .timeouts import Timeout

if TYPE_CHECKING:  # pragma: no cover
    from ..cache import RequestCache

RESERVED_PARAMS = ("prompt", "messages", "stream")
FALLBACK_TOOL_FORMAT = "generic_json"  # for chat templates that imply no tool format


@dataclass
class CompletionPlan:
    """What one request sends and how its output is read back."""

    body: dict
    options: dict  # SDK-only arguments (extra_headers, extra_query)
    tool_format: Optional[ToolFormat] = None  # set when the model was offered tools: its output is parsed for calls
    forced_prefix: str = ""  # call syntax already written at the end of the prompt (forced tool choice)
    offered: tuple[str, ...] = ()  # the names a parsed call may have (calls to other names stay text)


class CompletionReader:
    """Reads a ``/v1/completions`` answer into Deltas and a Completion; with tools, each choice's text goes through
    the tool format's stream parser, primed with the forced call prefix the prompt ends with."""

    def __init__(self, plan: CompletionPlan) -> None:
        self.plan = plan
        self.texts: dict[int, str] = {}
        self.finish_reasons: dict[int, Optional[str]] = {}
        self.usage: Optional[Usage] = None
        self.model: Optional[str] = None
        self.characters = 0
        self.parsers: dict[int, ToolStreamParser] = {}
        self.primed: dict[int, list[Delta]] = {}  # deltas the forced prefix produced, not yet sent

    def parser(self, choice: int) -> Optional[ToolStreamParser]:
        """The stream parser of one choice (None without tools), primed with the forced call prefix (the deltas that
        priming produces, e.g. the call's name and id, wait in ``primed``)."""
        parser = self.parsers.get(choice)
        if parser is None and self.plan.tool_format is not None:
            parser = self.parsers[choice] = self.plan.tool_format.stream_parser(self.plan.offered)
            if self.plan.forced_prefix:
                self.primed[choice] = parser.feed(self.plan.forced_prefix)
        return parser

    def feed(self, chunk: Any) -> list[Delta]:
        self.model = getattr(chunk, "model", None) or self.model
        if getattr(chunk, "usage", None) is not None:
            self.usage = usage_from_api(chunk.usage)
        deltas: list[Delta] = []
        for choice in chunk.choices or []:
            index = self._index(choice.index or 0)
            piece = choice.text or ""
            self.texts[index] = self.texts.get(index, "") + piece
            self.characters += len(piece)
            if choice.finish_reason:
                self.finish_reasons[index] = choice.finish_reason
            if not piece:
                continue
            parser = self.parser(index)
            fed = parser.feed(piece) if parser is not None else [Delta(text=piece)]
            for delta in [*self.primed.pop(index, []), *fed]:
                delta.choice = index
                deltas.append(delta)
        return deltas

    def _index(self, index: Any) -> int:
        """A choice index the server sent, checked against the choices asked for (a huge one would be looped to)."""
        asked = int(self.plan.body.get("n") or 1)
        if not isinstance(index, int) or not 0 <= index < asked:
            raise ValueError(f"choice index {index!r} is outside the {asked} choice(s) asked for")
        return index

    def finish(self) -> list[Delta]:
        """Text the parsers held back at the very end (their ``finish`` is idempotent)."""
        deltas = []
        for index, parser in sorted(self.parsers.items()):
            for delta in parser.finish()[2]:
                delta.choice = index
                deltas.append(delta)
        return deltas

    def read(self, response: Any) -> Completion:
        for position, choice in enumerate(response.choices or []):
            index = self._index(choice.index if getattr(choice, "index", None) is not None else position)
            self.texts[index] = choice.text or ""
            self.finish_reasons[index] = choice.finish_reason
        for index, text in self.texts.items():
            parser = self.parser(index)
            if parser is not None:
                parser.feed(text)
        self.usage = usage_from_api(response.usage) if getattr(response, "usage", None) else None
        self.model = getattr(response, "model", None)
        return self.completion()

    def completion(self) -> Completion:
        """The final Completion; with tools, each choice's text is the parsed content and its calls are parsed."""
        choices = []
        for index in range(max(self.texts, default=0) + 1):
            text = self.texts.get(index, "")
            reason = self.finish_reasons.get(index)
            parser = self.parser(index)
            if parser is None:
                choices.append(Choice(text, [], reason))
                continue
            content, calls, _ = parser.finish()
            choices.append(Choice(content, calls, "tool_calls" if calls else reason))
        return Completion(choices, self.usage, self.model)


class OpenAICompletion(RemoteModel):
    """A text-completion model behind ``/v1/completions`` (vLLM, llama.cpp's server, TGI, OpenAI's instruct models).

    ``chat_template`` is one of ``chatml``, ``llama3``, ``mistral``, ``gemma`` or a Jinja2 chat template source;
    ``tool_format`` one of ``hermes``, ``llama3_json``, ``mistral``, ``functionary_v3_2``, ``generic_json`` (None:
    detected from the template and model name, else generic_json). ``tool_choice`` 'required' or a tool name ends the
    prompt with the start of a call in the tool format, so the model must complete one; with ``constrain='llama.cpp'``
    GBNF grammars (llama.cpp's server ``grammar`` field) constrain select, pattern and forced calls instead. Other
    keyword arguments are sent with every request; ``cache=``, ``context_window=``, ``timeout=`` and
    ``max_response_bytes=`` work as for ``OpenAI``.
    """

    chat = True
    text = True
    supports_prefill = True
    can_constrain = False

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        chat_template: str = "chatml",
        tool_format: Union[str, ToolFormat, None] = None,
        client: Any = None,
        timeout: Union[Timeout, float, None] = None,
        max_retries: int = 2,
        bos_token: str = "",
        eos_token: str = "",
        constrain: Optional[str] = None,
        cache: Union[bool, str, Path, RequestCache] = False,
        context_window: Optional[int] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        **default_params: Any,
    ) -> None:
        if constrain not in (None, "llama.cpp"):
            raise ValueError(
                f"constrain must be None or 'llama.cpp' (the server takes GBNF grammars), got {constrain!r}"
            )
        if not isinstance(chat_template, str) or (chat_template not in TEMPLATES and "{" not in chat_template):
            raise ValueError(
                f"chat_template must be one of {', '.join(TEMPLATES)} or a Jinja2 chat template source, "
                f"got {chat_template!r:.60}"
            )
        super().__init__(
            model,
            base_url=base_url,
            api_key=api_key,
            client=client,
            timeout=timeout,
            max_retries=max_retries,
            cache=cache,
            context_window=context_window,
            max_response_bytes=max_response_bytes,
            default_params=default_params,
            reserved=RESERVED_PARAMS,
            backend="OpenAICompletion",
        )
        self.chat_template = chat_template
        self.constrain = constrain
        self.can_constrain = constrain is not None
        self.bos_token = bos_token
        self.eos_token = eos_token
        if tool_format is None:
            tool_format = detect_tool_format(chat_template, model) or FALLBACK_TOOL_FORMAT
        self.tool_format = get_tool_format(tool_format)

    def __repr__(self) -> str:
        template = self.chat_template if self.chat_template in TEMPLATES else "<jinja>"
        return (
            f"OpenAICompletion({self.model!r}, base_url={self.base_url!r}, chat_template={template!r}, "
            f"tool_format={self.tool_format.name!r})"
        )

    @property
    def server_stops(self) -> int:  # type: ignore[override]
        """Stop strings the server stops at: all of them, except that OpenAI's own API takes 4 (the chat template's
        come first)."""
        if self.base_url != DEFAULT_BASE_URL:
            return sys.maxsize
        return max(MAX_STOP_SEQUENCES - len(stop_sequences(self.chat_template)), 0)

    # ---- request ------------------------------------------------------------------------------------------------
    def request_body(self, request: GenRequest) -> dict:
        """The JSON body sent for ``request`` (without the streaming keys)."""
        return self.plan(request).body

    def plan(self, request: GenRequest) -> CompletionPlan:
        """Render the prompt and decide how the output is read back."""
        params, extra_body, options = split_params(self.default_params, request.extra, RESERVED_PARAMS)
        tool_format, forced_prefix, call_grammar = self._tool_syntax(request)
        if request.chat:
            prompt = self._chat_prompt(request) + forced_prefix
            stops = stop_sequences(self.chat_template)
        else:
            # text mode: the transcript so far (any text before gen included), control markers inside its values
            # neutralised as a chat template does inside messages; the template's own markers are kept
            prompt, stops = request.prompt_with_values(self.tool_format.neutralize_value), []
        stops += [s for s in (request.stop or []) if s and s not in stops]
        body: dict[str, Any] = {"model": params.pop("model", self.model), "prompt": prompt}
        body.update(params)
        if stops:
            body["stop"] = stops[:MAX_STOP_SEQUENCES] if self.base_url == DEFAULT_BASE_URL else stops
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        body.update(sampling_fields(request))
        grammar = self._grammar(request, call_grammar)
        if grammar is not None:
            body["grammar"] = grammar
        body.update(extra_body)
        offered = tuple(spec.name for spec in request.tools or ())
        return CompletionPlan(body, options, tool_format, forced_prefix, offered)

    def _tool_syntax(self, request: GenRequest) -> tuple[Optional[ToolFormat], str, Optional[str]]:
        """The request's tools and tool choice in the tool format: (the format the output is parsed with, the call
        syntax the prompt ends with for a forced choice, the GBNF of a forced call with ``constrain``); (None, '',
        None) when no tools are offered. The prompt itself renders them with ``tool_format.prepare_messages``."""
        choice = request.choice
        if not request.tools or choice.mode == "none":
            return None, "", None
        if not request.chat:
            raise ModelError(
                "tools need role blocks with a completion model: put the gen inside "
                "{{#assistant}}…{{/assistant}} after a {{#user}} block so the tools can be rendered "
                "into the chat template"
            )
        fmt = self.tool_format
        if not choice.forced:
            return fmt, "", None
        if not self.constrain:  # the model completes a call already begun; with a grammar it writes the whole call
            return fmt, fmt.call_grammar_prefix(choice.name), None
        try:
            grammar = constraints.tool_call_grammar(
                fmt, request.tools, choice, parallel=bool(request.parallel_tool_calls)
            )
        except ImportError as exc:
            raise ModelError(
                "constrain='llama.cpp' builds tool-call grammars with llama-cpp-python's schema "
                "converter: pip install 'guidance_lite[local]'"
            ) from exc
        return fmt, "", grammar

    def _chat_prompt(self, request: GenRequest) -> str:
        try:
            messages = self.tool_format.prepare_messages(request.messages or [], request.tools, request.choice)
            return render_chat(
                messages,
                self.chat_template,
                add_generation_prompt=True,
                prefill=request.prefill,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except ValueError as exc:
            raise ModelError(f"{self.name}: could not build the prompt: {exc}") from exc

    def _grammar(self, request: GenRequest, call_grammar: Optional[str]) -> Optional[str]:
        """With ``constrain='llama.cpp'``: a GBNF grammar for select options, a forced call or a pattern."""
        if self.constrain is None:
            return None
        if request.options:
            return constraints.options_grammar(request.options)
        if call_grammar is not None:
            return call_grammar
        if request.pattern:
            return constraints.regex_to_gbnf(request.pattern)
        return None

    def prompt_tokens(self, body: dict) -> int:
        """Estimated prompt size of a request body."""
        return tokens.count_tokens(body["prompt"], self.model)

    # ---- generation ---------------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        plan = self.plan(request)
        check_context(plan.body, self.prompt_tokens, self.model, self.context_window)
        answer = self.transport.serve(
            plan.body,
            lambda: self.transport.exchange(
                COMPLETIONS,
                plan.body,
                plan.options,
                stream=request.stream is not False,
                new_reader=lambda: CompletionReader(plan),
            ),
            self.prompt_tokens,
            caching=request.caching,
        )
        async for item in answer:
            if isinstance(item, Completion) and plan.tool_format is not None:
                check_forced_calls(request.choice, item, self.base_url)
            yield item


__all__ = ["OpenAICompletion", "CompletionPlan", "CompletionReader"]
