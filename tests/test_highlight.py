"""Template highlighting: the tokenizer (built from the parser's pieces, the grammar's lexer and the registry) agrees
with the parser, its HTML and terminal renderings are safe, and Pygments finds the lexer through the entry point."""

from __future__ import annotations

import itertools
import json
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parser_paths import PIECES, TRICKY

import guidance_lite as gl
from guidance_lite import cli
from guidance_lite import highlight as hl
from guidance_lite.parser import parse
from guidance_lite.registry import BLOCKS, COMMANDS, block, command

SPEC_DIR = Path(__file__).parent / "spec"
SPEC_TEMPLATES = [case["template"] for f in sorted(SPEC_DIR.glob("*.json")) for case in json.loads(f.read_text())]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kinds(source: str) -> list[tuple[str, str]]:
    """(text, kind) of every token that is not whitespace."""
    return [(t.text, t.kind) for t in hl.template_tokens(source) if t.kind != hl.WHITESPACE]


def parses(source: str) -> bool:
    try:
        parse(source)
    except gl.TemplateSyntaxError:
        return False
    return True


def offset(source: str, line: int, col: int) -> int:
    lines = source.split("\n")
    return sum(len(text) + 1 for text in lines[: line - 1]) + col - 1


# ---- the tokens -----------------------------------------------------------------------------------------------------
def test_tokens_name_every_part_of_a_template() -> None:
    source = (
        "{{!-- note --}}{{#system~}}Hi \\{{x}}{{~/system}}"
        "{{#each range(3) item_name='i'}}{{gen 'answer' tools=[get_weather] temperature=0.5}}"
        "{{#if not callable(answer) and x.y >= 2}}{{break}}{{elif @index == 1}}{{else if this}}{{/if}}{{/each}}"
        "{{shout name}}{{x + 1}}{{add (add 1 2) 3}}{{>part a k=True}}{{#geneach 'items'}}{{/geneach}}"
    )
    assert kinds(source) == [
        ("{{!-- note --}}", hl.COMMENT),
        *[("{{", hl.DELIMITER), ("#", hl.DELIMITER), ("system", hl.KEYWORD), ("~}}", hl.DELIMITER)],
        ("Hi ", hl.TEXT),
        ("\\{{", hl.ESCAPE),
        ("x}}", hl.TEXT),  # after an escaped opener, text
        *[("{{~", hl.DELIMITER), ("/", hl.DELIMITER), ("system", hl.KEYWORD), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("#", hl.DELIMITER), ("each", hl.KEYWORD), ("range", hl.COMMAND)],
        *[("(", hl.PUNCTUATION), ("3", hl.INTEGER), (")", hl.PUNCTUATION), ("item_name", hl.ATTRIBUTE)],
        *[("=", hl.OPERATOR), ("'i'", hl.STRING), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("gen", hl.GENERATING_COMMAND), ("'answer'", hl.STRING), ("tools", hl.ATTRIBUTE)],
        *[("=", hl.OPERATOR), ("[", hl.PUNCTUATION), ("get_weather", hl.VARIABLE), ("]", hl.PUNCTUATION)],
        *[("temperature", hl.ATTRIBUTE), ("=", hl.OPERATOR), ("0.5", hl.FLOAT), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("#", hl.DELIMITER), ("if", hl.KEYWORD), ("not", hl.WORD_OPERATOR)],
        *[("callable", hl.COMMAND), ("(", hl.PUNCTUATION), ("answer", hl.VARIABLE), (")", hl.PUNCTUATION)],
        *[("and", hl.WORD_OPERATOR), ("x", hl.VARIABLE), (".", hl.PUNCTUATION), ("y", hl.NAME)],
        *[(">=", hl.OPERATOR), ("2", hl.INTEGER), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("break", hl.COMMAND), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("elif", hl.KEYWORD), ("@index", hl.SPECIAL), ("==", hl.OPERATOR)],
        *[("1", hl.INTEGER), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("else", hl.KEYWORD), ("if", hl.KEYWORD), ("this", hl.SPECIAL), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("/", hl.DELIMITER), ("if", hl.KEYWORD), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("/", hl.DELIMITER), ("each", hl.KEYWORD), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("shout", hl.FUNCTION), ("name", hl.VARIABLE), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("x", hl.VARIABLE), ("+", hl.OPERATOR), ("1", hl.INTEGER), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("add", hl.COMMAND), ("(", hl.PUNCTUATION), ("add", hl.COMMAND)],
        *[("1", hl.INTEGER), ("2", hl.INTEGER), (")", hl.PUNCTUATION), ("3", hl.INTEGER), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), (">", hl.DELIMITER), ("part", hl.VARIABLE), ("a", hl.VARIABLE)],
        *[("k", hl.ATTRIBUTE), ("=", hl.OPERATOR), ("True", hl.CONSTANT), ("}}", hl.DELIMITER)],
        *[("{{", hl.DELIMITER), ("#", hl.DELIMITER), ("geneach", hl.GENERATING_BLOCK), ("'items'", hl.STRING)],
        *[("}}", hl.DELIMITER), ("{{", hl.DELIMITER), ("/", hl.DELIMITER), ("geneach", hl.GENERATING_BLOCK)],
        ("}}", hl.DELIMITER),
    ]


