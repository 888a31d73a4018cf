"""What an ``openai`` SDK error means for the person running the program: a ModelError that says what to change.

Known server refusals (vLLM without auto tool choice, llama.cpp without --jinja) get their own advice; a timeout
says which limit fired. API keys are never part of a message, nor of any exception chained to it: ``scrub_chain``
removes them from the SDK's errors (messages, bodies, and the request objects they carry) before they are chained.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..base import ModelError
from ..timeouts import Timeout

LOCAL_API_KEY = "not-needed"  # what local OpenAI-compatible servers accept when no key is configured
VLLM_AUTO_TOOL_REFUSAL = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
LLAMACPP_TOOLS_REFUSAL = "tools param requires --jinja flag"


REDACTED = "***"


def _is_secret(secret: Optional[str]) -> bool:
    return bool(secret) and secret != LOCAL_API_KEY and len(secret or "") >= 4


def _scrub(text: str, secret: Optional[str]) -> str:
    if _is_secret(secret) and secret:
        return text.replace(secret, REDACTED)
    return text


def _scrubbed(value: Any, secret: str, depth: int = 0) -> Any:
    """``value`` with ``secret`` replaced in every string it holds (dicts, lists and tuples looked into)."""
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {_scrubbed(k, secret, depth + 1): _scrubbed(v, secret, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrubbed(v, secret, depth + 1) for v in value) if type(value) in (list, tuple) else value
    return value


def _scrub_headers(holder: Any, secret: str) -> None:
    """Redact ``secret`` in the headers of an HTTP request or response (and of a response's request)."""
    for message in (holder, getattr(holder, "_request", None)):
        headers = getattr(message, "headers", None)
        if headers is None or not hasattr(headers, "items"):
            continue
        try:
            for name, value in list(headers.items()):
                if isinstance(value, str) and (secret in value or name.lower() == "authorization"):
                    headers[name] = _scrub(value, secret) if name.lower() != "authorization" else REDACTED
        except (TypeError, AttributeError):  # read-only headers: nothing of ours to write into
            continue


def scrub_chain(err: BaseException, secret: Optional[str]) -> BaseException:
    """Remove ``secret`` from ``err`` and every exception chained to it (``__cause__`` and ``__context__``): their
    arguments, string/dict attributes (message, body), notes, and the headers of the request/response objects the
    SDK and httpx keep on them. Returns ``err`` (changed in place, so tracebacks still show where it happened)."""
    if not _is_secret(secret) or not secret:
        return err
    seen: set[int] = set()
    pending: list[Optional[BaseException]] = [err]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.args = tuple(_scrubbed(arg, secret) for arg in exc.args)
        for name, value in list(vars(exc).items()):
            if isinstance(value, (str, dict, list, tuple)):
                try:
                    setattr(exc, name, _scrubbed(value, secret))
                except (AttributeError, TypeError):
                    pass
            elif hasattr(value, "headers"):
                _scrub_headers(value, secret)
        pending += [exc.__cause__, exc.__context__]
    return err


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return getattr(err, "message", None) or str(err)


def explain_timeout(err: BaseException, *, base_url: str, timeout: Timeout, attempts: int, received: int) -> str:
    """Which of the SDK's timeouts fired (httpx names it in the chained cause), and what to raise."""
    cause = type(err.__cause__ or err.__context__).__name__
    tries = f", {attempts} attempts" if attempts > 1 else ""
    if cause == "ConnectTimeout":
        return (
            f"could not connect to {base_url} within the connect timeout ({timeout.connect:g}s{tries}): is the "
            f"server up and is base_url right? To wait longer pass timeout=gl.models.Timeout(connect=...)"
        )
    if cause in ("ReadTimeout", "WriteTimeout", "PoolTimeout"):
        phase = {"ReadTimeout": "read", "WriteTimeout": "write", "PoolTimeout": "pool"}[cause]
        after = f" after {received} characters of the answer" if received else ""
        return (
            f"the server at {base_url} sent nothing for {timeout.read:g}s{after} (the {phase} timeout{tries}): "
            f"it is overloaded or stuck; for a model that thinks longer before answering pass "
            f"timeout=gl.models.Timeout(read=...)"
        )
    return f"the request to {base_url} timed out ({timeout.describe()}{tries}): raise timeout= or lower max_tokens"


def explain_error(
    err: BaseException,
    *,
    model: str,
    base_url: str,
    api_key: Optional[str],
    max_retries: int,
    timeout: Optional[Timeout] = None,
    received: int = 0,
    retried: bool = True,
) -> ModelError:
    """Turn an ``openai`` SDK error into a ModelError that says what to change. API keys are never included, and
    are removed from ``err`` and its chain too (the ModelError is raised from it). ``received``: characters of the
    answer that had arrived; ``retried``: whether the SDK retried the request (it does not retry a broken stream)."""
    import openai as openai_sdk

    scrub_chain(err, api_key)

    said = _server_message(err)
    everything = f"{err} {said} {json.dumps(getattr(err, 'body', None), default=str)}"
    status = getattr(err, "status_code", None)
    if VLLM_AUTO_TOOL_REFUSAL in everything:
        text = (
            f"the vLLM server at {base_url} refuses tool_choice='auto' ({status}): start vLLM with "
            f"--enable-auto-tool-choice --tool-call-parser <parser> (e.g. hermes, llama3_json), or let "
            f"guidance_lite format tools itself with gl.models.OpenAICompletion(..., tool_format=...)"
        )
    elif LLAMACPP_TOOLS_REFUSAL in everything:
        text = (
            f"the llama.cpp server at {base_url} can't take tools ({status}): start llama-server with --jinja "
            f"(so it applies the model's tool-aware chat template)"
        )
    elif isinstance(err, openai_sdk.AuthenticationError):
        text = (
            f"the server at {base_url} rejected the API key (401): check OPENAI_API_KEY or pass api_key=... "
            f"Server said: {said}"
        )
    elif isinstance(err, openai_sdk.PermissionDeniedError):
        text = (
            f"the API key may not use model {model!r} at {base_url} (403): check the key's project. Server said: {said}"
        )
    elif isinstance(err, openai_sdk.NotFoundError):
        if getattr(err, "code", None) == "model_not_found" or "model" in said.lower():
            text = (
                f"model {model!r} was not found at {base_url}: check the model name (GET {base_url.rstrip('/')}"
                f"/models lists the server's models). Server said: {said}"
            )
        else:
            text = f"{base_url} has no chat-completions endpoint (404): base_url should end in /v1. Server said: {said}"
    elif isinstance(err, openai_sdk.RateLimitError):
        text = (
            f"rate limited by {base_url} (429) even after {max_retries} retries: lower the concurrency, wait, "
            f"or raise max_retries. Server said: {said}"
        )
    elif isinstance(err, openai_sdk.InternalServerError):
        text = (
            f"the server at {base_url} failed ({status}) even after {max_retries} retries: try again later or "
            f"raise max_retries. Server said: {said}"
        )
    elif isinstance(err, openai_sdk.APITimeoutError):
        attempts = max_retries + 1 if retried else 1
        text = explain_timeout(
            err, base_url=base_url, timeout=timeout or Timeout(), attempts=attempts, received=received
        )
    elif isinstance(err, openai_sdk.APIConnectionError):
        cause = err.__cause__ or err.__context__
        text = (
            f"could not connect to {base_url} (after {max_retries} retries): is the server running and is "
            f"base_url right? ({type(cause).__name__ + ': ' + str(cause) if cause else err})"
        )
    elif isinstance(err, openai_sdk.BadRequestError) and (
        "context_length" in everything or "maximum context length" in everything
    ):
        text = (
            f"the conversation does not fit the context window of model {model!r}: shorten it or lower max_tokens. "
            f"Server said: {said}"
        )
    elif isinstance(err, openai_sdk.APIStatusError):
        text = f"the server at {base_url} rejected the request ({status}): {said}"
    elif isinstance(err, openai_sdk.APIError):
        text = f"the server at {base_url} reported an error: {said}"
    else:
        text = f"the OpenAI client failed: {type(err).__name__}: {err}"
    return ModelError(_scrub(text, api_key))
