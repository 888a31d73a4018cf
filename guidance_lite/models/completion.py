"""Legacy text-completion backend (``/v1/completions``) with client-side chat templates and tool calling.

Why: many open models are served by endpoints that only complete text, or whose own tool-call parsing is missing or
broken. Here chat messages are rendered into the model family's prompt (``chat_templates``), tool definitions, calls
and results into its tool syntax (``tool_formats``), and calls are parsed back out of the generated text while it
streams. Clients (one per event loop), the request cache and error explanations are the chat backend's
(``models.openai.OpenAI``), which this class extends.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional, Union

from .. import tokens
from ..chat_templates import TEMPLATES, render_chat, stop_sequences
from ..tool_formats import ToolFormat, detect_tool_format, get_tool_format
from ..tool_formats.base import ToolStreamParser
from .base import Choice, Completion, Delta, GenRequest, ModelError, Usage
from .openai import (DEFAULT_BASE_URL, MAX_STOP_SEQUENCES, OpenAI, _usage_from_api,
                     check_forced_calls, deltas_of, forced_tool, must_call)

RESERVED_PARAMS = ("prompt", "messages", "stream")
FALLBACK_TOOL_FORMAT = "generic_json"  # for chat templates that imply no tool format


@dataclass
class CompletionPlan:
    """What one request sends and how its output is read back."""

    body: dict
    tool_format: Optional[ToolFormat] = None  # set when the model was offered tools: its output is parsed for calls
    forced_prefix: str = ""  # call syntax already written at the end of the prompt (forced tool choice)
    parsers: dict[int, ToolStreamParser] = field(default_factory=dict)
    primed: dict[int, list[Delta]] = field(default_factory=dict)  # deltas the forced prefix produced, not yet sent

    def parser(self, choice: int) -> ToolStreamParser:
        """The stream parser of one choice, primed with the forced call prefix the prompt ends with (the deltas
        that priming produces, e.g. the call's name and id, are kept for ``take_primed``)."""
        parser = self.parsers.get(choice)
        if parser is None and self.tool_format is not None:
            parser = self.parsers[choice] = self.tool_format.stream_parser()
            if self.forced_prefix:
                self.primed[choice] = parser.feed(self.forced_prefix)
        return parser

    def take_primed(self, choice: int) -> list[Delta]:
        return self.primed.pop(choice, [])


class OpenAICompletion(OpenAI):
    """A text-completion model behind ``/v1/completions`` (vLLM, llama.cpp's server, TGI, OpenAI's instruct models).

    ``chat_template`` is one of ``chatml``, ``llama3``, ``mistral``, ``gemma`` or a Jinja2 chat template source;
    ``tool_format`` one of ``hermes``, ``llama3_json``, ``mistral``, ``functionary_v3_2``, ``generic_json`` (None:
    detected from the template and model name, else generic_json). ``tool_choice`` 'required' or a tool name ends the
    prompt with the start of a call in the tool format, so the model must complete one. Other keyword arguments are
    sent with every request (and ``cache=``/``context_window=`` work as for ``OpenAI``).
    """

    chat = True
    text = True
    supports_prefill = True
    can_constrain = False

    reserved_params = RESERVED_PARAMS

    def __init__(self, model: str, *, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 chat_template: str = "chatml", tool_format: Union[str, ToolFormat, None] = None,
                 client: Any = None, timeout: Optional[float] = None, max_retries: int = 2,
                 bos_token: str = "", eos_token: str = "", constrain: Optional[str] = None,
                 **default_params: Any) -> None:
        if constrain not in (None, "llama.cpp"):
            raise ValueError(f"constrain must be None or 'llama.cpp' (the server takes GBNF grammars), got {constrain!r}")
        for key in RESERVED_PARAMS:
            if key in default_params:
                raise ValueError(f"OpenAICompletion(...) sets {key!r} itself: remove {key}= from the keyword arguments")
        if not isinstance(chat_template, str) or (chat_template not in TEMPLATES and "{" not in chat_template):
            raise ValueError(f"chat_template must be one of {', '.join(TEMPLATES)} or a Jinja2 chat template source, "
                             f"got {chat_template!r:.60}")
        super().__init__(model, base_url=base_url, api_key=api_key, client=client, timeout=timeout,
                         max_retries=max_retries, **default_params)
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
        return (f"OpenAICompletion({self.model!r}, base_url={self.base_url!r}, chat_template={template!r}, "
                f"tool_format={self.tool_format.name!r})")

    # ---- request --------------------------------------------------------------------------------------------
    def request_body(self, request: GenRequest) -> dict:
        """The JSON body sent for ``request`` (without the streaming keys)."""
        return self.plan(request).body

    def plan(self, request: GenRequest) -> CompletionPlan:
        """Render the prompt and decide how the output is parsed."""
        params, extra_body = self._body_params(request)
        schemas = request.tool_schemas()
        choice = request.tool_choice
        if not schemas and choice not in (None, "none", "auto"):
            raise ModelError(f"tool_choice={choice!r} needs tools: pass tools=[...] to gen")
        tool_format: Optional[ToolFormat] = None
        forced_prefix = ""
        stops = []
        if request.chat:
            try:
                messages = self.tool_format.prepare_messages(request.messages or [], schemas, choice)
                prompt = render_chat(messages, self.chat_template, add_generation_prompt=True,
                                     prefill=request.prefill, bos_token=self.bos_token, eos_token=self.eos_token)
            except ValueError as exc:
                raise ModelError(f"{self.name}: could not build the prompt: {exc}") from exc
            if schemas and choice != "none":
                tool_format = self.tool_format
                if must_call(choice) and not self.constrain:  # with a grammar the model writes the whole call
                    forced_prefix = tool_format.call_grammar_prefix(forced_tool(choice, schemas))
                    prompt += forced_prefix
            stops = stop_sequences(self.chat_template)
        else:
            if schemas and choice != "none":
                raise ModelError("tools need role blocks with a completion model: put the gen inside "
                                 "{{#assistant}}…{{/assistant}} after a {{#user}} block so the tools can be rendered "
                                 "into the chat template")
            prompt = request.prompt  # text mode: the transcript so far, including any text before gen
        stops += [s for s in (request.stop or []) if s and s not in stops]
        body: dict[str, Any] = {"model": params.pop("model", self.model), "prompt": prompt}
        body.update(params)
        if stops:
            body["stop"] = stops[:MAX_STOP_SEQUENCES] if self.base_url == DEFAULT_BASE_URL else stops
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        for key in ("temperature", "top_p", "seed"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.n != 1:
            body["n"] = request.n
        grammar = self._grammar(request, tool_format)
        if grammar is not None:
            body["grammar"] = grammar
        body.update(extra_body)
        return CompletionPlan(body, tool_format, forced_prefix)

    def _grammar(self, request: GenRequest, tool_format: Optional[ToolFormat]) -> Optional[str]:
        """With ``constrain='llama.cpp'``: a GBNF grammar for select options, a pattern or a forced call."""
        if self.constrain is None:
            return None
        from .. import constraints
        if request.options:
            return constraints.options_grammar(request.options)
        if tool_format is not None and must_call(request.tool_choice):
            try:
                return constraints.tool_call_grammar(tool_format, request.tool_schemas() or [], request.tool_choice,
                                                     parallel=bool(request.parallel_tool_calls))
            except ImportError as exc:
                raise ModelError("constrain='llama.cpp' builds tool-call grammars with llama-cpp-python's schema "
                                 "converter: pip install 'guidance_lite[local]'") from exc
        if request.pattern:
            return constraints.regex_to_gbnf(request.pattern)
        return None

    def _prompt_tokens(self, body: dict) -> int:
        return tokens.count_tokens(body["prompt"], self.model)

    # ---- generation -----------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        plan = self.plan(request)
        options = self._sdk_options(request)
        calls = self._streamed_text(plan, options) if request.stream else self._plain_text(plan, options)
        async for item in self._serve(plan.body, calls):
            if isinstance(item, Completion) and plan.tool_format is not None:
                check_forced_calls(request.tool_choice, item, self.base_url or DEFAULT_BASE_URL)
            yield item

    async def _plain_text(self, plan: CompletionPlan, options: dict) -> AsyncIterator[Union[Delta, Completion]]:
        import openai as openai_sdk
        body = plan.body
        rest = {k: v for k, v in body.items() if k not in ("model", "prompt")}
        try:
            response = await self._client().completions.create(model=body["model"], prompt=body["prompt"],
                                                               stream=False, extra_body=rest, **options)
        except openai_sdk.OpenAIError as err:
            raise self._explain(err) from err
        texts: dict[int, str] = {}
        finish: dict[int, Optional[str]] = {}
        for position, choice in enumerate(response.choices or []):
            index = choice.index if getattr(choice, "index", None) is not None else position
            texts[index] = choice.text or ""
            finish[index] = choice.finish_reason
        for index, text in texts.items():
            parser = plan.parser(index)
            if parser is not None:
                parser.feed(text)
        usage = _usage_from_api(response.usage) if getattr(response, "usage", None) else None
        completion = self._completion(plan, texts, finish, usage, getattr(response, "model", None))
        for delta in deltas_of(completion):
            yield delta
        yield completion

    async def _streamed_text(self, plan: CompletionPlan, options: dict) -> AsyncIterator[Union[Delta, Completion]]:
        """Stream one call; a stream that breaks before any output is retried (up to ``max_retries``)."""
        import openai as openai_sdk
        body = plan.body
        rest = {k: v for k, v in body.items() if k not in ("model", "prompt")}
        rest["stream_options"] = {"include_usage": True}
        drops = 0
        while True:
            texts: dict[int, str] = {}
            finish: dict[int, Optional[str]] = {}
            usage = None
            model = None
            plan.parsers.clear()
            plan.primed.clear()
            try:
                stream = await self._client().completions.create(model=body["model"], prompt=body["prompt"],
                                                                 stream=True, extra_body=rest, **options)
            except openai_sdk.OpenAIError as err:
                raise self._explain(err) from err
            try:
                async with stream:
                    async for chunk in stream:
                        model = getattr(chunk, "model", None) or model
                        if getattr(chunk, "usage", None) is not None:
                            usage = _usage_from_api(chunk.usage)
                        for choice in chunk.choices or []:
                            index = choice.index or 0
                            piece = choice.text or ""
                            texts[index] = texts.get(index, "") + piece
                            if choice.finish_reason:
                                finish[index] = choice.finish_reason
                            if not piece:
                                continue
                            parser = plan.parser(index)
                            fed = parser.feed(piece) if parser is not None else [Delta(text=piece)]
                            for delta in [*plan.take_primed(index), *fed]:
                                delta.choice = index
                                yield delta
            except openai_sdk.APIConnectionError as err:
                delay = self._stream_dropped(err, sum(len(t) for t in texts.values()), drops)
                drops += 1
                await asyncio.sleep(delay)
                continue
            except openai_sdk.OpenAIError as err:
                raise self._explain(err) from err
            for index, parser in sorted(plan.parsers.items()):
                for delta in parser.finish()[2]:  # text held back at the very end (finish is idempotent)
                    delta.choice = index
                    yield delta
            yield self._completion(plan, texts, finish, usage, model)
            return

    def _completion(self, plan: CompletionPlan, texts: dict[int, str], finish: dict[int, Optional[str]],
                    usage: Any, model: Optional[str]) -> Completion:
        """The final Completion; with tools, each choice's text is the parsed content and its calls are parsed."""
        choices = []
        for index in range(max(texts, default=0) + 1):
            text = texts.get(index, "")
            reason = finish.get(index)
            parser = plan.parser(index)
            if parser is None:
                choices.append(Choice(text, [], reason))
                continue
            content, calls, _ = parser.finish()
            choices.append(Choice(content, calls, "tool_calls" if calls else reason))
        return Completion(choices, usage, model)

    def _estimate_usage(self, body: dict, completion: Completion) -> Usage:
        prompt = tokens.count_tokens(body["prompt"], self.model)
        generated = "".join(c.text + "".join(t.name + t.arguments_json for t in c.tool_calls)
                            for c in completion.choices)
        output = tokens.count_tokens(generated, self.model)
        return Usage(prompt, output, prompt + output, estimated=True)

__all__ = ["OpenAICompletion", "CompletionPlan"]
