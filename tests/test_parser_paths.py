"""The parser's fast path (regex split + per-tag memo) must agree with the full Lark parse on every input:
same AST (positions included for template nodes) or the same syntax error."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from guidance_lite import parser
from guidance_lite.errors import TemplateSyntaxError

SPEC_DIR = Path(__file__).parent / "spec"


def outcome(source: str, fast: bool):
    try:
        template = parser._parse_uncached(source, None, fast=fast)
    except TemplateSyntaxError as exc:
        return ("error", str(exc))
    return ("ok", _shape(template.body))


def _shape(body) -> str:
    # expression nodes of memoized tags carry the positions of the tag's first occurrence; template nodes don't
    text = repr(body)
    return re.sub(r"(?<!Text\()(?<!Output\()(?<!Block\()(?<!Branch\()(?<!Partial\()line=\d+, col=\d+", "", text)


def test_paths_agree_on_every_spec_template():
    sources = [case["template"] for f in sorted(SPEC_DIR.glob("*.json")) for case in json.loads(f.read_text())]
    assert len(sources) > 50
    for source in sources:
        assert outcome(source, True) == outcome(source, False), source


TRICKY = [
    "{{set {'a': {'b': 1}}}}",
    '{"n": {{n}}}',
    "{{x}}}}",
    "a\\{{b}} {{!-- }} --}} c",
    "{{gen 'a}}b' stop='}}'}}",
    "{{~#if x~}} y {{~else~}} z {{~/if}}",
    "{{#each items}}\n{{this}}\n{{/each}}",
    "{{",
    "}}",
    "{{x",
    "{{'a}}",
    "{{! short }} {{~!-- long --~}}",
    "{{>p 1 k=2}}",
    "{{#select 'x'}}a{{or}}b{{/select}}",
    "{{set {'a': 1}}}}",
    "{{x~}}}",
    "{{#if a}}}x{{else}}}}y{{/if}}}",
    "{{x.}}}",
]


def test_paths_agree_on_tricky_inputs():
    for source in TRICKY:
        assert outcome(source, True) == outcome(source, False), source


PIECES = [
    "{{",
    "}}",
    "{{~",
    "~}}",
    "#if x",
    "/if",
    "#each xs",
    "/each",
    "else",
    "'a'",
    '"b}}"',
    "{",
    "}",
    "\\{{",
    "!--",
    "--",
    "!",
    " ",
    "\n",
    "gen 'v'",
    "x",
    "=",
    "1",
    "(",
    ")",
    "[",
    "]",
    ",",
    "text",
    "~",
    "or",
    "elif y",
    ">",
    "@index",
    "this.a",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_paths_agree_on_random_inputs(pieces):
    source = "".join(pieces)
    assert outcome(source, True) == outcome(source, False)


def syntax_error(source: str) -> TemplateSyntaxError:
    try:
        parser.parse(source)
    except TemplateSyntaxError as exc:
        return exc
    raise AssertionError(f"{source!r} parsed")


def test_error_positions_come_from_the_lexer() -> None:
    # after `{{x}}}` (parsed in two halves) a later error still names the template's own line and column
    err = syntax_error("{{x}}}\n{{#if a}}{{y z=}}{{/if}}")
    assert (err.message, err.line, err.col, err.text) == ("the tag ends where a value was expected", 2, 16, "}}")
    assert err.hint == "complete the expression in '{{y z=}}'"
    # a hostile 5,000-character tag: the hint names it by its ends, the excerpt shows a window (the error stays short)
    err = syntax_error("{{" + "[" * 5000 + "}}")
    assert err.hint == "complete the expression in '{{" + "[" * 26 + "…" + "[" * 26 + "}}'"
    assert len(str(err)) < 600
    # a complete comment inside an unclosed tag: the tag is what was never closed, not the comment
    for source in ("{{x {{~!~}}", "{{ {{!-- c --}}"):
        err = syntax_error(source)
        assert (err.message, err.line, err.col) == ("unclosed tag: '{{' is never closed with '}}'", 1, 1), source
    # an escaped opener is text, never the tag left open
    err = syntax_error("a \\{{ b {{name")
    assert (err.line, err.col, err.text) == (1, 9, "{{name")
    err = syntax_error("x {{!-- never closed")
    assert (err.message, err.col) == ("unclosed comment: it is never closed with '--}}'", 3)


def test_source_pieces_cover_the_source_even_when_it_does_not_parse() -> None:
    source = "a \\{{b}} {{!-- c --}}{{#if x}}{{gen 'v'}}{{/if}} {{{raw}}} {{x}}} {{unclosed 'y"
    pieces = parser.source_pieces(source)
    assert "".join(source[p.start : p.end] for p in pieces) == source
    assert [(p.kind, p.head) for p in pieces if p.kind not in ("text", "escaped")] == [
        ("comment", None),
        ("open", "if"),
        ("output", "gen"),
        ("close", "if"),
        ("tag", None),
        ("tag", None),
    ]
    assert pieces[-1].kind == "text" and source[pieces[-1].start :] == "{{unclosed 'y"