def test_keywords_are_keywords_only_where_the_grammar_says_so() -> None:
    assert kinds("{{or}}")[1] == ("or", hl.KEYWORD)  # a separator
    assert kinds("{{a or b}}")[2] == ("or", hl.WORD_OPERATOR)  # an operator
    assert kinds("{{x}} / {{a / b}}")[3:5] == [(" / ", hl.TEXT), ("{{", hl.DELIMITER)]
    assert kinds("{{a / b}}")[2] == ("/", hl.OPERATOR)  # division, not a closing tag
    assert kinds("{{a > b}}")[2] == (">", hl.OPERATOR)  # a comparison, not a partial


def test_the_registry_decides_what_a_name_is() -> None:
    """A block or command registered later is highlighted as one (the kinds are not cached with the lexing)."""
    source = "{{#sparkle 2}}{{/sparkle}}{{glimmer 'x'}}{{glitter}}"
    assert dict(kinds(source))["sparkle"] == hl.ERROR  # the parser refuses an unknown block
    assert dict(kinds(source))["glimmer"] == hl.FUNCTION  # called like a command, but not a registered one
    assert dict(kinds(source))["glitter"] == hl.VARIABLE

    async def handler(interp: Any, node: Any, *args: Any) -> None:
        return None

    try:
        block("sparkle", generates=True)(handler)
        command("glimmer", generates=True)(handler)
        command("glitter")(handler)
        assert dict(kinds(source))["sparkle"] == hl.GENERATING_BLOCK
        assert dict(kinds(source))["glimmer"] == hl.GENERATING_COMMAND
        assert dict(kinds(source))["glitter"] == hl.COMMAND
        assert hl.name_kind("sparkle", block=True) == hl.GENERATING_BLOCK and hl.name_kind("glitter") == hl.COMMAND
    finally:
        del BLOCKS["sparkle"], COMMANDS["glimmer"], COMMANDS["glitter"]


@pytest.mark.parametrize(
    "source",
    [
        "{{1 +}}",
        "x {{a = 1}}",
        "a\n {{gen 'a' max_tokens=}}",
        "{{f(1,,)}}",
        "{{a b c = }}",
        "{{a.}}",
        "{{ @ }}",
        "{{x[}}",
        "{{ {1: } }}",
        "{{gen 'a' stop=\"}}\" x}}",  # refused by the transformer (positional after keyword), not the lexer
    ],
)
def test_the_error_starts_where_the_parser_says_the_tag_goes_wrong(source: str) -> None:
    with pytest.raises(gl.TemplateSyntaxError) as caught:
        parse(source)
    errors = [token for token in hl.template_tokens(source) if token.kind == hl.ERROR]
    assert errors and errors[0].start == offset(source, caught.value.line, caught.value.col)
    assert errors[0].start + len(errors[0].text) == source.index("}}", errors[0].start) + 2  # to the tag's end


