"""OpenAI chat-completions backend (also for OpenAI-compatible servers: vLLM, llama.cpp's llama-server, ...).

Built on the official ``openai`` SDK's ``AsyncOpenAI``, imported lazily so ``import guidance_lite`` stays light.
An async client is bound to the event loop it first ran on, and programs may run on a background loop (sync API) as well as on
a notebook's loop (``await program.arun()``), so one client is kept per running loop.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional, Union

from .. import tokens
from .base import Choice, Completion, Delta, GenRequest, Model, ModelError, ToolCall, Usage, new_call_id

if TYPE_CHECKING:  # pragma: no cover
    import openai as openai_sdk

    from ..cache import RequestCache

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_API_KEY = "not-needed"  # what local OpenAI-compatible servers accept when no key is configured
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; the interpreter enforces every stop string client-side anyway
SDK_OPTIONS = ("extra_headers", "extra_query")  # passed to the SDK call, not in the JSON body
RESERVED_PARAMS = ("messages", "stream")
TRANSPORT_KEYS = ("stream", "stream_options")  # left out of cache keys: streamed and plain calls share entries
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")  # these take max_completion_tokens instead of max_tokens

VLLM_AUTO_TOOL_REFUSAL = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
LLAMACPP_TOOLS_REFUSAL = "tools param requires --jinja flag"

TEXT_MODE_MESSAGE = ("OpenAI chat models need role blocks: wrap the prompt in {{#user}}…{{/user}} and gen inside "
                     "{{#assistant}}…{{/assistant}}")
PREFILL_MESSAGE = ("OpenAI chat models can't continue a partly written assistant message: put gen at the start of "
                   "the assistant block (text before it is not sent as a prefix)")


SELECT_TOOL = "select_option"


def select_tool(options: list[str]) -> dict:
    """``select`` on a chat API: a forced call whose only argument is an enum of the options, so servers that
    constrain tool arguments (OpenAI strict schemas, vLLM, llama.cpp) can only produce an option."""
    return {"type": "function", "function": {
        "name": SELECT_TOOL, "description": "Answer by choosing exactly one of the options.",
        "parameters": {"type": "object", "properties": {"option": {"type": "string", "enum": list(options)}},
                       "required": ["option"], "additionalProperties": False}}}


def _select_from_call(choice: Choice) -> None:
    """Turn the forced select call back into plain text (the interpreter matches it to an option)."""
    for call in choice.tool_calls:
        if call.name == SELECT_TOOL:
            try:
                option = call.arguments.get("option")
            except ValueError:
                option = None
            if isinstance(option, str):
                choice.text = option
                break
    choice.tool_calls = []
    choice.finish_reason = "stop"


def stable_call_id(position: int, index: int, name: str, arguments: str) -> str:
    """An id for a tool call that arrived without one, in ``new_call_id()``'s shape but derived from the call.

    Why not random: the same conversation must produce the same request body on every request of a run (and across
    runs), so cache keys stay stable and the matching ``tool`` messages get the same id every time.
    """
    digest = hashlib.sha256(f"{position}:{index}:{name}:{arguments}".encode()).hexdigest()
    return "call_" + digest[:24]


def _arguments_json(arguments: Any) -> str:
    if arguments is None or arguments == "":
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Messages as OpenAI accepts them: no internal ``_`` keys, no ``content: None``, arguments as JSON strings,
    every tool-call id non-empty and every ``tool`` message pointing at one."""
    out: list[dict] = []
    generated: list[str] = []  # ids made up for calls without one, waiting for their tool messages (in order)
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ModelError(f"message #{position} is not a chat message with a 'role': {message!r}")
        clean = {key: value for key, value in message.items() if not key.startswith("_")}
        if clean.get("content") is None:
            clean["content"] = ""
        if clean.get("tool_calls"):
            calls = []
            for index, call in enumerate(clean["tool_calls"]):
                if isinstance(call, ToolCall):
                    call = call.to_openai()
                function = call.get("function") or {}
                name = str(function.get("name") or "")
                arguments = _arguments_json(function.get("arguments"))
                call_id = call.get("id") or ""
                if not call_id:
                    call_id = stable_call_id(position, index, name, arguments)
                    generated.append(call_id)
                calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
            clean["tool_calls"] = calls
        elif "tool_calls" in clean:
            del clean["tool_calls"]  # an empty list is rejected by OpenAI
        if clean["role"] == "tool" and not clean.get("tool_call_id"):
            if not generated:
                raise ModelError(f"tool message #{position} has no tool_call_id and no earlier tool call lacks an "
                                 f"id: give the result the id of the call it answers")
            clean["tool_call_id"] = generated.pop(0)
        out.append(clean)
    return out


