"""The HTTP side of a connection to an OpenAI-compatible server: the SDK's timeouts from our ``Timeout`` and a cap on
how many bytes one response may bring.

Why a cap: the SDK reads a whole non-streamed body (and a whole SSE line) into memory before anyone can look at it, so
a broken or hostile server can send gigabytes. The cap counts decoded bytes (a compressed bomb counts as what it
becomes) as they arrive and ends the request with a ModelError as soon as it is passed.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

from ..base import ModelError
from ..timeouts import Timeout

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # far above any real answer, streamed (SSE framing included) or not
DEFAULT_CONNECTIONS = 1000  # the SDK's own pool size; every one is kept alive (a batch at concurrency c reuses c)


def check_max_response_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"max_response_bytes must be a positive number of bytes, got {value!r}")
    return value


def sdk_timeout(timeout: Timeout) -> Any:
    """The SDK's (httpx's) timeout for ``timeout``: connect, and read for reads, writes and the connection pool
    (``total`` is enforced by the transport around the whole request)."""
    import openai as openai_sdk

    def limit(seconds: float) -> Optional[float]:
        return None if math.isinf(seconds) else seconds

    return openai_sdk.Timeout(
        connect=limit(timeout.connect), read=limit(timeout.read), write=limit(timeout.read), pool=limit(timeout.read)
    )


def too_large(server: str, max_bytes: int, received: Optional[int] = None) -> ModelError:
    got = f"sent {received} bytes" if received is not None else "announced a larger body"
    return ModelError(
        f"the response from {server} is larger than max_response_bytes={max_bytes} (it {got}): the server "
        f"misbehaves, or the answer really is that long — then pass a larger max_response_bytes= to the model"
    )


def _capped(read: Callable[..., AsyncIterator[bytes]], server: str, max_bytes: int) -> Callable[..., Any]:
    async def read_capped(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        received = 0
        async for piece in read(*args, **kwargs):
            received += len(piece)
            if received > max_bytes:
                raise too_large(server, max_bytes, received)
            yield piece

    return read_capped


def aiohttp_installed() -> bool:
    """Whether the SDK's aiohttp transport can be used (``aiohttp`` importable; ``openai[aiohttp]``)."""
    return importlib.util.find_spec("aiohttp") is not None


def capped_http_client(
    server: str, max_bytes: int, *, fastest: bool = False, connections: int = DEFAULT_CONNECTIONS
) -> Any:
    """An async HTTP client for the SDK, with every response body capped at ``max_bytes`` decoded bytes and a pool of
    ``connections`` connections, all kept alive; ``fastest``: over aiohttp where it is installed, else httpx.

    Why aiohttp for plain requests: under concurrency the httpx transport spends most of a request's client CPU in its
    connection pool (it scans every idle connection twice per request); the SDK's aiohttp client
    (``DefaultAioHttpClient``, the ``openai[aiohttp]`` extra) is the same httpx API over aiohttp's pool and 1.6x
    cheaper per request (``benchmarks/RESULTS.md``). Why httpx for streams: when a server resets the
    connection mid-stream, aiohttp may drop the chunks that arrived just before the reset (the answer then looks
    unstarted and is sent again); httpx hands them on, so a broken stream is reported with what it delivered."""
    import openai as openai_sdk

    async def cap(response: Any) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and not response.headers.get("content-encoding"):
            raise too_large(server, max_bytes)
        # both the SDK's stream reader and a whole-body read go through aiter_bytes (decoded bytes)
        response.aiter_bytes = _capped(response.aiter_bytes, server, max_bytes)

    limits = type(openai_sdk.DEFAULT_CONNECTION_LIMITS)(
        max_connections=connections, max_keepalive_connections=connections
    )
    if fastest and aiohttp_installed():
        return openai_sdk.DefaultAioHttpClient(event_hooks={"response": [cap]}, limits=limits)
    return openai_sdk.DefaultAsyncHttpxClient(event_hooks={"response": [cap]}, limits=limits)


__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "aiohttp_installed",
    "capped_http_client",
    "sdk_timeout",
    "too_large",
    "check_max_response_bytes",
]
