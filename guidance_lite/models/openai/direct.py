"""Plain (non-streamed) requests posted straight over aiohttp, with the SDK's retry policy and error types.

Why: for a batch at concurrency 100 the client is CPU-bound, and about half of its CPU per program went to the openai
SDK's request machinery and httpx's request/response models wrapped around an aiohttp call that costs a seventh of
it (``benchmarks/RESULTS.md``, "What limits the missed targets"). :class:`DirectPoster` sends the body as JSON over
one ``aiohttp.ClientSession`` per event loop and returns the answer's status, headers and bytes; everything users
see stays as the SDK makes it:

- retries: up to ``max_retries`` on connection errors, timeouts and 408/409/429/5xx (a server's ``x-should-retry``
  decides first), waiting as ``retry-after-ms``/``retry-after`` say (up to a minute) or with the SDK's jittered
  exponential backoff;
- errors: the SDK's own exceptions (``APIStatusError`` subclasses built by the SDK client from the answer,
  ``APITimeoutError``/``APIConnectionError`` caused by the httpx exception the SDK's aiohttp transport would have
  raised), so ``errors.explain_error`` words them as before; a body over ``max_response_bytes`` is that ModelError;
- headers: the SDK client's (Authorization, User-Agent, platform, organization/project, default headers), plus the
  request's ``extra_headers`` and its retry count.

The SDK client of the loop is kept for its headers, its base URL and, on the error path only, to build its errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from ..timeouts import Timeout
from .http import DEFAULT_CONNECTIONS, too_large
from .plain import http_library

# the SDK's retry timing (openai/_constants.py)
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER_DELAY = 60.0
READ_SIZE = 64 * 1024


@dataclass
class Answer:
    """What the server sent back to a plain request that succeeded (status < 400)."""

    status: int
    headers: Mapping[str, str]
    content: bytes


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds the server asks to wait (``retry-after-ms``, then ``retry-after`` as seconds or an HTTP date), as the
    SDK reads them; None when it says nothing readable."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in ("inf", "+inf", "infinity", "+infinity"):
            return MAX_RETRY_AFTER_DELAY + 1
        return delay / divisor
    try:
        date = email.utils.parsedate_tz(headers.get("retry-after"))
        if date is None:
            return None
        return float(email.utils.mktime_tz(date) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the SDK would send a request again after this status (408, 409, 429, 5xx; ``x-should-retry`` and a
    ``retry-after`` longer than a minute decide first)."""
    wait = retry_after(headers)
    if wait is not None and math.isfinite(wait) and wait > MAX_RETRY_AFTER_DELAY:
        return False
    said = headers.get("x-should-retry")
    if said == "true":
        return True
    if said == "false":
        return False
    return status in (408, 409, 429) or status >= 500


def retry_delay(max_retries: int, remaining: int, headers: Optional[Mapping[str, str]]) -> float:
    """How long the SDK waits before the next attempt: what the server asked (0-60 s), else exponential backoff
    with up to 25% jitter."""
    wait = retry_after(headers) if headers is not None else None
    if wait is not None and math.isfinite(wait) and 0 < wait <= MAX_RETRY_AFTER_DELAY:
        return wait
    tries = min(max_retries - remaining, 1000)
    return max(min(INITIAL_RETRY_DELAY * 2.0**tries, MAX_RETRY_DELAY) * (1 - 0.25 * random.random()), 0.0)


def httpx_error_for(err: BaseException) -> Optional[type]:
    """The httpx exception the SDK's aiohttp transport turns an aiohttp exception into (the most specific one), so a
    failure reads as it did over the SDK (``errors.explain_timeout`` names the timeout by it)."""
    import aiohttp

    httpx = http_library()
    table = {
        aiohttp.ServerTimeoutError: httpx.TimeoutException,
        aiohttp.SocketTimeoutError: httpx.ReadTimeout,
        aiohttp.ClientConnectionError: httpx.ConnectTimeout,
        aiohttp.ClientConnectorError: httpx.ConnectError,
        aiohttp.ClientPayloadError: httpx.ReadError,
        aiohttp.ClientProxyConnectionError: httpx.ProxyError,
        aiohttp.ClientHttpProxyError: httpx.ProxyError,
        aiohttp.NonHttpUrlClientError: httpx.UnsupportedProtocol,
        aiohttp.InvalidUrlClientError: httpx.UnsupportedProtocol,
    }
    chosen: Optional[type] = None
    for source, target in table.items():
        if isinstance(err, source) and (chosen is None or issubclass(target, chosen)):
            chosen = target
    return chosen


