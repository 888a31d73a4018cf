"""Stop strings and stop regexes, applied client-side (whatever the backend), incrementally while streaming.

Uses the ``regex`` module's partial matching so a stream stops as soon as a match is certain and text that might
be the start of a stop sequence is held back instead of being shown and then taken back. Every regex match has a
time budget (``Limits.regex_seconds``): a pattern that backtracks catastrophically (``(a|a)*b``) fails with an error
naming it instead of hanging the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union

import regex

from .errors import GuidanceLiteError
from .limits import DEFAULT_LIMITS, LimitExceeded

REGEX_SECONDS = DEFAULT_LIMITS.regex_seconds  # the time budget of one match when the caller gives none


class PatternError(GuidanceLiteError, ValueError):
    """A ``stop_regex`` or ``pattern`` that is not a regular expression the regex module can compile."""


def as_list(value: Union[str, Iterable[str], None]) -> list[str]:
    if value is None or value is False:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [v for v in value if v]


# Quotes a gen may sit between, longest first (guidance 0.0.64's list and order).
QUOTES = ("'''", '"""', "```", '"', "'", "`")
_CLOSING_TAG = regex.compile(r"</[A-Za-z_][\w.:-]*\s*>")


def infer_stop(before: str, after: str) -> Optional[str]:
    """The stop of a gen given no ``stop=``, read from the literal template text around it as guidance 0.0.64 did:
    a quote that opens right before the gen and closes right after it (``"{{gen 'x'}}"`` stops at ``"``), else a
    closing tag right after it (``<b>{{gen 'x'}}</b>`` stops at ``</b>``; 0.0.64 meant to do this but its pattern
    never matched). None otherwise: other following text is not a stop (0.0.64 turned that off as too surprising),
    and the end of a role block needs none (every backend stops at the end of the turn)."""
    for quote in QUOTES:
        if after.startswith(quote) and before.endswith(quote):
            return quote
    tag = _CLOSING_TAG.match(after)
    return tag.group(0) if tag is not None else None


@lru_cache(maxsize=256)
def _compile(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def timed_search(
    pattern: str, text: str, timeout: float, *, partial: bool = False, full: bool = False, what: str = "stop_regex"
) -> Optional[regex.Match[str]]:
    """``pattern`` searched in (or with ``full`` matched against) ``text`` within ``timeout`` seconds; past it a
    ``LimitExceeded`` naming the pattern and ``Limits.regex_seconds``."""
    try:
        compiled = _compile(pattern)
    except (regex.error, RecursionError) as exc:  # the regex module's parser recurses into groups
        problem = "nests too deeply" if isinstance(exc, RecursionError) else f"is not valid ({exc})"
        raise PatternError(f"{what} {pattern!r:.80} {problem}: write a simpler regular expression") from None
    try:
        if full:
            return compiled.fullmatch(text, timeout=timeout)
        return compiled.search(text, partial=partial, timeout=timeout)
    except TimeoutError:
        raise LimitExceeded(
            "regex_seconds",
            timeout,
            f"{what} {pattern!r} took too long on {len(text):,} characters (does it backtrack, like (a|a)*?)",
        ) from None


@dataclass
class StopHit:
    start: int  # where the kept text ends
    text: str  # the stop text that matched


def find_stop(
    text: str, stops: Sequence[str], patterns: Sequence[str], timeout: float = REGEX_SECONDS
) -> Optional[StopHit]:
    """The earliest complete stop string / regex match in ``text``."""
    best: Optional[StopHit] = None
    for s in stops:
        i = text.find(s)
        if i != -1 and (best is None or i < best.start):
            best = StopHit(i, s)
    for p in patterns:
        m = timed_search(p, text, timeout)
        if m is not None and (best is None or m.start() < best.start):
            best = StopHit(m.start(), m.group(0))
    return best


def _holdback_start(text: str, stops: Sequence[str], patterns: Sequence[str], timeout: float) -> int:
    """Index from which ``text`` might still turn into a stop match once more text arrives."""
    start = len(text)
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-k:]):
                start = min(start, len(text) - k)
                break
    for p in patterns:
        m = timed_search(p, text, timeout, partial=True)
        if m is not None and m.partial:
            start = min(start, m.start())
    return start


class StopMatcher:
    """Feed streamed chunks; get back the text that is safe to show, and whether generation must stop."""

    def __init__(self, stops: Sequence[str] = (), patterns: Sequence[str] = (), timeout: float = REGEX_SECONDS) -> None:
        self.stops = list(stops)
        self.patterns = list(patterns)
        self.timeout = timeout
        self.buffer = ""
        self.emitted = 0
        self.hit: Optional[StopHit] = None

    @property
    def active(self) -> bool:
        return bool(self.stops or self.patterns)

    def feed(self, chunk: str) -> str:
        if self.hit is not None:
            return ""
        self.buffer += chunk
        if not self.active:
            out = self.buffer[self.emitted :]
            self.emitted = len(self.buffer)
            return out
        # search only the region that can contain a new match (after what was already cleared)
        hit = find_stop(self.buffer, self.stops, self.patterns, self.timeout)
        if hit is not None:
            self.hit = hit
            out = self.buffer[self.emitted : hit.start]
            self.emitted = hit.start
            return out
        safe = _holdback_start(self.buffer, self.stops, self.patterns, self.timeout)
        out = self.buffer[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return out

    def finish(self) -> str:
        """The held-back tail once the stream ended without a stop."""
        if self.hit is not None:
            return ""
        out = self.buffer[self.emitted :]
        self.emitted = len(self.buffer)
        return out

    @property
    def text(self) -> str:
        return self.buffer[: self.hit.start] if self.hit else self.buffer


def apply_stops(
    text: str, stops: Sequence[str], patterns: Sequence[str], timeout: float = REGEX_SECONDS
) -> tuple[str, Optional[str]]:
    """Cut ``text`` at the first stop; returns (kept text, stop text or None)."""
    hit = find_stop(text, stops, patterns, timeout)
    if hit is None:
        return text, None
    return text[: hit.start], hit.text
