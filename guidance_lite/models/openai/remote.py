"""What both OpenAI backends are: a model reached through an :class:`~.transport.OpenAITransport`.

The chat backend and the completion backend differ in what they send and how they read answers; their construction
(checked settings, default parameters, context window, the transport) and their connection settings are the same.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from ... import tokens
from ..base import Model
from ..timeouts import Timeout
from .transport import OpenAITransport


class RemoteModel(Model):
    """A backend whose model is behind an OpenAI-compatible server (see ``OpenAITransport`` for the connection)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str],
        api_key: Optional[str],
        client: Any,
        timeout: Union[Timeout, float, None],
        max_retries: int,
        cache: Any,
        context_window: Optional[int],
        max_response_bytes: int,
        default_params: dict,
        reserved: tuple[str, ...],
        backend: str,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"{backend}(model=...) needs a model name such as 'gpt-4o-mini', got {model!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        for key in reserved:
            if key in default_params:
                raise ValueError(f"{backend}(...) sets {key!r} itself: remove {key}= from the keyword arguments")
        self.name = model
        self.model = model
        self.default_params = dict(default_params)
        self.context_window = context_window if context_window is not None else tokens.context_window(model)
        self.transport = OpenAITransport(
            model,
            base_url=base_url,
            api_key=api_key,
            client=client,
            timeout=timeout,
            max_retries=max_retries,
            cache=cache,
            owner=backend,
            max_response_bytes=max_response_bytes,
        )

    @property
    def base_url(self) -> str:
        return self.transport.base_url

    @property
    def max_retries(self) -> int:
        return self.transport.max_retries

    @property
    def timeout(self) -> Timeout:
        return self.transport.timeout

    @property
    def max_response_bytes(self) -> int:
        return self.transport.max_response_bytes

    async def aclose(self) -> None:
        """Close this model's clients for the running loop (see ``OpenAITransport.aclose``); it stays usable."""
        await self.transport.aclose()
