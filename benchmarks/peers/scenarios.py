"""What every client asks and what the server answers, in one place, so the server can compute each reply from the
request alone and every client can check what it got back.

Three scenarios, told apart by the request itself:

- batch: ``question(i)`` -> ``answer(i)`` (a short single-turn answer, as in ``bench_batch.py``);
- first text: ``story_prompt(words)`` -> a ``words``-word story, streamed word by word;
- tool loop: ``tool_question(rounds)`` with tools -> one ``get_weather`` call per round until ``rounds`` tool results
  came back, then ``FINAL_ANSWER``.
"""

from __future__ import annotations

import re
from typing import Any

MODEL = "gpt-4o-mini"  # a real model name: clients take their real code paths (context windows, tokenizers)
MAX_TOKENS = 20  # the batch programs' max_tokens (sent by every client)
SYSTEM_PROMPT = "You are a helpful assistant."
FINAL_ANSWER = "All cities checked: mild and sunny everywhere."

_QUESTION = re.compile(r"^Question (\d+): what is \d+ squared\?$")
_STORY = re.compile(r"^Tell me a story of (\d+) words\.$")
_TOOL_QUESTION = re.compile(r"^What is the weather in each of my (\d+) cities\?$")
_STORY_WORDS = ("once", "upon", "a", "time", "the", "quick", "brown", "fox", "jumped", "over", "lazy", "dogs")


def question(i: int) -> str:
    return f"Question {i}: what is {i} squared?"


def answer(i: int) -> str:
    return f"{i} squared is {i * i}."


def story_prompt(words: int) -> str:
    return f"Tell me a story of {words} words."


def story(words: int) -> str:
    return " ".join(_STORY_WORDS[i % len(_STORY_WORDS)] for i in range(words)).capitalize() + "."


def tool_question(rounds: int) -> str:
    return f"What is the weather in each of my {rounds} cities?"


def city(index: int) -> str:
    return f"City number {index}"


def get_weather(city: str) -> dict:
    """Current weather for a city.

    Args:
        city: The city, e.g. Paris.
    """
    return {"city": city, "temperature": 21, "sky": "sunny"}


# what a person writing the loop by hand sends (the schema guidance_lite derives from get_weather's signature)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris."}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply(body: dict) -> dict:
    """The scripted reply to a chat-completions request body: ``{"content": str}`` or ``{"tool_calls": [...]}``
    with ``{"id", "name", "arguments"}`` entries (arguments as a JSON string)."""
    messages = body.get("messages") or []
    users = [_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    first = users[0] if users else ""
    rounds = _TOOL_QUESTION.match(first)
    if rounds and body.get("tools"):
        done = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
        if done >= int(rounds.group(1)) or body.get("tool_choice") == "none":
            return {"content": FINAL_ANSWER}
        return {
            "tool_calls": [
                {"id": f"call_{done:04d}", "name": "get_weather", "arguments": '{"city": "%s"}' % city(done)}
            ]
        }
    last = users[-1] if users else ""
    asked = _QUESTION.match(last)
    if asked:
        return {"content": answer(int(asked.group(1)))}
    told = _STORY.match(last)
    if told:
        return {"content": story(int(told.group(1)))}
    return {"content": "ok"}


def check_answers(answers: list[str], programs: int) -> None:
    """Raise when the answers of programs ``0..programs-1`` are not the ones their questions asked for (wrong, missing
    or out of order): a benchmark must not count programs that failed."""
    if len(answers) != programs:
        raise AssertionError(f"{len(answers)} answers for {programs} programs")
    for i, got in enumerate(answers):
        if got != answer(i):
            raise AssertionError(f"program {i} got {got!r}, expected {answer(i)!r}")
