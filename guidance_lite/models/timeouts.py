"""How long a request to a model server may take: finite by default, so a server that never answers ends the run
with an error that names the timeout that fired instead of hanging it.

Three limits, because they catch different faults: ``connect`` a server that is down or unreachable, ``read`` one
that stops sending (before the first byte or between streamed chunks), ``total`` one that keeps sending forever (a
trickle that never trips ``read``). ``total`` covers the SDK's retries too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Any, Union

DEFAULT_CONNECT = 10.0
DEFAULT_READ = 120.0  # a model may think for a while before its first token
DEFAULT_TOTAL = 600.0


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Timeout {name}= must be a positive number of seconds (math.inf: no limit), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Timeout:
    """Seconds a request to a model server may take (``math.inf``: no limit).

    ``connect``: to open the connection; ``read``: to wait for the next bytes of the answer (its first bytes
    included); ``total``: the whole request, retries and streaming included. ``timeout=`` of the OpenAI backends
    takes a ``Timeout`` or a number (all three limits the same).
    """

    connect: float = DEFAULT_CONNECT
    read: float = DEFAULT_READ
    total: float = DEFAULT_TOTAL

    def __post_init__(self) -> None:
        for field in fields(self):
            object.__setattr__(self, field.name, _seconds(field.name, getattr(self, field.name)))

    @classmethod
    def of(cls, value: Union[Timeout, float, None]) -> Timeout:
        """``timeout=`` as given: None (the defaults), a number (every limit) or a Timeout."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(value, value, value)
        raise TypeError(
            f"timeout= must be a number of seconds or gl.models.Timeout(connect=, read=, total=), "
            f"got {type(value).__name__}"
        )

    def describe(self) -> str:
        return ", ".join(f"{field.name} {getattr(self, field.name):g}s" for field in fields(self))


class Deadline:
    """The moment ``total`` seconds after it was made (never, for ``math.inf``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (``math.inf`` for no deadline, 0 once passed)."""
        if math.isinf(self.seconds):
            return math.inf
        return max(self.at - time.monotonic(), 0.0)

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0


__all__ = ["Timeout", "Deadline", "DEFAULT_CONNECT", "DEFAULT_READ", "DEFAULT_TOTAL"]