def _tool_names(schemas: list[dict]) -> list[str]:
    return [str((schema.get("function") or {}).get("name", schema.get("name", ""))) for schema in schemas]


def forced_tool(choice: Union[str, dict, None], schemas: Optional[list[dict]]) -> Optional[str]:
    """The one tool a ``tool_choice`` forces: a name, a ``{"function": {"name"}}`` dict, or ``'required'`` with a
    single tool offered (the same thing said the way every server understands; llama.cpp's ignores 'required')."""
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    if choice == "required":
        names = _tool_names(schemas or [])
        return names[0] if len(names) == 1 else None
    if choice in (None, "auto", "none"):
        return None
    return choice


def must_call(choice: Union[str, dict, None]) -> bool:
    """Whether ``tool_choice`` obliges the model to call a tool."""
    return choice not in (None, "auto", "none")


def check_forced_calls(choice: Union[str, dict, None], completion: Completion, server: str) -> None:
    """A forced tool choice that came back without a call is the server ignoring it: say so, never pass it as text."""
    if not must_call(choice):
        return
    for option in completion.choices:
        if not option.tool_calls:
            raise ModelError(f"tool_choice={choice!r} was not honoured by {server}: the answer has no tool call "
                             f"({option.text[:80]!r}); check that the server supports forced tool calls, or use "
                             "tool_choice='auto'")


def tool_choice_param(choice: Union[str, dict, None], schemas: Optional[list[dict]]) -> Union[str, dict, None]:
    """``'auto' | 'none'`` pass through; ``'required'`` too unless one tool is offered; a tool name becomes OpenAI's
    ``{"type": "function", ...}``."""
    if choice is None or isinstance(choice, dict):
        return choice
    if choice in ("auto", "none"):
        return choice
    if choice == "required":
        single = forced_tool(choice, schemas)
        return {"type": "function", "function": {"name": single}} if single else choice
    names = _tool_names(schemas or [])
    if choice not in names:
        offered = ", ".join(repr(n) for n in names) or "none"
        raise ModelError(f"tool_choice={choice!r} is not one of the offered tools ({offered}): use 'auto', "
                         f"'required', 'none' or the name of a tool in tools=[...]")
    return {"type": "function", "function": {"name": choice}}


def _is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return any(name == p or name.startswith(p + "-") for p in REASONING_PREFIXES)


def _scrub(text: str, secret: Optional[str]) -> str:
    if secret and secret != LOCAL_API_KEY and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return getattr(err, "message", None) or str(err)