def test_a_tag_then_a_brace_is_read_as_the_parser_reads_it() -> None:
    assert parses("{{x}}}") and kinds("{{x}}}") == [
        ("{{", hl.DELIMITER),
        ("x", hl.VARIABLE),
        ("}}", hl.DELIMITER),
        ("}", hl.TEXT),
    ]
    assert parses("{{set {'a': 1}}}") and hl.ERROR not in {kind for _, kind in kinds("{{set {'a': 1}}}")}


def test_every_spec_template_is_rebuilt_exactly_and_the_valid_ones_have_no_error() -> None:
    assert len(SPEC_TEMPLATES) > 50
    for source in SPEC_TEMPLATES + TRICKY:
        tokens = list(hl.template_tokens(source))
        assert "".join(t.text for t in tokens) == source
        assert all(a.start + len(a.text) == b.start for a, b in itertools.pairwise(tokens))
        if parses(source):
            assert hl.ERROR not in {t.kind for t in tokens}, source


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_random_templates_are_rebuilt_exactly_and_errors_only_mark_invalid_ones(pieces: list[str]) -> None:
    source = "".join(pieces)
    tokens = list(hl.template_tokens(source))
    assert "".join(t.text for t in tokens) == source
    if parses(source):
        assert hl.ERROR not in {t.kind for t in tokens}


# ---- renderings -----------------------------------------------------------------------------------------------------
def test_tag_html_escapes_and_classes_every_token() -> None:
    markup = hl.tag_html("{{gen 'a' stop='</pre><script>x</script>'}}")
    assert "<script" not in markup and "&lt;/pre&gt;&lt;script&gt;" in markup
    assert re.findall(r'class="([^"]+)"', markup) == [
        "gl-tok-delim",
        "gl-tok-command gl-tok-gen",
        "gl-tok-string",
        "gl-tok-attr",
        "gl-tok-operator",
        "gl-tok-string",
        "gl-tok-delim",
    ]
    assert hl.tag_html("{{!-- <b> --}}") == '<span class="gl-tok-comment">{{!-- &lt;b&gt; --}}</span>'
    for css_class in set(re.findall(r"gl-tok-[a-z]+", hl.TOKEN_CSS)):
        assert f".gl-root .{css_class}" in hl.TOKEN_CSS  # every rule is scoped to guidance_lite's box


def test_ansi_lines_close_their_colours_on_each_line() -> None:
    source = "{{#user}}\tHi {{!-- a\nlong comment --}}\n{{gen 'answer'}}{{/user}}"
    lines = hl.ansi_lines(source)
    assert [ANSI.sub("", line) for line in lines] == source.replace("\t", " ").split("\n")
    for line in lines:
        assert line.count("\x1b[0m") == len(ANSI.findall(line)) // 2  # every colour opened on a line is reset
    assert "\x1b[1;32mgen\x1b[0m" in lines[2] and "\x1b[2;3m" in lines[1]  # gen and the comment's second line


def test_highlighted_excerpt_is_the_plain_excerpt_in_colour() -> None:
    source = "line one\n{{gen 'a' max_tokens=}}"
    plain = gl.errors.source_excerpt(source, 2, 22)
    coloured = hl.highlighted_excerpt(source, 2, 22)
    assert ANSI.sub("", coloured) == plain and coloured != plain
    assert hl.highlighted_excerpt(source, 9, 1) == "" == gl.errors.source_excerpt(source, 9, 1)


# ---- Pygments ------------------------------------------------------------------------------------------------------
def test_the_entry_point_names_the_lexer() -> None:
    found = [ep for ep in entry_points(group="pygments.lexers") if ep.value.startswith("guidance_lite.")]
    assert [ep.value for ep in found] == ["guidance_lite.pygments_lexer:TemplateLexer"]


