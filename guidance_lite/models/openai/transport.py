"""One OpenAI-compatible server as both OpenAI backends reach it: clients, retries, errors, usage and the cache.

Built on the official ``openai`` SDK's ``AsyncOpenAI``, imported lazily so ``import guidance_lite`` stays light. An
async client is bound to the event loop it first ran on, and programs may run on a background loop (sync API) as well
as on a notebook's loop (``await program.arun()``), so one client is kept per running loop.

The chat backend (``chat.OpenAI``) and the completion backend (``models.completion.OpenAICompletion``) each own one
:class:`OpenAITransport` and hand it a request body plus a :class:`ResponseReader` that turns the endpoint's answer
into Deltas and a Completion; everything about getting that answer (and replaying it from the cache) is here,
including what keeps a misbehaving server from hanging or crashing a run: finite timeouts (``models.timeouts``), a
cap on response bytes (``http``), and checks of what came back (``malformed``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from ... import tokens
from ...cache import RequestCache, completion_from_record, completion_to_record
from ..base import Completion, Delta, ModelError, Usage
from ..timeouts import Deadline, Timeout
from .direct import DirectPoster
from .errors import LOCAL_API_KEY, explain_error, scrub_chain
from .http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    aiohttp_installed,
    capped_http_client,
    check_max_response_bytes,
    sdk_timeout,
)
from .malformed import check_body, check_calls, check_event_stream, check_finished, not_json, unreadable
from .plain import EventStream, decode, decode_body, http_response_class

if TYPE_CHECKING:  # pragma: no cover
    import openai as openai_sdk

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TRANSPORT_KEYS = ("stream", "stream_options")  # left out of cache keys: streamed and plain calls share entries
Item = Union[Delta, Completion]
# a reader meeting a shape it can't read
READER_FAULTS = (AttributeError, TypeError, KeyError, IndexError, ValueError, ArithmeticError)
UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError, RecursionError)  # the SDK could not decode what was sent


@dataclass(frozen=True)
class Endpoint:
    """An SDK resource (``client.chat.completions``) and its path (plain requests are posted there directly), the body
    key that carries its input and the choice key that carries its answer."""

    resource: str
    path: str
    input_key: str
    answer_key: str
    answer_type: str  # what the SDK calls the answer (errors quoting a plain answer name it so)


CHAT = Endpoint("chat.completions", "/chat/completions", "messages", "message", "ChatCompletion")
COMPLETIONS = Endpoint("completions", "/completions", "prompt", "text", "Completion")


class ResponseReader(Protocol):
    """Turns one endpoint's answer into Deltas and a Completion (a fresh reader per attempt)."""

    characters: int  # output received so far (a dropped stream is retried only before any)

    def feed(self, chunk: Any) -> list[Delta]:
        """One streamed chunk -> the Deltas it makes certain."""

    def finish(self) -> list[Delta]:
        """The stream ended: Deltas held back until now."""

    def completion(self) -> Completion:
        """The streamed answer, complete."""

    def read(self, response: Any) -> Completion:
        """A non-streamed answer."""


def _token_count(value: Any) -> int:
    """A count the server reported, or 0 for one that is not a finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        return 0
    return int(value)


def usage_from_api(usage: Any) -> Usage:
    """The SDK's usage object as our Usage (total filled in when the server left it out; counts that are not
    numbers read as 0)."""
    prompt = _token_count(getattr(usage, "prompt_tokens", 0))
    completion = _token_count(getattr(usage, "completion_tokens", 0))
    total = _token_count(getattr(usage, "total_tokens", 0)) or prompt + completion
    return Usage(prompt, completion, total)


def deltas_of(completion: Completion) -> list[Delta]:
    """The Deltas that replay a whole completion (non-streamed answers and cache hits)."""
    deltas = []
    for i, choice in enumerate(completion.choices):
        if choice.text:
            deltas.append(Delta(text=choice.text, choice=i))
        for index, call in enumerate(choice.tool_calls):
            deltas.append(
                Delta(
                    choice=i, tool_index=index, tool_id=call.id, tool_name=call.name, tool_arguments=call.arguments_json
                )
            )
    return deltas


def open_cache(cache: Any) -> Optional[RequestCache]:
    """``cache=`` of the OpenAI backends: True (the default file), a path, a RequestCache, or False/None."""
    if cache is False or cache is None:
        return None
    if cache is True:
        return RequestCache()
    if isinstance(cache, RequestCache):
        return cache
    if isinstance(cache, (str, Path)):
        return RequestCache(cache)
    raise TypeError(f"cache= must be True/False, a path, or a RequestCache, got {type(cache).__name__}")


async def _close_at_shutdown(client: Any) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its event loop shuts down: ``asyncio.run`` (and every loop runner) closes the async
    generators still suspended in a loop before closing it, which runs this ``finally`` on that loop. Why: the
    aiohttp transport's session warns "Unclosed client session" when it is collected unclosed, and programs are not
    asked to close their models."""
    try:
        yield
    finally:
        await client.close()


