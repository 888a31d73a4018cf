"""What an ``openai`` SDK error means for the person running the program: a ModelError that says what to change.

Known server refusals (vLLM without auto tool choice, llama.cpp without --jinja) get their own advice; API keys are
never part of a message.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..base import ModelError

LOCAL_API_KEY = "not-needed"  # what local OpenAI-compatible servers accept when no key is configured
VLLM_AUTO_TOOL_REFUSAL = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
LLAMACPP_TOOLS_REFUSAL = "tools param requires --jinja flag"


def _scrub(text: str, secret: Optional[str]) -> str:
    if secret and secret != LOCAL_API_KEY and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return getattr(err, "message", None) or str(err)


def explain_error(
    err: BaseException, *, model: str, base_url: str, api_key: Optional[str], max_retries: int
) -> ModelError:
    """Turn an ``openai`` SDK error into a ModelError that says what to change (api keys are never included)."""
    import openai as openai_sdk

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
        text = f"the request to {base_url} timed out (after {max_retries} retries): raise timeout= or lower max_tokens"
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
