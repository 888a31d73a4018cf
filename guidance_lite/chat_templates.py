"""Chat templates: turn chat messages into the one prompt string a completion model was trained on.

``render_chat(messages, template)`` knows four families by name, written by hand in Python (exact to each family's
official template): ``chatml``, ``llama3``, ``mistral`` (v0.3 style, incl. the special roles the mistral tool format
emits), ``gemma``. Any other string containing Jinja syntax is rendered as a Hugging Face style Jinja2 chat template
(``tokenizer.chat_template`` of a GGUF); jinja2 is an optional dependency imported only then.

Security rule (control-marker neutralisation): message content and prefill are data. Before rendering, every
occurrence of a family control marker inside them gets a ZERO WIDTH SPACE (U+200B) inserted after its opening
delimiter, so it can no longer be read (or tokenized) as a marker and can't forge a turn:

- ``<|name|>`` tokens (``<|im_start|>``, ``<|eot_id|>``, ``<|start_header_id|>``, ``<|python_tag|>``, ...):
  U+200B after ``<|`` (also DeepSeek's full-width ``<｜User｜>`` form, after ``<｜``);
- Mistral ``[INST]``, ``[/INST]``, ``[TOOL_CALLS]``, ``[AVAILABLE_TOOLS]``, ``[TOOL_RESULTS]``, ``[SYSTEM_PROMPT]``,
  ``[ARGS]`` (and closing forms): U+200B after ``[``;
- ``<s>``, ``</s>``, ``<start_of_turn>``, ``<end_of_turn>``, ``<bos>``, ``<eos>``: U+200B after ``<``.

The rule applies whatever the template, since one model's tokenizer may know another family's markers. Role names
must be plain identifiers. Markers the template itself writes are never touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Optional

from .errors import GuidanceLiteError

ZERO_WIDTH_SPACE = "\u200b"

_CONTROL_MARKER = re.compile(
    r"<\|(?=[A-Za-z0-9_.:/\-]{1,64}\|>)"
    r"|<\uff5c(?=[^\uff5c<>\s]{1,64}\uff5c>)"
    r"|\[(?=/?(?:INST|SYS|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS|SYSTEM_PROMPT|ARGS|CALL_ID|THINK)\])"
    r"|<(?=/?s>|(?:start_of_turn|end_of_turn|bos|eos)>)"
)
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


class ChatTemplateError(GuidanceLiteError, ValueError):
    """A chat template could not render these messages (includes a Jinja template's ``raise_exception``)."""


def message_text(message: dict) -> str:
    """A message's content as text (OpenAI content parts of type text are joined)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                texts.append(part)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(
                    f"message content part of type {kind!r} can't be rendered into a text prompt; "
                    f"send only text parts to completion models"
                )
        return "".join(texts)
    if isinstance(content, (dict, int, float, bool)):
        return json.dumps(content, ensure_ascii=False)
    raise ValueError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


def neutralize(text: str) -> str:
    """``text`` with every control marker broken by U+200B after its opening delimiter (see the module docstring)."""
    return _CONTROL_MARKER.sub(lambda m: m.group(0) + ZERO_WIDTH_SPACE, text)


@dataclass(frozen=True)
class Turn:
    """A message reduced to what a hand-written template renders: a checked role and neutralised text."""

    role: str
    content: str


def _turns(messages: list[dict]) -> list[Turn]:
    turns = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ChatTemplateError(f"message {number} must be a dict with 'role' and 'content', got {message!r:.80}")
        role = message.get("role")
        if not isinstance(role, str) or not _ROLE.match(role):
            raise ChatTemplateError(f"message {number} has an invalid role {role!r}: use a plain name like 'user'")
        if message.get("tool_calls") or message.get("function_call"):
            raise ChatTemplateError(
                f"message {number} has tool calls, which a plain chat template can't render: convert the messages "
                f"with a tool format first (guidance_lite.tool_formats.get_tool_format(...).prepare_messages)"
            )
        turns.append(Turn(role, neutralize(message_text(message))))
    return turns


# ---- hand-written families ---------------------------------------------------------------------------------------
def _chatml(turns: list[Turn], generation: bool, prefill: str, bos: str, eos: str) -> str:
    out = [bos]
    for turn in turns:
        out.append(f"<|im_start|>{turn.role}\n{turn.content}<|im_end|>\n")
    if generation:
        out.append("<|im_start|>assistant\n" + prefill)
    return "".join(out)


def _llama3(turns: list[Turn], generation: bool, prefill: str, bos: str, eos: str) -> str:
    out = [bos]
    for turn in turns:
        out.append(f"<|start_header_id|>{turn.role}<|end_header_id|>\n\n{turn.content.strip()}<|eot_id|>")
    if generation:
        out.append("<|start_header_id|>assistant<|end_header_id|>\n\n" + prefill)
    return "".join(out)


def _mistral(turns: list[Turn], generation: bool, prefill: str, bos: str, eos: str) -> str:
    """Mistral v0.3: system text goes in front of the last user message; ``</s>`` closes assistant turns."""
    eos = eos or "</s>"
    system = "\n\n".join(t.content for t in turns if t.role == "system")
    last_user = max((i for i, t in enumerate(turns) if t.role == "user"), default=None)
    out = [bos]
    if system and last_user is None:
        out.append(f"[INST] {system}[/INST]")
    for i, turn in enumerate(turns):
        if turn.role == "system":
            continue
        if turn.role == "user":
            text = f"{system}\n\n{turn.content}" if system and i == last_user else turn.content
            out.append(f"[INST] {text}[/INST]")
        elif turn.role == "assistant":
            out.append(f" {turn.content}{eos}")
        elif turn.role == "available_tools":
            out.append(f"[AVAILABLE_TOOLS] {turn.content}[/AVAILABLE_TOOLS]")
        elif turn.role == "tool_calls":
            out.append(f"[TOOL_CALLS] {turn.content}{eos}")
        elif turn.role == "tool_results":
            out.append(f"[TOOL_RESULTS] {turn.content}[/TOOL_RESULTS]")
        else:
            raise ChatTemplateError(
                f"the mistral template has no {turn.role!r} role (it knows system, user, "
                f"assistant and the tool roles of the 'mistral' tool format): use that format"
            )
    if generation:
        out.append(prefill)
    return "".join(out)


def _gemma(turns: list[Turn], generation: bool, prefill: str, bos: str, eos: str) -> str:
    """Gemma has no system role: system text is prepended to the first user turn; tool results become user turns."""
    system = "\n\n".join(t.content for t in turns if t.role == "system")
    out = [bos]
    first_user = True
    if system and not any(t.role not in ("system", "assistant") for t in turns):
        out.append(f"<start_of_turn>user\n{system.strip()}<end_of_turn>\n")
        first_user = False
    for turn in turns:
        if turn.role == "system":
            continue
        role = "model" if turn.role == "assistant" else "user"
        content = turn.content
        if role == "user" and first_user:
            first_user = False
            if system:
                content = f"{system}\n\n{content}"
        out.append(f"<start_of_turn>{role}\n{content.strip()}<end_of_turn>\n")
    if generation:
        out.append("<start_of_turn>model\n" + prefill)
    return "".join(out)


def _is_jinja(template: str) -> bool:
    return "{{" in template or "{%" in template


@dataclass(frozen=True)
class ChatTemplate:
    """A hand-written chat template: ``render(turns, add_generation_prompt, prefill, bos_token, eos_token)``, the
    strings that end an assistant turn, and the ``telltale`` that identifies a Jinja source of the same family
    (e.g. a GGUF's ``tokenizer.chat_template``)."""

    name: str
    render: Callable[[list[Turn], bool, str, str, str], str]
    stop: tuple[str, ...]
    telltale: Optional[str] = None


TEMPLATES: dict[str, ChatTemplate] = {}  # name -> template, in registration order


def register_chat_template(template: ChatTemplate) -> ChatTemplate:
    """Make ``template`` available by name (``chat_template=`` of OpenAICompletion, ``chat_format=`` of LlamaCpp,
    ``render_chat``) and to ``detect_template``."""
    if not template.name or _is_jinja(template.name):
        raise ValueError(f"a chat template needs a plain name, got {template.name!r}")
    if TEMPLATES.get(template.name, template) is not template:
        raise ValueError(f"a chat template named {template.name!r} is already registered")
    TEMPLATES[template.name] = template
    return template


def unregister_chat_template(name: str) -> None:
    """Forget a registered template (for tests that register their own)."""
    TEMPLATES.pop(name, None)


register_chat_template(ChatTemplate("chatml", _chatml, ("<|im_end|>",), "<|im_start|>"))
register_chat_template(ChatTemplate("llama3", _llama3, ("<|eot_id|>", "<|eom_id|>"), "<|start_header_id|>"))
register_chat_template(ChatTemplate("mistral", _mistral, ("</s>",), "[INST]"))
register_chat_template(ChatTemplate("gemma", _gemma, ("<end_of_turn>",), "<start_of_turn>"))

# end-of-turn markers to stop on when an unknown Jinja template uses them
_KNOWN_END_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "<|END_OF_TURN_TOKEN|>",
    "</s>",
)


def render_chat(
    messages: list[dict],
    template: str = "chatml",
    *,
    add_generation_prompt: bool = True,
    prefill: str = "",
    bos_token: str = "",
    eos_token: str = "",
    tools: Optional[list[dict]] = None,
) -> str:
    """The prompt for ``messages`` in ``template`` (a name from TEMPLATES or a Jinja2 chat template source).

    ``prefill`` continues the assistant turn: the prompt ends with the assistant header plus the prefill text and no
    end-of-turn. ``tools`` is passed to Jinja templates only (hand-written ones get tools via a tool format's
    ``prepare_messages``). Content and prefill are neutralised (see the module docstring).
    """
    generation = add_generation_prompt or bool(prefill)
    family = TEMPLATES.get(template)
    if family is not None:
        return family.render(_turns(messages), generation, neutralize(prefill), bos_token, eos_token)
    if not isinstance(template, str) or not _is_jinja(template):
        raise ChatTemplateError(
            f"unknown chat template {template!r:.60}: use one of {', '.join(TEMPLATES)} "
            f"or pass a Jinja2 chat template source"
        )
    return _render_jinja(template, messages, generation, neutralize(prefill), bos_token, eos_token, tools)


def stop_sequences(template: str) -> list[str]:
    """Strings that end an assistant turn in ``template`` (e.g. chatml -> ["<|im_end|>"])."""
    family = TEMPLATES.get(template)
    if family is None and isinstance(template, str) and _is_jinja(template):
        detected = detect_template(template)
        family = TEMPLATES.get(detected) if detected else None
        if family is None:
            return [marker for marker in _KNOWN_END_MARKERS if marker in template]
    if family is None:
        raise ChatTemplateError(
            f"unknown chat template {template!r:.60}: use one of {', '.join(TEMPLATES)} "
            f"or pass a Jinja2 chat template source"
        )
    return list(family.stop)


def detect_template(jinja_source: Optional[str]) -> Optional[str]:
    """The hand-written template a Jinja chat template (e.g. a GGUF's ``tokenizer.chat_template``) corresponds to:
    the first registered template whose tell-tale it contains."""
    if not jinja_source:
        return None
    for template in TEMPLATES.values():
        if template.telltale and template.telltale in jinja_source:
            return template.name
    return None


# ---- Jinja2 ---------------------------------------------------------------------------------------------------------
def _raise_exception(message: str) -> None:
    raise ChatTemplateError(f"the chat template refused these messages: {message}")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: Optional[int] = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson`` (unlike Jinja's own: no HTML escaping, key order kept)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _import_jinja() -> Any:
    try:
        import jinja2
        import jinja2.ext
        import jinja2.sandbox
    except ImportError:
        raise ImportError(
            "rendering a Jinja2 chat template needs the jinja2 package: pip install jinja2 "
            "(or use one of the built-in templates: " + ", ".join(TEMPLATES) + ")"
        ) from None
    return jinja2


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    jinja2 = _import_jinja()
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the Jinja2 chat template does not compile: {exc}") from None


def _jinja_message(number: int, message: dict) -> dict:
    """A copy for a Jinja template: neutralised text content, tool-call arguments as dicts (HF convention)."""
    if not isinstance(message, dict):
        raise ChatTemplateError(f"message {number} must be a dict, got {message!r:.80}")
    role = message.get("role")
    if not isinstance(role, str) or not _ROLE.match(role):
        raise ChatTemplateError(f"message {number} has an invalid role {role!r}: use a plain name like 'user'")
    copy = {k: v for k, v in message.items() if not k.startswith("_")}
    copy["content"] = neutralize(message_text(message))
    if message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            function = dict(call.get("function", {})) if isinstance(call, dict) else {}
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    function["arguments"] = json.loads(arguments)
                except ValueError:
                    pass
            calls.append({**call, "function": function})
        copy["tool_calls"] = calls
    return copy


def _render_jinja(
    source: str, messages: list[dict], generation: bool, prefill: str, bos: str, eos: str, tools: Optional[list[dict]]
) -> str:
    compiled = _compile(source)
    jinja2 = _import_jinja()
    prepared = [_jinja_message(i, m) for i, m in enumerate(messages)]
    try:
        text = compiled.render(
            messages=prepared, add_generation_prompt=generation, bos_token=bos, eos_token=eos, tools=tools or None
        )
    except ChatTemplateError:
        raise
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the Jinja2 chat template failed to render: {exc}") from None
    return text + prefill
