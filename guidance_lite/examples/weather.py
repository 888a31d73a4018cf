"""A real tool-using program: the model calls a Python function, the interpreter runs it and feeds the result back.

Run it with ``python -m guidance_lite.examples.weather``. It uses ``gl.models.default()``: OpenAI when
OPENAI_API_KEY is set, otherwise the embedded SmolLM2-135M model (no key, no network).
"""

from __future__ import annotations

import sys

import guidance_lite as gl

TEMPLATE = """\
{{#system~}}You are a weather assistant. Use the get_weather tool to answer.{{~/system}}
{{#user~}}What is the weather in {{city}}?{{~/user}}
{{#assistant~}}{{gen 'call' tools=[get_weather] tool_choice='get_weather' max_tokens=60}}{{~/assistant}}
{{#function~}}{{call()}}{{~/function}}
{{#assistant~}}{{gen 'answer' max_tokens=40 temperature=0}}{{~/assistant}}"""


def get_weather(city: str, unit: str = "celsius") -> dict:
    """Look up the current weather.

    Args:
        city: The city to look up, e.g. "Paris".
        unit: "celsius" or "fahrenheit".
    """
    temperature = 21 if unit == "celsius" else 70
    return {"city": city, "temperature": temperature, "unit": unit, "sky": "clear"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    city = args[0] if args else "Paris"
    program = gl.Program(TEMPLATE, silent=True)
    print(f"model: {program.model.name}")
    result = program(city=city, get_weather=get_weather)
    for record in result.tool_calls:
        status = f"error: {record.error}" if record.error else f"-> {record.content}"
        print(f"tool call: {record.name}({record.arguments_json}) {status}")
    print(f"answer: {result['answer'].strip()}")
    print(f"tokens: {result.usage.total_tokens}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