def _close_clients(*tables: weakref.WeakKeyDictionary) -> None:
    """When a transport is collected (or at exit): close its clients on their loops that still run (the sync API's
    background loop), so that no "Unclosed client session" is reported; waits briefly unless called on that loop."""
    try:
        current: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for table in tables:
        for loop, client in list(table.items()):
            if loop.is_closed() or not loop.is_running():
                continue
            closing = asyncio.run_coroutine_threadsafe(client.close(), loop)
            if loop is not current:
                try:
                    closing.result(timeout=2)
                except Exception:  # a client that fails to close is left to the collector
                    pass


class OpenAITransport:
    """The connection to one OpenAI-compatible server for one model name.

    ``client=`` (an ``openai.OpenAI`` or ``AsyncOpenAI``) or ``base_url=``/``api_key=`` (defaults from
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``; local servers need no key). The API key is kept name-mangled and never
    appears in repr, logs, errors (nor the exceptions chained to them) or cache keys. ``owner`` names the backend in
    configuration errors. ``timeout`` (a ``Timeout`` or a number of seconds; None: the defaults) and
    ``max_response_bytes`` bound every request; an ``AsyncOpenAI`` passed as ``client=`` keeps its own HTTP
    settings, so there only ``total`` applies (and a sync client's numeric timeout is adopted).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        client: Any = None,
        timeout: Union[Timeout, float, None] = None,
        max_retries: int = 2,
        cache: Any = False,
        owner: str = "OpenAI",
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.model = model
        self.max_retries = max_retries
        self.timeout = Timeout.of(timeout)
        self._timeout_given = timeout is not None
        self.max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._given_client: Any = None  # an AsyncOpenAI passed in: used as is on the first loop that runs it
        self._given_loop: Optional[weakref.ref] = None
        self._organization: Optional[str] = None
        self._project: Optional[str] = None
        if client is not None:
            base_url, api_key = self._adopt(client, base_url, api_key)
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or (LOCAL_API_KEY if base_url else None)
        if api_key is None:
            raise ModelError(
                f"{owner}({model!r}) has no API key: set the OPENAI_API_KEY environment variable, pass "
                f"api_key=..., or pass base_url= for a local OpenAI-compatible server"
            )
        self._base_url = base_url
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.__api_key = api_key
        self.clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai_sdk.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        # per loop, an async generator that closes the loop's client when the loop shuts down (see _close_at_shutdown)
        self.stream_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, openai_sdk.AsyncOpenAI] = (
            weakref.WeakKeyDictionary()
        )
        # per loop, the poster of plain requests straight over aiohttp (see ``direct``); None: they go through the SDK
        self.posters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DirectPoster] = weakref.WeakKeyDictionary()
        self._direct = client is None and aiohttp_installed()  # a client passed in keeps its own HTTP settings
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[AsyncGenerator[None, None], asyncio.Future]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        weakref.finalize(self, _close_clients, self.clients, self.stream_clients, self.posters)
        self.cache = open_cache(cache)
        self._program_cache: Optional[RequestCache] = None  # opened for programs run with caching=True

    def _adopt(self, client: Any, base_url: Optional[str], api_key: Optional[str]) -> tuple[str, Optional[str]]:
        """Take the settings of a client passed in (and the client itself if it is async)."""
        if base_url is not None or api_key is not None:
            raise ValueError("pass either client= or base_url=/api_key=, not both (the client already has them)")
        import openai as openai_sdk

        if not isinstance(client, (openai_sdk.AsyncOpenAI, openai_sdk.OpenAI)):
            raise TypeError(f"client= must be an openai.OpenAI or openai.AsyncOpenAI, got {type(client).__name__}")
        if isinstance(client, openai_sdk.AsyncOpenAI):
            self._given_client = client
        self._organization = client.organization
        self._project = client.project
        if not self._timeout_given and isinstance(client.timeout, (int, float)):
            self.timeout = Timeout.of(float(client.timeout))
        self.max_retries = client.max_retries
        return str(client.base_url), client.api_key if isinstance(client.api_key, str) else None

    # ---- clients ------------------------------------------------------------------------------------------------
    def client(self, *, streamed: bool = False) -> openai_sdk.AsyncOpenAI:
        """The AsyncOpenAI client for the running event loop (created on first use in that loop): for streamed
        requests one over httpx, for plain ones one over aiohttp where it is installed (see ``http``)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._given_client is not None:
                if self._given_loop is None:
                    self._given_loop = weakref.ref(loop)
                if self._given_loop() is loop:
                    return self._given_client
            table = self.stream_clients if streamed else self.clients
            client = table.get(loop)
            if client is None:
                # a client's connections reference its loop, so entries of closed loops are dropped by hand
                self._forget_closed_loops()
                client = table[loop] = self._new_client(fastest=not streamed)
                closer = _close_at_shutdown(client)
                started = asyncio.ensure_future(closer.__anext__())  # runs it up to its yield
                self._closers.setdefault(loop, []).append((closer, started))
            return client

    def poster(self) -> Optional[DirectPoster]:
        """The poster of plain requests for the running loop (made on first use), or None when plain requests go
        through the SDK (aiohttp not installed, or a client passed as ``client=``)."""
        if not self._direct:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            poster = self.posters.get(loop)
            if poster is None:
                self._forget_closed_loops()
                poster = self.posters[loop] = DirectPoster(
                    self._new_client(fastest=False),
                    server=self.where,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                    max_bytes=self.max_response_bytes,
                )
                closer = _close_at_shutdown(poster)
                started = asyncio.ensure_future(closer.__anext__())  # runs it up to its yield
                self._closers.setdefault(loop, []).append((closer, started))
            return poster

    def _forget_closed_loops(self) -> None:
        for table in (self.clients, self.stream_clients, self.posters, self._closers):
            for old_loop in [old for old in table if old.is_closed()]:
                del table[old_loop]

    def _new_client(self, *, fastest: bool) -> openai_sdk.AsyncOpenAI:
        import openai as openai_sdk

        kwargs: dict[str, Any] = {
            "api_key": self.__api_key,
            "max_retries": self.max_retries,
            "organization": self._organization,
            "project": self._project,
            "timeout": sdk_timeout(self.timeout),
            "http_client": capped_http_client(self.where, self.max_response_bytes, fastest=fastest),
        }
        if self._base_url is not None:
            kwargs["base_url"] = self._base_url
        return openai_sdk.AsyncOpenAI(**kwargs)

    async def aclose(self) -> None:
        """Close the clients made for the running loop and for loops that have closed.

        Clients of other loops that are still running belong to those loops and are left to them; a client passed as
        ``client=`` belongs to the caller and stays open. The transport stays usable: the next call makes a new client.
        """
        current = asyncio.get_running_loop()
        with self._lock:
            self.clients.pop(current, None)
            self.stream_clients.pop(current, None)
            self.posters.pop(current, None)
            closers = self._closers.pop(current, [])
            self._forget_closed_loops()
        for closer, started in closers:
            await started
            await closer.aclose()  # closes its client

    @property
    def where(self) -> str:
        """The server and model, as errors about their answers name them."""
        return f"the server at {self.base_url} (model {self.model!r})"

    def explain(self, err: BaseException, received: int = 0, retried: bool = True) -> ModelError:
        """An SDK error as a ModelError that says what to change, caused by ``err`` with the API key scrubbed from
        its whole chain (``received``, ``retried``: see ``explain_error``)."""
        explained = explain_error(
            err,
            model=self.model,
            base_url=self.base_url,
            api_key=self.__api_key,
            max_retries=self.max_retries,
            timeout=self.timeout,
            received=received,
            retried=retried,
        )
        return self.caused(explained, err)

    def caused(self, failure: ModelError, cause: BaseException) -> ModelError:
        """``failure`` with ``cause`` chained to it, the API key scrubbed from the cause's whole chain. Raise the
        result outside the ``except`` block that caught ``cause``, so nothing unscrubbed is chained implicitly."""
        failure.__cause__ = scrub_chain(cause, self.__api_key)
        return failure

    def _total_timeout(self) -> ModelError:
        return ModelError(
            f"the request to {self.base_url} took longer than its total timeout ({self.timeout.total:g}s, retries "
            f"and streaming included): the server is too slow or keeps sending; pass "
            f"timeout=gl.models.Timeout(total=...) to allow more, or lower max_tokens"
        )

    # ---- one exchange -------------------------------------------------------------------------------------------
    async def serve(
        self,
        body: dict,
        exchange: Callable[[], AsyncIterator[Item]],
        prompt_tokens: Callable[[dict], int],
        *,
        caching: Optional[bool] = None,
    ) -> AsyncIterator[Item]:
        """Cache lookup/replay, usage estimate and cache write around one exchange (started only on a cache miss).

        Deterministic requests (temperature 0 or a seed, one choice) are cached, keyed by the body without its
        streaming keys and by the server; ``caching`` is the program's choice (None: this transport's ``cache=``).
        When the server reports no usage it is estimated with tiktoken: ``prompt_tokens(body)`` plus the generated
        text and calls. Every ModelError leaves without the API key."""
        cache = self._cache_for(caching)
        cache_key = None
        if (
            cache is not None
            and (body.get("temperature") == 0 or body.get("seed") is not None)
            and body.get("n", 1) == 1
        ):
            cache_key = cache.key({k: v for k, v in body.items() if k not in TRANSPORT_KEYS}, self.base_url)
            stored = cache.get(cache_key)
            if stored is not None:
                completion = completion_from_record(stored, cached=True)
                for delta in deltas_of(completion):
                    yield delta
                yield completion
                return
        try:
            async for item in exchange():
                if isinstance(item, Completion):
                    if item.usage is None:
                        item.usage = self._estimated_usage(prompt_tokens(body), item)
                    if cache is not None and cache_key is not None:  # stored before yielding: callers may stop
                        cache.put(cache_key, completion_to_record(item))
                yield item
        except ModelError as err:  # its message may quote the server, which may have echoed the key
            scrub_chain(err, self.__api_key)
            raise

    def _cache_for(self, caching: Optional[bool]) -> Optional[RequestCache]:
        """The cache a request uses: none when the program says ``caching=False``; with ``caching=True`` this
        transport's, or the default cache file when it was made without one (opened on first use)."""
        if caching is False:
            return None
        if caching is True and self.cache is None:
            with self._lock:
                if self._program_cache is None:
                    self._program_cache = open_cache(True)
            return self._program_cache
        return self.cache

    def _estimated_usage(self, prompt: int, completion: Completion) -> Usage:
        generated = "".join(
            c.text + "".join(t.name + t.arguments_json for t in c.tool_calls) for c in completion.choices
        )
        output = tokens.count_tokens(generated, self.model)
        return Usage(prompt, output, prompt + output, estimated=True)

    async def exchange(
        self, endpoint: Endpoint, body: dict, options: dict, *, stream: bool, new_reader: Callable[[], ResponseReader]
    ) -> AsyncIterator[Item]:
        """Send ``body`` to ``endpoint`` (``options``: SDK-only arguments such as extra_headers) and yield the answer
        read by a ``new_reader()``; a stream that breaks before any output is sent again (up to ``max_retries``).
        The whole exchange ends within ``timeout.total``; an answer that is not one (no choices, not JSON, a stream
        cut off or of the wrong content type) is a ModelError naming the server."""
        rest = {k: v for k, v in body.items() if k not in ("model", endpoint.input_key)}
        deadline = Deadline(self.timeout.total)
        if not stream:
            response = await self._post(endpoint, body, options, deadline)
            reader = new_reader()
            if isinstance(response, EventStream):  # a server that streams anyway: read as the stream it is
                for chunk in response:
                    for delta in self._read(reader.feed, chunk, "a stream chunk", chunk):
                        yield delta
                for delta in self._read(reader.finish, None, "a stream"):
                    yield delta
                completion = self._read(reader.completion, None, "a stream")
                check_finished(self.where, completion, reader.characters)
                check_calls(self.where, completion)
                yield completion
                return
            check_body(self.where, response, endpoint.answer_key)
            completion = self._read(reader.read, response, "an answer", response)
            check_calls(self.where, completion)
            for delta in deltas_of(completion):
                yield delta
            yield completion
            return
        import openai as openai_sdk

        rest["stream_options"] = {"include_usage": True}
        drops = 0
        while True:
            reader = new_reader()
            chunks = await self._create(endpoint, body, rest, True, options, deadline)
            failure: Optional[BaseException] = None
            try:
                async with chunks:
                    await check_event_stream(self.where, chunks)
                    async for chunk in chunks:
                        for delta in self._read(reader.feed, chunk, "a stream chunk", chunk):
                            yield delta
                        if deadline.passed:
                            failure = self._total_timeout()
                            break
            except openai_sdk.APITimeoutError as err:  # mid-stream: not retried (the answer may have begun)
                failure = self.explain(err, reader.characters, retried=False)
            except openai_sdk.APIConnectionError as err:
                if deadline.passed:
                    failure = self._total_timeout()
                else:
                    delay = self._stream_dropped(err, reader.characters, drops)
                    drops += 1
                    await asyncio.sleep(min(delay, deadline.remaining()))
                    continue
            except openai_sdk.OpenAIError as err:
                failure = self.explain(err, reader.characters, retried=False)
            except UNDECODABLE as err:
                failure = self.caused(not_json(self.where, err, "a stream event"), err)
            if failure is not None:
                raise failure  # outside the except blocks: nothing but the scrubbed cause is chained
            for delta in self._read(reader.finish, None, "a stream"):
                yield delta
            completion = self._read(reader.completion, None, "a stream")
            check_finished(self.where, completion, reader.characters)
            check_calls(self.where, completion)
            yield completion
            return

    def _read(self, step: Callable[..., Any], argument: Any, part: str, sent: Any = None) -> Any:
        """One reader step (``step(argument)``, or ``step()`` when ``argument`` is None); data of a shape the reader
        can't handle is a ModelError naming the server, never an AttributeError from deep inside (a reader's own
        ModelError gets the server's name too: readers don't know it)."""
        try:
            return step() if argument is None else step(argument)
        except ModelError as err:
            failure = self.caused(ModelError(f"{self.where}: {err}"), err)
        except READER_FAULTS as err:
            failure = self.caused(unreadable(self.where, err, part, sent), err)
        raise failure

    async def _post(self, endpoint: Endpoint, body: dict, options: dict, deadline: Deadline) -> Any:
        """A plain request: ``body`` posted as it is and the answer decoded into Records (``plain``); the SDK's
        retries, timeouts and status errors apply, its request transforms and response models are skipped. Straight
        over aiohttp (``direct``) where it can be, else through the SDK's ``client.post``."""
        poster = self.poster()
        if poster is not None:
            answer = await self._await(
                poster.post(
                    endpoint.path, {**body, "stream": False}, options.get("extra_headers"), options.get("extra_query")
                ),
                deadline,
            )
            try:
                return decode_body(answer.headers.get("content-type", "*"), answer.content, endpoint.answer_type)
            except UNDECODABLE as err:
                failure = self.caused(not_json(self.where, err), err)
            raise failure
        request_options: dict[str, Any] = {}
        if options.get("extra_headers"):
            request_options["headers"] = options["extra_headers"]
        if options.get("extra_query"):
            request_options["params"] = options["extra_query"]
        client: Any = self.client()
        call = client.post(
            endpoint.path, cast_to=http_response_class(), body={**body, "stream": False}, options=request_options
        )
        response = await self._await(call, deadline)
        try:
            return decode(response, endpoint.answer_type)
        except UNDECODABLE as err:
            failure = self.caused(not_json(self.where, err), err)
        raise failure

    async def _create(
        self, endpoint: Endpoint, body: dict, rest: dict, stream: bool, options: dict, deadline: Deadline
    ) -> Any:
        resource: Any = functools.reduce(getattr, endpoint.resource.split("."), self.client(streamed=stream))
        call = resource.create(
            model=body["model"],
            stream=stream,
            extra_body=rest,
            **options,
            **{endpoint.input_key: body[endpoint.input_key]},
        )
        return await self._await(call, deadline)

    async def _await(self, call: Any, deadline: Deadline) -> Any:
        """An SDK call awaited within the deadline, its failures as ModelErrors."""
        import openai as openai_sdk

        failure: BaseException
        try:
            remaining = deadline.remaining()
            return await (call if math.isinf(remaining) else asyncio.wait_for(call, remaining))
        except asyncio.TimeoutError:
            failure = self._total_timeout()
        except openai_sdk.OpenAIError as err:
            failure = self.explain(err)
        except UNDECODABLE as err:
            failure = self.caused(not_json(self.where, err), err)
        raise failure  # outside the except blocks: nothing but the scrubbed cause is chained

    def _stream_dropped(self, err: BaseException, received: int, drops: int) -> float:
        """After a stream broke: raise when output had already arrived (it can't be taken back) or retries are used
        up; otherwise return how long to wait before sending the request again."""
        scrub_chain(err, self.__api_key)
        if received:
            raise ModelError(
                f"the server closed the stream after {received} characters "
                f"({type(err.__cause__).__name__ if err.__cause__ else 'connection error'}): the "
                f"answer is incomplete; run again or check the server's logs"
            ) from err
        if drops >= self.max_retries:
            raise ModelError(
                f"the server at {self.base_url} closed the stream before sending any output, "
                f"{drops + 1} time(s): check the server's logs, or raise max_retries"
            ) from err
        return min(0.05 * 2 ** (drops + 1), 2.0)
