"""Extending the language: a new block and a new command are each one registration beside their handler in one file
(this one), and every stage reads it: the parser (arity, separators, usage hint), the interpreter (the handler),
``gl.analyze`` / ``guidance-lite check`` (the names it binds) and display (how its tags and output look)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import pytest

import guidance_lite as gl
from guidance_lite import cli
from guidance_lite.control import NOTHING
from guidance_lite.display import INLINE, render_program_html, render_text
from guidance_lite.registry import BLOCKS, COMMANDS, CallSite, Effects, block, command, names_first_argument
from guidance_lite.state import GEN


# ---- the extension: everything a new block and a new command need --------------------------------------------------
def _repeat_names(site: CallSite) -> Effects:
    """The body sees ``item_name``; ``name=`` is set to the text once the body ran."""
    return Effects(scoped=(site.string(None, "item_name"),), sets_after_body=(site.string(None, "name"),))


@block("repeat", separators=("else",), binds=_repeat_names, usage="{{#repeat 3 item_name='i'}}…{{/repeat}}")
async def repeat(interp: Any, node: Any, times: Any, *, item_name: str = "this", name: Optional[str] = None) -> None:
    """Render the body ``times`` times with ``item_name`` bound to the round (0, 1, …); ``{{else}}`` when ``times`` is
    0. ``name=`` also captures the text into a variable."""
    if not isinstance(times, int) or times < 0:
        raise ValueError(f"{{{{#repeat}}}} needs a count of 0 or more, got {times!r}")
    text = ""
    for round_ in range(times):
        interp.scopes.append({item_name: round_, "@index": round_})
        try:
            text += await interp.render_to_string(node.body)
        finally:
            interp.scopes.pop()
    if not times and node.branches:
        text = await interp.render_to_string(node.branches[0].body)
    interp.write(text)
    if name is not None:
        interp.assign(name, text)


@command("fortune", binds=names_first_argument, generates=True)
async def fortune(interp: Any, node: Any, name: Optional[str] = None) -> Any:
    """A stand-in for a model: writes a fixed text as generated output (labelled with ``name``, like gen's)."""
    text = "You will extend a language."
    interp.write(text, GEN, name)
    if name is not None:
        interp.assign(name, text)
    return NOTHING


TEMPLATE = (
    "{{#repeat rounds item_name='i' name='counted'}}[{{i}}]{{else}}none{{/repeat}} {{counted}} "
    "{{fortune 'future'}} {{i}}"
)


# ---- the proof -------------------------------------------------------------------------------------------------------
def test_the_registrations_describe_themselves() -> None:
    spec = BLOCKS["repeat"]
    assert spec.fn is repeat and spec.arity == (1, 1) and spec.separators == {"else"} and not spec.generates
    assert COMMANDS["fortune"].fn is fortune and COMMANDS["fortune"].generates


def test_a_new_block_parses_and_its_registration_drives_syntax_errors() -> None:
    gl.Program(TEMPLATE)
    with pytest.raises(gl.TemplateSyntaxError) as arity:
        gl.Program("{{#repeat}}x{{/repeat}}")
    assert arity.value.message == "{{#repeat}} takes 1 positional argument, got 0"
    assert arity.value.hint == "write it as {{#repeat 3 item_name='i'}}…{{/repeat}}"
    with pytest.raises(gl.TemplateSyntaxError) as separator:
        gl.Program("{{#repeat 2}}a{{or}}b{{/repeat}}")
    assert separator.value.message == "{{or}} is not allowed inside {{#repeat}} (opened on line 1)"
    assert separator.value.hint == "{{#repeat}} accepts: else"


def test_a_new_block_and_command_run() -> None:
    program = gl.Program(TEMPLATE, model=gl.models.Mock(), silent=True)
    result = program(rounds=3, i="outer")
    assert result.text == "[0][1][2] [0][1][2] You will extend a language. outer"
    assert result["counted"] == "[0][1][2]" and result["future"] == "You will extend a language."
    assert program(rounds=0, i="outer").text.startswith("none none ")
    with pytest.raises(gl.TemplateRuntimeError, match="needs a count of 0 or more"):
        program(rounds=-1, i="x")


def test_check_reports_what_the_new_block_and_command_bind(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = gl.analyze(TEMPLATE)  # `i` inside the block is the block's; the one after it is an input
    assert report.variables == ["rounds", "i"] and report.sets == ["counted", "future"]
    assert report.commands == ["fortune"] and report.blocks == ["repeat"]
    (tmp_path / "prog.hbs").write_text(TEMPLATE, encoding="utf-8")
    assert cli.main(["check", str(tmp_path / "prog.hbs")]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "variables: rounds, i",
        "sets: counted, future",
        "commands: fortune",
        "blocks: repeat",
    ]


def test_display_shows_the_new_block_and_labels_the_generating_command() -> None:
    source_html = render_program_html(TEMPLATE)
    tokens = dict((text, cls) for cls, text in re.findall(r'<span class="(gl-tok-[^"]*)">([^<]*)</span>', source_html))
    assert tokens["repeat"] == "gl-tok-keyword" and tokens["fortune"] == "gl-tok-command gl-tok-gen"  # highlighter
    tag_level = re.sub(r'<span class="gl-tok-[^"]*">([^<]*)</span>', r"\1", source_html)  # each tag's own box
    tags = dict((text, cls) for cls, text in re.findall(r'<span class="([^"]*)">([^<]*)</span>', tag_level))
    assert tags["{{#repeat rounds item_name=&#x27;i&#x27; name=&#x27;counted&#x27;}}"] == "gl-tag gl-tag-block"
    assert tags["{{else}}"] == tags["{{/repeat}}"] == "gl-tag gl-tag-block"
    assert tags["{{fortune &#x27;future&#x27;}}"] == "gl-tag gl-tag-gen" and tags["{{i}}"] == "gl-tag"
    result = gl.Program(TEMPLATE, model=gl.models.Mock(), silent=True)(rounds=2, i="x")
    html = result._repr_html_()
    body, value, gen, label = (INLINE[key] for key in ("body", "value", "gen", "label"))
    assert (
        f'<div class="gl-body" style="{body}">[0][1] <span class="gl-value" style="{value}">[0][1]</span> '
        f'<span class="gl-gen" style="{gen}" title="future">'
        f'You will extend a language.<sup class="gl-label" style="{label}">future</sup></span> '
    ) in html
    assert repr(result).splitlines()[:2] == ["── text ──", "[0][1] [0][1] You will extend a language. x"]
    assert "\x1b[1;32mYou will extend a language.\x1b[0m\x1b[2;32m⟨future⟩\x1b[0m" in render_text(
        result.state, color=True
    )


def test_the_readme_documents_every_built_in_command_and_block() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    reference = readme[readme.index("## Template reference") : readme.index("### Errors")]
    built_in = [
        name for name, spec in {**COMMANDS, **BLOCKS}.items() if spec.fn.__module__.startswith("guidance_lite.")
    ]
    assert len(built_in) > 40
    assert [name for name in built_in if not re.search(rf"(?<![\w.]){re.escape(name)}\b", reference)] == []
