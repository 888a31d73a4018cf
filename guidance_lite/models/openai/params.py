"""What both OpenAI endpoints (chat and completions) share about a request: where each parameter goes, the sampling
fields, the context-window check, and the check that a forced tool choice was honoured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ...tools import ToolChoice
from ..base import Completion, GenParams, ModelError

SDK_OPTIONS = ("extra_headers", "extra_query")  # passed to the SDK call, not in the JSON body
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; the interpreter enforces every stop string client-side anyway


def split_params(defaults: dict, extra: dict, reserved: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """The model's default parameters overlaid with the gen's extra arguments, split into (body parameters,
    ``extra_body``, SDK options); a parameter the backend sets itself is refused."""
    params = {**defaults, **(extra or {})}
    for key in reserved:
        if key in params:
            raise ModelError(f"gen sets {key!r} itself: remove {key}= from the gen arguments")
    extra_body = params.pop("extra_body", None) or {}
    options = {key: params.pop(key) for key in SDK_OPTIONS if key in params}
    return params, extra_body, {key: value for key, value in options.items() if value}


def sampling_fields(request: GenParams) -> dict[str, Any]:
    """temperature, top_p, seed (when set) and n (when not 1), as both endpoints name them."""
    fields = {key: value for key in ("temperature", "top_p", "seed") if (value := getattr(request, key)) is not None}
    if request.n != 1:
        fields["n"] = request.n
    return fields


def check_context(body: dict, prompt_tokens: Callable[[dict], int], model: str, context_window: Optional[int]) -> None:
    """Refuse a request whose prompt (``prompt_tokens(body)``, counted only when the window is known and the body
    is long enough to come near it) plus reserved output does not fit the context window."""
    if not context_window:
        return
    reserved = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
    if 4 * len(repr(body)) + reserved <= context_window:
        return  # certain to fit without counting: a token is at least one UTF-8 byte, a character at most four
    prompt = prompt_tokens(body)
    if prompt + reserved > context_window:
        raise ModelError(
            f"the request needs about {prompt + reserved} tokens (prompt ~{prompt} + "
            f"max_tokens {reserved}) but {model!r} has a context window of {context_window}: shorten "
            f"the conversation, lower max_tokens, or pass context_window= if the model allows more"
        )


def check_forced_calls(choice: ToolChoice, completion: Completion, server: str) -> None:
    """A forced tool choice that came back without a call is the server ignoring it: say so, never pass it as text."""
    if not choice.forced:
        return
    for option in completion.choices:
        if not option.tool_calls:
            raise ModelError(
                f"tool_choice={choice.value!r} was not honoured by {server}: the answer has no tool call "
                f"({option.text[:80]!r}); check that the server supports forced tool calls, or use "
                "tool_choice='auto'"
            )