@pytest.mark.parametrize("alias", ["guidance", "handlebars-guidance", "guidance-lite"])
def test_pygments_finds_the_lexer_by_its_aliases(alias: str) -> None:
    from pygments.lexers import get_lexer_by_name

    from guidance_lite.pygments_lexer import TemplateLexer

    assert isinstance(get_lexer_by_name(alias), TemplateLexer)


def test_pygments_picks_the_lexer_for_our_file_names_only() -> None:
    from pygments.lexers import get_lexer_for_filename, guess_lexer

    assert get_lexer_for_filename("prog.gl.hbs").name == "guidance_lite template"
    assert get_lexer_for_filename("prog.gl.hbs", code="{{#if x}}y{{/if}}").name == "guidance_lite template"
    assert get_lexer_for_filename("prog.guidance").name == "guidance_lite template"
    assert get_lexer_for_filename("page.hbs").name != "guidance_lite template"  # plain handlebars keeps its lexer
    assert guess_lexer("{{#user}}Hi{{/user}}{{#assistant}}{{gen 'a'}}{{/assistant}}").name == "guidance_lite template"


def test_pygments_tokens_are_the_highlighter_tokens() -> None:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.token import Error, Keyword, Name, string_to_tokentype

    source = "{{#user}}{{q}}{{/user}}{{#assistant}}{{gen 'a' max_tokens=5}}{{/assistant}}{{#nope}}"
    lexer = get_lexer_by_name("guidance", stripnl=False)
    got = [(text, token_type) for _, token_type, text in lexer.get_tokens_unprocessed(source)]
    assert got == [(t.text, string_to_tokentype(t.kind)) for t in hl.template_tokens(source)]
    assert ("user", Keyword) in got and ("gen", Name.Builtin.Generating) in got and ("nope", Error) in got
    markup = highlight(source, lexer, HtmlFormatter())
    assert '<span class="nb nb-Generating">gen</span>' in markup  # Pygments styles it as its parent Name.Builtin


# ---- guidance-lite check --color -----------------------------------------------------------------------------------
@pytest.fixture
def templates(tmp_path: Path) -> dict[str, str]:
    good, bad = tmp_path / "good.hbs", tmp_path / "bad.hbs"
    good.write_text("{{#user}}{{question}}{{/user}}{{#assistant}}{{gen 'answer'}}{{/assistant}}", encoding="utf-8")
    bad.write_text("{{#user}}\n{{gen 'answer' max_tokens=}}\n{{/user}}", encoding="utf-8")
    return {"good": str(good), "bad": str(bad)}


def test_check_highlights_only_when_asked_or_on_a_terminal(
    templates: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["check", templates["bad"], "--color", "always"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "\x1b[1;32mgen\x1b[0m" in err  # the excerpt is highlighted
    plain = gl.errors.source_excerpt("{{#user}}\n{{gen 'answer' max_tokens=}}\n{{/user}}", 2, 27)
    assert ANSI.sub("", err).splitlines()[1:3] == plain.splitlines()
    assert cli.main(["check", templates["good"], "--color", "always"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "commands: \x1b[1;32mgen\x1b[0m" in out and "blocks: \x1b[1;35muser\x1b[0m" in out
    for args in (["--color", "never"], []):  # auto: capsys is no terminal
        assert cli.main(["check", templates["bad"], *args]) == cli.EXIT_USAGE
        assert cli.main(["check", templates["good"], *args]) == cli.EXIT_OK
        captured = capsys.readouterr()
        assert "\x1b" not in captured.out + captured.err


def test_check_auto_colours_a_terminal_unless_no_color_is_set(
    templates: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = Terminal(), Terminal()
    monkeypatch.setattr(cli.sys, "stdout", out)
    monkeypatch.setattr(cli.sys, "stderr", err)
    cli.main(["check", templates["bad"]])
    cli.main(["check", templates["good"]])
    assert "\x1b[" in err.text and "\x1b[" in out.text
    monkeypatch.setenv("NO_COLOR", "1")
    out.text = err.text = ""
    cli.main(["check", templates["bad"]])
    cli.main(["check", templates["good"]])
    assert "\x1b" not in out.text + err.text and "good.hbs: ok" in out.text
