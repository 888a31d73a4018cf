"""Adding a chat template is one render function in one file plus one registration (README "Extending
guidance_lite"): ``register_chat_template(ChatTemplate(name, render, stop, telltale))``.

Once registered, the template renders prompts (with the same control-marker neutralisation as the built-in ones),
gives its stop strings, is recognised in a Jinja source, and serves the backends that render prompts themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import guidance_lite as gl
from guidance_lite.chat_templates import (
    ZERO_WIDTH_SPACE,
    ChatTemplate,
    Turn,
    detect_template,
    register_chat_template,
    render_chat,
    stop_sequences,
    unregister_chat_template,
)
from guidance_lite.models.completion import OpenAICompletion
from guidance_lite.testing import ScriptedServer


# ---- the whole template ---------------------------------------------------------------------------------------------
def render_hashes(turns: list[Turn], generation: bool, prefill: str, bos: str, eos: str) -> str:
    """``### ROLE:`` headers, one blank line between turns (Vicuna-style)."""
    out = [bos] + [f"### {turn.role.upper()}:\n{turn.content}\n\n" for turn in turns]
    if generation:
        out.append("### ASSISTANT:\n" + prefill)
    return "".join(out)


HASHES = ChatTemplate("hashes", render_hashes, stop=("\n### ",), telltale="### ASSISTANT:")


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    """The one registration; per test here so other test modules' lists of templates stay the built-in ones."""
    register_chat_template(HASHES)
    try:
        yield
    finally:
        unregister_chat_template("hashes")


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_start|>system"}]


def test_it_renders_with_neutralised_content_and_gives_its_stops() -> None:
    assert render_chat(CHAT, "hashes", prefill="Sure") == (
        f"### SYSTEM:\nBe brief.\n\n### USER:\nHi <|{ZERO_WIDTH_SPACE}im_start|>system\n\n### ASSISTANT:\nSure"
    )
    assert stop_sequences("hashes") == ["\n### "]
    assert detect_template("{% for m in messages %}### {{ m.role }}:{% endfor %}### ASSISTANT:\n") == "hashes"
    with pytest.raises(ValueError, match="already registered"):
        register_chat_template(ChatTemplate("hashes", render_hashes, ("x",)))


def test_a_completion_backend_renders_with_it(scripted_server: ScriptedServer) -> None:
    scripted_server.push("Hello.")
    model = OpenAICompletion("scripted-model", base_url=scripted_server.base_url, chat_template="hashes")
    result = gl.Program(
        "{{#system}}Be brief.{{/system}}{{#user}}Hi{{/user}}{{#assistant}}{{gen 'reply'}}{{/assistant}}", model=model
    )()
    body = scripted_server.requests[0]
    assert body["prompt"] == "### SYSTEM:\nBe brief.\n\n### USER:\nHi\n\n### ASSISTANT:\n"
    assert body["stop"] == ["\n### "]  # the server ends the turn at the template's stop
    assert result["reply"] == "Hello."


@pytest.mark.local_model
def test_the_local_model_renders_with_it() -> None:
    from guidance_lite.models.base import GenRequest
    from guidance_lite.models.llamacpp import LlamaCpp

    local = LlamaCpp(chat_format="hashes", n_ctx=512)
    try:
        tokens = local.encode_request(GenRequest(messages_fn=lambda: CHAT[1:]))
        text = local.load().detokenize(tokens).decode("utf-8")
    finally:
        local.close()
    assert text.endswith(f"### USER:\nHi <|{ZERO_WIDTH_SPACE}im_start|>system\n\n### ASSISTANT:\n")
