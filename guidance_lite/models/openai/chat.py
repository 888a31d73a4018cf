"""The chat backend: Chat Completions with native tools, streaming, usage, retries (OpenAI and compatible servers:
vLLM, llama.cpp's llama-server, SGLang ...).

Composed of the shared transport (``transport``: clients, retries, errors, usage, cache), the translation of our
request into Chat Completions parameters (``translation``), the reader of its answers (``streaming``) and
select as a forced call (``select_as_tool``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ... import tokens
from ..base import Completion, Delta, GenRequest, ModelError
from ..timeouts import Timeout
from .http import DEFAULT_MAX_RESPONSE_BYTES
from .params import MAX_STOP_SEQUENCES, check_context, check_forced_calls, sampling_fields, split_params
from .remote import RemoteModel
from .select_as_tool import options_as_text, select_params
from .streaming import ChatReader
from .translation import call_ids_in, max_tokens_key, normalize_messages, tool_params
from .transport import CHAT

if TYPE_CHECKING:  # pragma: no cover
    from ...cache import RequestCache

RESERVED_PARAMS = ("messages", "stream")
TEXT_MODE_MESSAGE = (
    "OpenAI chat models need role blocks: wrap the prompt in {{#user}}…{{/user}} and gen inside "
    "{{#assistant}}…{{/assistant}}"
)
PREFILL_MESSAGE = (
    "OpenAI chat models can't continue a partly written assistant message: put gen at the start of "
    "the assistant block (text before it is not sent as a prefix)"
)


class OpenAI(RemoteModel):
    """A chat model behind the OpenAI API or an OpenAI-compatible server.

    ``OpenAI("gpt-4o-mini")`` uses ``OPENAI_API_KEY``; ``OpenAI("qwen", base_url="http://127.0.0.1:8000/v1")`` talks to
    a local server (no key needed). ``cache=True`` (or a path / RequestCache) replays deterministic requests
    (temperature 0 or a seed, n == 1) from a sqlite cache. ``select_with_tools=False`` sends ``select`` as a plain
    request instead of a forced call. ``timeout=`` is a ``gl.models.Timeout`` (connect, read, total) or a number of
    seconds for all three (None: 10 s, 120 s, 600 s); ``max_response_bytes`` caps one response (64 MiB). Other
    keyword arguments are sent with every request (``extra_body={...}``, ``extra_headers={...}`` go to the SDK as
    such).
    """

    chat = True
    text = False
    supports_prefill = False
    can_constrain = False
    server_stops = MAX_STOP_SEQUENCES

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        client: Any = None,
        timeout: Union[Timeout, float, None] = None,
        max_retries: int = 2,
        cache: Union[bool, str, Path, RequestCache] = False,
        context_window: Optional[int] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        select_with_tools: bool = True,
        **default_params: Any,
    ) -> None:
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
            backend="OpenAI",
        )
        self.select_with_tools = select_with_tools

    def __repr__(self) -> str:
        return f"OpenAI({self.model!r}, base_url={self.base_url!r})"

    # ---- request body -------------------------------------------------------------------------------------------
    def request_body(self, request: GenRequest) -> dict:
        """The JSON body sent for ``request`` (without the streaming keys); raises ModelError for requests a chat
        model can't serve."""
        return self._prepare(request)[0]

    def _prepare(self, request: GenRequest) -> tuple[dict, dict]:
        """(body, SDK options) for ``request``."""
        if not request.chat:
            raise ModelError(TEXT_MODE_MESSAGE)
        if request.prefill:
            raise ModelError(PREFILL_MESSAGE)
        params, extra_body, options = split_params(self.default_params, request.extra, RESERVED_PARAMS)
        body: dict[str, Any] = {
            "model": params.pop("model", self.model),
            "messages": normalize_messages(request.messages or []),
        }
        body.update(params)
        stops = [s for s in (request.stop or []) if s]
        if stops:
            body["stop"] = stops[:MAX_STOP_SEQUENCES]  # the interpreter also enforces every stop client-side
        if request.max_tokens is not None:
            body[max_tokens_key(body["model"])] = request.max_tokens
        body.update(sampling_fields(request))
        body.update(
            tool_params(request)
            or (select_params(request.options) if request.options and self.select_with_tools else {})
        )
        body.update(extra_body)
        return body, options

    def prompt_tokens(self, body: dict) -> int:
        """Estimated prompt size of a request body (messages plus tool definitions)."""
        prompt = tokens.count_message_tokens(body["messages"], self.model)
        if body.get("tools"):
            prompt += tokens.count_tokens(json.dumps(body["tools"]), self.model)
        return prompt

    # ---- generation ---------------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        body, options = self._prepare(request)
        check_context(body, self.prompt_tokens, self.model, self.context_window)
        n = int(body.get("n", 1))
        taken = call_ids_in(body["messages"])  # ids of earlier calls: a server reusing one gets a fresh id
        answer = self.transport.serve(
            body,
            lambda: self.transport.exchange(
                CHAT, body, options, stream=request.stream is not False, new_reader=lambda: ChatReader(n, taken)
            ),
            lambda sent: tokens.count_message_tokens(sent["messages"], self.model),
            caching=request.caching,
        )
        if request.options and not request.tools and self.select_with_tools:
            answer = options_as_text(answer)
        async for item in answer:
            if isinstance(item, Completion) and request.tools:
                check_forced_calls(request.choice, item, self.base_url)
            yield item