def explain_error(err: BaseException, *, model: str, base_url: str, api_key: Optional[str],
                  max_retries: int) -> ModelError:
    """Turn an ``openai`` SDK error into a ModelError that says what to change (api keys are never included)."""
    import openai as openai_sdk

    said = _server_message(err)
    everything = f"{err} {said} {json.dumps(getattr(err, 'body', None), default=str)}"
    status = getattr(err, "status_code", None)
    if VLLM_AUTO_TOOL_REFUSAL in everything:
        text = (f"the vLLM server at {base_url} refuses tool_choice='auto' ({status}): start vLLM with "
                f"--enable-auto-tool-choice --tool-call-parser <parser> (e.g. hermes, llama3_json), or let "
                f"guidance_lite format tools itself with gl.models.OpenAICompletion(..., tool_format=...)")
    elif LLAMACPP_TOOLS_REFUSAL in everything:
        text = (f"the llama.cpp server at {base_url} can't take tools ({status}): start llama-server with --jinja "
                f"(so it applies the model's tool-aware chat template)")
    elif isinstance(err, openai_sdk.AuthenticationError):
        text = (f"the server at {base_url} rejected the API key (401): check OPENAI_API_KEY or pass api_key=... "
                f"Server said: {said}")
    elif isinstance(err, openai_sdk.PermissionDeniedError):
        text = (f"the API key may not use model {model!r} at {base_url} (403): check the key's project. "
                f"Server said: {said}")
    elif isinstance(err, openai_sdk.NotFoundError):
        if getattr(err, "code", None) == "model_not_found" or "model" in said.lower():
            text = (f"model {model!r} was not found at {base_url}: check the model name (GET {base_url.rstrip('/')}"
                    f"/models lists the server's models). Server said: {said}")
        else:
            text = (f"{base_url} has no chat-completions endpoint (404): base_url should end in /v1. "
                    f"Server said: {said}")
    elif isinstance(err, openai_sdk.RateLimitError):
        text = (f"rate limited by {base_url} (429) even after {max_retries} retries: lower the concurrency, wait, "
                f"or raise max_retries. Server said: {said}")
    elif isinstance(err, openai_sdk.InternalServerError):
        text = (f"the server at {base_url} failed ({status}) even after {max_retries} retries: try again later or "
                f"raise max_retries. Server said: {said}")
    elif isinstance(err, openai_sdk.APITimeoutError):
        text = (f"the request to {base_url} timed out (after {max_retries} retries): raise timeout= or "
                f"lower max_tokens")
    elif isinstance(err, openai_sdk.APIConnectionError):
        cause = err.__cause__ or err.__context__
        text = (f"could not connect to {base_url} (after {max_retries} retries): is the server running and is "
                f"base_url right? ({type(cause).__name__ + ': ' + str(cause) if cause else err})")
    elif isinstance(err, openai_sdk.BadRequestError) and ("context_length" in everything
                                                          or "maximum context length" in everything):
        text = (f"the conversation does not fit model {model!r}'s context window: shorten it or lower max_tokens. "
                f"Server said: {said}")
    elif isinstance(err, openai_sdk.APIStatusError):
        text = f"the server at {base_url} rejected the request ({status}): {said}"
    elif isinstance(err, openai_sdk.APIError):
        text = f"the server at {base_url} reported an error: {said}"
    else:
        text = f"the OpenAI client failed: {type(err).__name__}: {err}"
    return ModelError(_scrub(text, api_key))