def env_proxy(url: str) -> tuple[Any, Any]:
    """The proxy (and its credentials) the environment's ``HTTP(S)_PROXY``/``NO_PROXY`` name for ``url``, as httpx
    under the SDK would use it; looked up once per session (aiohttp's ``trust_env`` would do it per request)."""
    import aiohttp.helpers
    import yarl

    try:
        return aiohttp.helpers.get_env_proxy_for_url(yarl.URL(url))
    except LookupError:
        return None, None


class DirectPoster:
    """Plain requests of one transport on one event loop: one aiohttp session (a pool of ``connections``, all kept
    alive) and the loop's SDK client (headers, base URL, status errors)."""

    def __init__(
        self,
        sdk_client: Any,
        *,
        server: str,
        timeout: Timeout,
        max_retries: int,
        max_bytes: int,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        import aiohttp

        def limit(seconds: float) -> Optional[float]:
            return None if math.isinf(seconds) else seconds

        self.sdk = sdk_client
        self.server = server
        self.max_retries = max_retries
        self.max_bytes = max_bytes
        self.base = str(sdk_client.base_url)  # ends in "/" (the SDK enforces it)
        headers = {**sdk_client.auth_headers, **sdk_client.default_headers}
        self.headers = {name: value for name, value in headers.items() if isinstance(value, str)}  # Omit() dropped
        if not math.isinf(timeout.read):
            self.headers["x-stainless-read-timeout"] = str(float(timeout.read))
        self.query = {k: v for k, v in sdk_client.default_query.items() if isinstance(v, (str, int, float))}
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=limit(timeout.read), sock_connect=limit(timeout.connect), sock_read=limit(timeout.read)
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
            json_serialize=json.dumps,
            skip_auto_headers=("User-Agent",),
        )
        self.proxy, self.proxy_auth = env_proxy(self.base)

    async def close(self) -> None:
        await self.session.close()
        await self.sdk.close()

    async def post(
        self, path: str, body: dict, extra_headers: Optional[Mapping[str, str]], extra_query: Optional[Mapping]
    ) -> Answer:
        """POST ``body`` to ``path`` (below the base URL) with the SDK's retries; the answer of a status below 400,
        or the SDK's exception for what went wrong."""
        import openai as openai_sdk

        url = self.base + path.lstrip("/")
        data = json.dumps(body).encode()
        query = {**self.query, **extra_query} if extra_query else self.query
        for retries_taken in range(self.max_retries + 1):
            remaining = self.max_retries - retries_taken
            headers = {**self.headers, "x-stainless-retry-count": str(retries_taken)}
            if extra_headers:
                headers.update(extra_headers)
            try:
                status, answer_headers, content = await self._send(url, data, headers, query)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                mapped = httpx_error_for(err)
                if mapped is None:
                    raise
                if remaining > 0:
                    await asyncio.sleep(retry_delay(self.max_retries, remaining, None))
                    continue
                request = self._request(url, headers, data)
                cause = mapped(str(err))
                cause.__cause__ = err
                if issubclass(mapped, http_library().TimeoutException):
                    raise openai_sdk.APITimeoutError(request=request) from cause
                raise openai_sdk.APIConnectionError(request=request) from cause
            if status < 400:
                return Answer(status, answer_headers, content)
            if remaining > 0 and should_retry(status, answer_headers):
                await asyncio.sleep(retry_delay(self.max_retries, remaining, answer_headers))
                continue
            raise self._status_error(url, headers, data, status, answer_headers, content)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def _send(
        self, url: str, data: bytes, headers: dict[str, str], query: Mapping
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with self.session.post(
            url,
            data=data,
            headers=headers,
            params=query or None,
            timeout=self.timeout,
            proxy=self.proxy,
            proxy_auth=self.proxy_auth,
        ) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes and not response.headers.get("content-encoding"):
                raise too_large(self.server, self.max_bytes)
            pieces = []
            received = 0
            async for piece in response.content.iter_chunked(READ_SIZE):
                received += len(piece)
                if received > self.max_bytes:
                    raise too_large(self.server, self.max_bytes, received)
                pieces.append(piece)
            return response.status, response.headers, b"".join(pieces)

    def _request(self, url: str, headers: Mapping[str, str], data: bytes) -> Any:
        return http_library().Request("POST", url, headers=dict(headers), content=data)

    def _status_error(
        self, url: str, headers: Mapping[str, str], data: bytes, status: int, answer: Mapping[str, str], content: bytes
    ) -> BaseException:
        """The SDK's own status error for this answer (the SDK client builds it from an httpx response)."""
        raw = [(name, value) for name, value in answer.items() if name.lower() != "content-encoding"]
        response = http_library().Response(
            status_code=status, headers=raw, content=content, request=self._request(url, headers, data)
        )
        return self.sdk._make_status_error_from_response(response)


__all__ = ["Answer", "DirectPoster", "env_proxy", "retry_after", "retry_delay", "should_retry"]
