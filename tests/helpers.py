"""Helpers shared by several test modules (imported as ``from helpers import …``; tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any, Optional

from guidance_lite.models.base import Completion, Delta, GenRequest

# The explicit tool loop, verbatim, and the automatic loop written the same way.
EXPLICIT_LOOP = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(10)~}}
  {{#assistant~}}{{gen 'answer' tools=tools tool_choice='auto'}}{{~/assistant}}
  {{~#if not callable(answer)}}{{break}}{{/if~}}
  {{#function~}}{{answer()}}{{~/function}}
{{~/each}}
"""

AUTO_LOOP = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}{{gen 'answer' tools=tools max_rounds=5}}{{~/assistant}}"""


async def collect(model: Any, request: GenRequest) -> tuple[list[Delta], Completion]:
    """Drain a backend's stream: the deltas, and the final Completion (which must come)."""
    deltas: list[Delta] = []
    final: Optional[Completion] = None
    async for item in model.stream(request):
        if isinstance(item, Completion):
            assert final is None, "exactly one Completion"
            final = item
        else:
            assert final is None, "Deltas come before the Completion"
            deltas.append(item)
    assert final is not None
    return deltas, final


def assert_every_call_answered(messages: list[dict]) -> None:
    """Each assistant tool call is answered by exactly one following tool message, in call order."""
    waiting: list[str] = []
    for message in messages:
        if message["role"] == "tool":
            assert waiting, f"tool message {message} answers no call"
            assert message["tool_call_id"] == waiting.pop(0)
        else:
            assert not waiting, f"calls {waiting} have no result before a {message['role']} message"
            waiting = [c["id"] for c in message.get("tool_calls") or []]
    assert not waiting, f"calls {waiting} were never answered"