class _StreamAccumulator:
    """Collects streamed chunks into choices; turns each chunk into the Deltas to yield."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.texts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict]] = {}  # choice -> tool index -> {"id","name","arguments":[...]}
        self.finish: dict[int, Optional[str]] = {}
        self.usage: Optional[Usage] = None
        self.model: Optional[str] = None
        self.characters = 0  # text + argument characters yielded so far

    def feed(self, chunk: Any) -> list[Delta]:
        self.model = getattr(chunk, "model", None) or self.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = _usage_from_api(usage)
        deltas: list[Delta] = []
        for choice in getattr(chunk, "choices", None) or []:
            i = choice.index or 0
            delta = choice.delta
            content = getattr(delta, "content", None) if delta is not None else None
            if content:
                self.texts.setdefault(i, []).append(content)
                self.characters += len(content)
                deltas.append(Delta(text=content, choice=i))
            for fragment in (getattr(delta, "tool_calls", None) or []) if delta is not None else []:
                deltas.append(self._feed_call(i, fragment))
            if choice.finish_reason:
                self.finish[i] = choice.finish_reason
        return deltas

    def _feed_call(self, choice: int, fragment: Any) -> Delta:
        calls = self.calls.setdefault(choice, {})
        function = getattr(fragment, "function", None)
        name = getattr(function, "name", None) if function is not None else None
        arguments = (getattr(function, "arguments", None) if function is not None else None) or ""
        frag_id = getattr(fragment, "id", None)
        index = getattr(fragment, "index", None)
        if index is None:  # some servers leave the index out: a fragment with an id or name starts a new call
            index = len(calls) if (frag_id or name or not calls) else max(calls)
        call = calls.get(index)
        announce_id = announce_name = None
        if call is None:
            call = calls[index] = {"id": frag_id or new_call_id(), "name": name or "", "arguments": []}
            announce_id = call["id"]
            announce_name = name or None
        elif name and not call["name"]:
            call["name"] = announce_name = name
        call["arguments"].append(arguments)
        self.characters += len(arguments)
        return Delta(choice=choice, tool_index=index, tool_id=announce_id, tool_name=announce_name,
                     tool_arguments=arguments)

    def completion(self) -> Completion:
        count = max([self.n - 1, *self.texts, *self.calls, *self.finish]) + 1
        choices = []
        for i in range(count):
            calls = []
            for index in sorted(self.calls.get(i, {})):
                call = self.calls[i][index]
                if not call["name"]:
                    raise ModelError(f"the server streamed tool call #{index} without a function name")
                calls.append(ToolCall(call["id"], call["name"], "".join(call["arguments"])))
            choices.append(Choice("".join(self.texts.get(i, [])), calls, self.finish.get(i)))
        return Completion(choices, self.usage, self.model)


def _usage_from_api(usage: Any) -> Usage:
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
    return Usage(prompt, completion, total)


def deltas_of(completion: Completion) -> list[Delta]:
    """The Deltas that replay a whole completion (non-streamed answers and cache hits)."""
    deltas = []
    for i, choice in enumerate(completion.choices):
        if choice.text:
            deltas.append(Delta(text=choice.text, choice=i))
        for index, call in enumerate(choice.tool_calls):
            deltas.append(Delta(choice=i, tool_index=index, tool_id=call.id, tool_name=call.name,
                                tool_arguments=call.arguments_json))
    return deltas


def completion_to_json(completion: Completion) -> dict:
    """What the cache stores: choices (text, tool calls, finish reason) and usage."""
    usage = completion.usage
    return {"model": completion.model,
            "choices": [{"text": c.text, "finish_reason": c.finish_reason, "stop_text": c.stop_text,
                         "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments_json}
                                        for t in c.tool_calls]} for c in completion.choices],
            "usage": None if usage is None else {"prompt_tokens": usage.prompt_tokens,
                                                 "completion_tokens": usage.completion_tokens,
                                                 "total_tokens": usage.total_tokens, "estimated": usage.estimated}}


def completion_from_json(data: dict, *, cached: bool) -> Completion:
    choices = [Choice(c.get("text", ""),
                      [ToolCall(t["id"], t["name"], t["arguments"]) for t in c.get("tool_calls", [])],
                      c.get("finish_reason"), c.get("stop_text")) for c in data.get("choices", [])]
    usage = Usage(**data["usage"]) if data.get("usage") else None
    return Completion(choices, usage, data.get("model"), cached=cached)


class OpenAI(Model):
    """A chat model behind the OpenAI API or an OpenAI-compatible server.

    ``OpenAI("gpt-4o-mini")`` uses ``OPENAI_API_KEY``; ``OpenAI("qwen", base_url="http://127.0.0.1:8000/v1")`` talks to
    a local server (no key needed). ``cache=True`` (or a path / RequestCache) replays deterministic requests
    (temperature 0 or a seed, n == 1) from a sqlite cache. Other keyword arguments are sent with every request
    (``extra_body={...}``, ``extra_headers={...}`` go to the SDK as such).
    """

    chat = True
    text = False
    supports_prefill = False
    can_constrain = False

    def __init__(self, model: str, *, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 client: Any = None, timeout: Optional[float] = None, max_retries: int = 2,
                 cache: Union[bool, str, Path, "RequestCache"] = False, context_window: Optional[int] = None,
                 select_with_tools: bool = True, **default_params: Any) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"OpenAI(model=...) needs a model name such as 'gpt-4o-mini', got {model!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        for key in RESERVED_PARAMS:
            if key in default_params:
                raise ValueError(f"OpenAI(...) sets {key!r} itself: remove {key}= from the keyword arguments")
        self.name = model
        self.model = model
        self.select_with_tools = select_with_tools
        self.max_retries = max_retries
        self.timeout = timeout
        self.default_params = dict(default_params)
        self.context_window = context_window if context_window is not None else tokens.context_window(model)
        self._given_client: Any = None  # an AsyncOpenAI passed in: used as is on the first loop that runs it
        self._given_loop: Optional[weakref.ref] = None
        self._organization: Optional[str] = None
        self._project: Optional[str] = None
        if client is not None:
            if base_url is not None or api_key is not None:
                raise ValueError("pass either client= or base_url=/api_key=, not both (the client already has them)")
            import openai as openai_sdk
            if not isinstance(client, (openai_sdk.AsyncOpenAI, openai_sdk.OpenAI)):
                raise TypeError(f"client= must be an openai.OpenAI or openai.AsyncOpenAI, got {type(client).__name__}")
            if isinstance(client, openai_sdk.AsyncOpenAI):
                self._given_client = client
            base_url = str(client.base_url)
            api_key = client.api_key if isinstance(client.api_key, str) else None
            self._organization = client.organization
            self._project = client.project
            if timeout is None and isinstance(client.timeout, (int, float)):
                self.timeout = float(client.timeout)
            self.max_retries = client.max_retries
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or (LOCAL_API_KEY if base_url else None)
        if api_key is None:
            raise ModelError(f"OpenAI({model!r}) has no API key: set the OPENAI_API_KEY environment variable, pass "
                             f"api_key=..., or pass base_url= for a local OpenAI-compatible server")
        self._base_url = base_url
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.__api_key = api_key  # name-mangled and never in repr, logs, errors or cache keys
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai_sdk.AsyncOpenAI]" = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._cache = self._open_cache(cache)

    def __repr__(self) -> str:
        return f"OpenAI({self.model!r}, base_url={self.base_url!r})"

    @staticmethod
    def _open_cache(cache: Any) -> Optional["RequestCache"]:
        from ..cache import RequestCache
        if cache is False or cache is None:
            return None
        if cache is True:
            return RequestCache()
        if isinstance(cache, RequestCache):
            return cache
        if isinstance(cache, (str, Path)):
            return RequestCache(cache)
        raise TypeError(f"cache= must be True/False, a path, or a RequestCache, got {type(cache).__name__}")

    # ---- clients ----------------------------------------------------------------------------------------------
    def _client(self) -> "openai_sdk.AsyncOpenAI":
        """The AsyncOpenAI client for the running event loop (created on first use in that loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._given_client is not None:
                if self._given_loop is None:
                    self._given_loop = weakref.ref(loop)
                if self._given_loop() is loop:
                    return self._given_client
            client = self._clients.get(loop)
            if client is None:
                # a client's connections reference its loop, so entries of closed loops are dropped by hand
                for old_loop in [old for old in self._clients.keys() if old.is_closed()]:
                    del self._clients[old_loop]
                client = self._clients[loop] = self._new_client()
            return client

    def _new_client(self) -> "openai_sdk.AsyncOpenAI":
        import openai as openai_sdk
        kwargs: dict[str, Any] = {"api_key": self.__api_key, "max_retries": self.max_retries,
                                  "organization": self._organization, "project": self._project}
        if self._base_url is not None:
            kwargs["base_url"] = self._base_url
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return openai_sdk.AsyncOpenAI(**kwargs)

    async def aclose(self) -> None:
        """Close the clients this model created for the running loop and for loops that have closed.

        Clients of other loops that are still running belong to those loops and are left to them; a client passed as
        ``client=`` belongs to the caller and stays open. The model stays usable: the next request makes a new client.
        """
        current = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(current, None)
            for old_loop in [old for old in self._clients.keys() if old.is_closed()]:
                del self._clients[old_loop]
        if client is not None:
            await client.close()

    # ---- request body ---------------------------------------------------------------------------------------
    def request_body(self, request: GenRequest) -> dict:
        """The JSON body sent for ``request`` (without the streaming keys); raises ModelError for requests a chat
        model can't serve."""
        if not request.chat:
            raise ModelError(TEXT_MODE_MESSAGE)
        if request.prefill:
            raise ModelError(PREFILL_MESSAGE)
        params, extra_body = self._body_params(request)
        body: dict[str, Any] = {"model": params.pop("model", self.model),
                                "messages": normalize_messages(request.messages or [])}
        body.update(params)
        stops = [s for s in (request.stop or []) if s]
        if stops:
            body["stop"] = stops[:MAX_STOP_SEQUENCES]  # the interpreter also enforces every stop client-side
        if request.max_tokens is not None:
            body["max_completion_tokens" if _is_reasoning_model(body["model"]) else "max_tokens"] = request.max_tokens
        for key in ("temperature", "top_p", "seed"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.n != 1:
            body["n"] = request.n
        schemas = request.tool_schemas()
        if schemas:
            body["tools"] = schemas
            choice = tool_choice_param(request.tool_choice, schemas)
            if choice is not None:
                body["tool_choice"] = choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        elif request.tool_choice not in (None, "none", "auto"):
            raise ModelError(f"tool_choice={request.tool_choice!r} needs tools: pass tools=[...] to gen")
        elif request.options and self.select_with_tools:
            body["tools"] = [select_tool(request.options)]
            body["tool_choice"] = {"type": "function", "function": {"name": SELECT_TOOL}}
        body.update(extra_body)
        return body

    reserved_params: tuple[str, ...] = RESERVED_PARAMS

    def _body_params(self, request: GenRequest) -> tuple[dict, dict]:
        """The model's default parameters overlaid with the gen's extra arguments, split into body parameters and
        ``extra_body`` (SDK-only options removed); a parameter the backend sets itself is refused."""
        params = {**self.default_params, **(request.extra or {})}
        for key in self.reserved_params:
            if key in params:
                raise ModelError(f"gen sets {key!r} itself: remove {key}= from the gen arguments")
        extra_body = params.pop("extra_body", None) or {}
        for key in SDK_OPTIONS:
            params.pop(key, None)
        return params, extra_body

    def _sdk_options(self, request: GenRequest) -> dict:
        params = {**self.default_params, **(request.extra or {})}
        return {key: params[key] for key in SDK_OPTIONS if params.get(key)}

    def _prompt_tokens(self, body: dict) -> int:
        """Estimated prompt size of a request body (messages plus tool definitions)."""
        prompt = tokens.count_message_tokens(body["messages"], self.model)
        if body.get("tools"):
            prompt += tokens.count_tokens(json.dumps(body["tools"]), self.model)
        return prompt

    def _check_context(self, body: dict) -> None:
        if not self.context_window:
            return
        prompt = self._prompt_tokens(body)
        reserved = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if prompt + reserved > self.context_window:
            raise ModelError(f"the request needs about {prompt + reserved} tokens (prompt ~{prompt} + max_tokens "
                             f"{reserved}) but {self.model!r} has a context window of {self.context_window}: shorten "
                             f"the conversation, lower max_tokens, or pass context_window= if the model allows more")

    # ---- generation -----------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        body = self.request_body(request)
        options = self._sdk_options(request)
        calls = self._streamed(body, options) if request.stream else self._plain(body, options)
        selecting = bool(request.options) and any(t["function"]["name"] == SELECT_TOOL and not request.tools
                                                  for t in body.get("tools", ()))
        async for item in self._serve(body, calls):
            if isinstance(item, Completion) and request.tools:
                check_forced_calls(request.tool_choice, item, self.base_url or DEFAULT_BASE_URL)
            if not selecting:
                yield item
            elif isinstance(item, Completion):
                for index, choice in enumerate(item.choices):
                    _select_from_call(choice)
                    if choice.text:
                        yield Delta(text=choice.text, choice=index)
                yield item
            elif item.tool_index is None:  # a server that ignored the forced call answers in text
                yield item

    async def _serve(self, body: dict, calls: AsyncIterator[Union[Delta, Completion]]
                     ) -> AsyncIterator[Union[Delta, Completion]]:
        """Context check, cache lookup/replay, usage estimate and cache write around one HTTP exchange
        (``calls`` is only started on a cache miss)."""
        self._check_context(body)
        cache_key = None
        if self._cache is not None and (body.get("temperature") == 0 or body.get("seed") is not None) \
                and body.get("n", 1) == 1:
            key_body = {k: v for k, v in body.items() if k not in TRANSPORT_KEYS}
            cache_key = self._cache.key(key_body, self.base_url)
            stored = self._cache.get(cache_key)
            if stored is not None:
                await calls.aclose()  # type: ignore[attr-defined]
                completion = completion_from_json(stored, cached=True)
                for delta in deltas_of(completion):
                    yield delta
                yield completion
                return
        async for item in calls:
            if isinstance(item, Completion):
                if item.usage is None:
                    item.usage = self._estimate_usage(body, item)
                if cache_key is not None:
                    self._cache.put(cache_key, completion_to_json(item))  # before yielding: callers may stop here
            yield item

    def _stream_dropped(self, err: BaseException, received: int, drops: int) -> float:
        """After a stream broke: raise when output had already arrived (it can't be taken back) or retries are used
        up; otherwise return how long to wait before sending the request again."""
        if received:
            raise ModelError(f"the server closed the stream after {received} characters "
                             f"({type(err.__cause__).__name__ if err.__cause__ else 'connection error'}): the "
                             f"answer is incomplete; run again or check the server's logs") from err
        if drops >= self.max_retries:
            raise ModelError(f"the server at {self.base_url} closed the stream before sending any output, "
                             f"{drops + 1} time(s): check the server's logs, or raise max_retries") from err
        return min(0.05 * 2 ** (drops + 1), 2.0)

    def _explain(self, err: BaseException) -> ModelError:
        return explain_error(err, model=self.model, base_url=self.base_url, api_key=self.__api_key,
                             max_retries=self.max_retries)

    async def _plain(self, body: dict, options: dict) -> AsyncIterator[Union[Delta, Completion]]:
        import openai as openai_sdk
        rest = {k: v for k, v in body.items() if k not in ("model", "messages")}
        try:
            response = await self._client().chat.completions.create(
                model=body["model"], messages=body["messages"], stream=False, extra_body=rest, **options)
        except openai_sdk.OpenAIError as err:
            raise self._explain(err) from err
        choices = []
        for choice in response.choices or []:
            message = choice.message
            calls = []
            for index, call in enumerate(getattr(message, "tool_calls", None) or []):
                function = call.function
                calls.append(ToolCall(getattr(call, "id", None) or "", function.name,
                                      getattr(function, "arguments", None) or ""))
            choices.append(Choice(getattr(message, "content", None) or "", calls, choice.finish_reason))
        usage = _usage_from_api(response.usage) if getattr(response, "usage", None) else None
        completion = Completion(choices or [Choice()], usage, getattr(response, "model", None))
        for delta in deltas_of(completion):
            yield delta
        yield completion

    async def _streamed(self, body: dict, options: dict) -> AsyncIterator[Union[Delta, Completion]]:
        """Stream one call; a stream that breaks before any content is retried (up to ``max_retries``)."""
        import openai as openai_sdk
        rest = {k: v for k, v in body.items() if k not in ("model", "messages")}
        rest["stream_options"] = {"include_usage": True}
        drops = 0
        while True:
            try:
                stream = await self._client().chat.completions.create(
                    model=body["model"], messages=body["messages"], stream=True, extra_body=rest, **options)
            except openai_sdk.OpenAIError as err:
                raise self._explain(err) from err
            accumulator = _StreamAccumulator(int(body.get("n", 1)))
            try:
                async with stream:
                    async for chunk in stream:
                        for delta in accumulator.feed(chunk):
                            yield delta
            except openai_sdk.APIConnectionError as err:
                delay = self._stream_dropped(err, accumulator.characters, drops)
                drops += 1
                await asyncio.sleep(delay)
                continue
            except openai_sdk.OpenAIError as err:
                raise self._explain(err) from err
            yield accumulator.completion()
            return

    def _estimate_usage(self, body: dict, completion: Completion) -> Usage:
        """Token counts with tiktoken when the server reported none."""
        prompt = tokens.count_message_tokens(body["messages"], self.model)
        generated = "".join(c.text + "".join(t.name + t.arguments_json for t in c.tool_calls)
                            for c in completion.choices)
        output = tokens.count_tokens(generated, self.model)
        return Usage(prompt, output, prompt + output, estimated=True)
