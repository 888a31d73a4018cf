"""The Pygments lexer for guidance_lite templates, registered through the ``pygments.lexers`` entry point.

Why a thin adapter: the tokens come from ``highlight.template_tokens`` (the parser's own pieces, the grammar's lexer
and the registry), whose kinds are already Pygments token type names. This is the only module that imports Pygments,
and nothing in the package imports it: Pygments finds it through the entry point (``get_lexer_by_name("guidance")``,
``pygmentize -l guidance``, nbconvert, Sphinx), so Pygments stays optional for the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pygments.lexer import Lexer
from pygments.token import string_to_tokentype

from .highlight import template_tokens

# the telltales of a guidance template, for Pygments' guessing (plain handlebars has no role blocks and no gen)
_TELLTALES = ("{{gen ", "{{#system", "{{#user", "{{#assistant", "{{#geneach", "{{select ", "{{~gen ")


class TemplateLexer(Lexer):
    """guidance_lite (handlebars-era guidance) templates: tags, blocks, commands and expressions."""

    name = "guidance_lite template"
    aliases = ("guidance", "handlebars-guidance", "guidance-lite")
    # not *.hbs: plain handlebars keeps its own lexer
    filenames = ("*.gl.hbs", "*.guidance")
    mimetypes = ("text/x-guidance-template",)
    priority = 0.5  # *.gl.hbs also matches HTML+Handlebars' *.hbs: the more specific pattern wins

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, Any, str]]:
        for token in template_tokens(text):
            yield token.start, string_to_tokentype(token.kind), token.text

    @staticmethod
    def analyse_text(text: str) -> float:
        """How sure Pygments' guessing may be that ``text`` is a guidance template (0 for plain handlebars)."""
        found = sum(1 for telltale in _TELLTALES if telltale in text)
        return min(0.3 * found, 0.9)


__all__ = ["TemplateLexer"]
