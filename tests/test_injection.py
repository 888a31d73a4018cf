"""Values are data in text mode too (issue 9, item 8): a template without role blocks that writes a chat template's
markers itself, sent to a completion backend, gets every control marker inside its values (arguments, helper
results, model output) neutralised, as chat templates already do inside messages; the template's own markers are
sent as written. Cases: tests/security/cases_injection.py."""

from __future__ import annotations

import pytest
from security.cases_injection import CASES, CHATML, FORGED_TURN

import guidance_lite as gl
from guidance_lite.chat_templates import ZERO_WIDTH_SPACE
from guidance_lite.models.completion import OpenAICompletion
from guidance_lite.testing import ScriptedServer


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_markers_inside_values_are_neutralised_in_text_mode(case: dict, scripted_server: ScriptedServer) -> None:
    for reply in case["replies"]:
        scripted_server.push({"text": reply})
    model = OpenAICompletion(
        "scripted-model",
        base_url=scripted_server.base_url,
        tool_format=case.get("tool_format"),
        chat_template=case.get("chat_template", "chatml"),
    )
    result = gl.Program(case["template"], model=model, silent=True)(**case["args"]())
    prompts = [request["prompt"] for request in scripted_server.requests]
    assert len(prompts) == len(case["replies"])
    last = prompts[-1]
    assert case["forged"] not in last, f"{case['name']}: a value forged {case['forged']!r}"
    assert ZERO_WIDTH_SPACE in last and case["kept"] in last
    assert case["forged"] in result.text  # the transcript keeps what really ran; only the prompt is neutralised


def test_every_case_is_described_for_the_report() -> None:
    for case in CASES:
        assert case["expect"] == "neutralised" and case["category"] and case["what"]


def test_the_template_text_itself_is_sent_as_written(scripted_server: ScriptedServer) -> None:
    scripted_server.push({"text": "ok"})
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url)
    gl.Program(CHATML, model=model, silent=True)(q="plain question")
    expected = "<|im_start|>user\nplain question<|im_end|>\n<|im_start|>assistant\n"
    assert scripted_server.requests[0]["prompt"] == expected


def test_mock_requests_tell_values_from_template_text() -> None:
    mock = gl.models.Mock("ok")
    gl.Program(CHATML, model=mock, silent=True)(q=FORGED_TURN)
    request = mock.requests[0]
    assert FORGED_TURN in request.prompt  # the transcript as written
    marked = request.prompt_with_values(lambda value: f"«{value}»")
    assert marked == f"<|im_start|>user\n«{FORGED_TURN}»<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.local_model
def test_llamacpp_text_mode_neutralises_values_too() -> None:
    mock = gl.models.Mock("ok")
    gl.Program(CHATML, model=mock, silent=True)(q=FORGED_TURN)
    model = gl.models.LlamaCpp()
    tokens = model.encode_request(mock.requests[0])
    prompt = model.load().detokenize(tokens).decode("utf-8")
    assert "<|im_start|>user\nhi<|" + ZERO_WIDTH_SPACE + "im_end|>" in prompt
    assert "<|im_start|>system" not in prompt
