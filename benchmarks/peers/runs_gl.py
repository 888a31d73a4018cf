"""guidance_lite as a user writes it: templates through ``gl.models.OpenAI``, batches with ``program.amap``, first text
with ``program.stream()`` / ``astream()``, tool loops with ``max_rounds`` or the template loop.

Runs in the project's own interpreter (this checkout on ``PYTHONPATH``), never in a peer environment.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import guidance_lite as gl
from guidance_lite.events import TextDelta

from .clients import FirstText, Unavailable, warm_samples
from .scenarios import FINAL_ANSWER, MAX_TOKENS, MODEL, get_weather, story, story_prompt, tool_question

warnings.filterwarnings("ignore", message="tiktoken's")  # the offline tokenizer fallback, once per process

BATCH_TEMPLATE = (
    "{{#user}}Question {{i}}: what is {{i}} squared?{{/user}}"
    "{{#assistant}}{{gen 'answer' max_tokens=%d%s}}{{/assistant}}"
)
STORY_TEMPLATE = "{{#user}}{{prompt}}{{/user}}{{#assistant}}{{gen 'story'}}{{/assistant}}"
AUTO_TEMPLATE = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#assistant~}}{{gen 'answer' tools=tools max_rounds=rounds + 1}}{{~/assistant}}"""
LOOP_TEMPLATE = """{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(rounds + 1)~}}
  {{#assistant~}}{{gen 'answer' tools=tools tool_choice='auto'}}{{~/assistant}}
  {{~#if not callable(answer)}}{{break}}{{/if~}}
  {{#function~}}{{answer()}}{{~/function}}
{{~/each}}
"""
# variant -> (gen options, worker processes): plain turns streaming off by hand (a silent run is plain anyway since
# issue 10), processes spreads the batch over two worker processes (``map(processes=2)``)
BATCH_VARIANTS = {"default": ("", None), "plain": (" stream=False", None), "processes": ("", 2)}


def _model(base_url: str) -> gl.models.OpenAI:
    return gl.models.OpenAI(MODEL, base_url=base_url, api_key="unused")


class GlBatch:
    """``program.amap`` over ``{"i": i}`` inputs; failures raise (a benchmark must not count failed programs)."""

    def __init__(self, base_url: str, variant: str) -> None:
        if variant not in BATCH_VARIANTS:
            raise Unavailable(f"unknown guidance_lite batch variant {variant!r}")
        options, self.processes = BATCH_VARIANTS[variant]
        self.model = _model(base_url)
        self.program = gl.Program(BATCH_TEMPLATE % (MAX_TOKENS, options), model=self.model, silent=True)

    async def run(self, indices: list[int], concurrency: int) -> list[str]:
        inputs = [{"i": i} for i in indices]
        results = await self.program.amap(inputs, concurrency=concurrency, processes=self.processes)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [result["answer"] for result in results]

    async def close(self) -> None:
        await self.model.aclose()


def batch_client(variant: str, base_url: str) -> GlBatch:
    return GlBatch(base_url, variant)


def first_text(variant: str, base_url: str, words: int, repeats: int) -> list[float]:
    """Seconds from calling ``stream()``/``astream()`` to the first ``TextDelta`` (the rest is consumed, untimed)."""
    program = gl.Program(STORY_TEMPLATE, model=_model(base_url), silent=True)
    prompt, expected = story_prompt(words), story(words)
    if variant == "stream":

        def once() -> float:
            watch = FirstText()
            for event in program.stream(prompt=prompt):
                if isinstance(event, TextDelta):
                    watch.add(event.text)
            return watch.seconds(expected, "guidance_lite stream()")

        once()  # warm up: the background loop, its client and connection
        return [once() for _ in range(repeats)]
    if variant != "astream":
        raise Unavailable(f"unknown guidance_lite first-text variant {variant!r}")

    async def aonce() -> float:
        watch = FirstText()
        async for event in program.astream(prompt=prompt):
            if isinstance(event, TextDelta):
                watch.add(event.text)
        return watch.seconds(expected, "guidance_lite astream()")

    return asyncio.run(warm_samples(aonce, repeats))


def tool_loop(variant: str, base_url: str, rounds: int, repeats: int) -> list[float]:
    """Seconds per whole conversation: ``auto`` (``max_rounds``) or ``template`` (the ``{{#each}}`` loop)."""
    templates = {"auto": AUTO_TEMPLATE, "template": LOOP_TEMPLATE}
    if variant not in templates:
        raise Unavailable(f"unknown guidance_lite tool-loop variant {variant!r}")
    model = _model(base_url)
    program = gl.Program(templates[variant], model=model, silent=True)
    variables: dict[str, Any] = {"question": tool_question(rounds), "tools": [get_weather], "rounds": rounds}

    async def run() -> list[float]:
        async def once() -> float:
            started = time.perf_counter()
            result = await program.arun(**variables)
            seconds = time.perf_counter() - started
            if result["answer"] != FINAL_ANSWER or len(result.tool_calls) != rounds:
                raise AssertionError(
                    f"guidance_lite {variant} loop: {len(result.tool_calls)} tool calls, answer {result['answer']!r}"
                )
            return seconds

        try:
            return await warm_samples(once, repeats)
        finally:
            await model.aclose()

    return asyncio.run(run())
