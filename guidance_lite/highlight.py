"""Syntax highlighting of templates: one tokenizer, and the HTML and terminal renderings built on it.

Why its own tokenizer rather than regexes: it is built from what the parser knows, so it cannot disagree with it. The
template is cut into pieces by ``parser.source_pieces`` (text, ``\\{{`` escapes, comments, tags), each tag is lexed by
the grammar itself in parser context (``parser.read_tag``: ``else`` is a keyword only where the grammar says so, the
part of a tag after a syntax fault is an error), and names are classified from the registry (blocks, commands, and
which of them generate model text). Token kinds are Pygments token type names (``"Name.Builtin"``), so the Pygments
lexer (``pygments_lexer.py``) is a thin adapter, while display and the CLI use the tokens without needing Pygments.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import NamedTuple, Optional

from .parser import read_tag, source_pieces
from .registry import BLOCKS, COMMANDS

# Token kinds (Pygments token type names; custom subtypes inherit their parent's style in every Pygments formatter).
TEXT = "Text"
WHITESPACE = "Text.Whitespace"
COMMENT = "Comment.Multiline"
ESCAPE = "Literal.String.Escape"
DELIMITER = "Comment.Preproc"  # {{ }} and the # / > that open a block, close it or call a partial
KEYWORD = "Keyword"  # block names and separators (else, elif, or)
GENERATING_BLOCK = "Keyword.Generating"  # a block whose registration says it generates model text (geneach, select)
COMMAND = "Name.Builtin"  # a registered command or helper
GENERATING_COMMAND = "Name.Builtin.Generating"  # gen, select: their output is model text
FUNCTION = "Name.Function"  # a call of a function the program is given (not registered)
VARIABLE = "Name.Variable"
SPECIAL = "Name.Builtin.Pseudo"  # this, @index, @first, @last, @key, @prefix
ATTRIBUTE = "Name.Attribute"  # keyword argument names
NAME = "Name"  # an attribute after a dot
STRING = "Literal.String"
INTEGER = "Literal.Number.Integer"
FLOAT = "Literal.Number.Float"
CONSTANT = "Keyword.Constant"  # True False None
OPERATOR = "Operator"
WORD_OPERATOR = "Operator.Word"  # and or not in is
PUNCTUATION = "Punctuation"
ERROR = "Error"  # from a syntax fault to the end of its tag, and blocks nobody registered

_WORD_OPERATORS = frozenset({"and", "or", "not", "in", "is"})
_CONSTANTS = frozenset({"True", "False", "None"})
_PUNCTUATION = frozenset("()[]{},:.")
_TAG_SIGILS = frozenset({"HASH", "SLASH", "MORETHAN"})  # the character after {{ in {{#x}}, {{/x}}, {{>x}}
_SEPARATORS = frozenset({"ELSE", "ELIF", "OR"})
# the terminals that can start a command's argument (grammar: ``command: NAME _cmd_arg+``)
_ARGUMENT_STARTS = frozenset(
    {"NAME", "AT_NAME", "STRING", "INT", "FLOAT", "LPAR", "LSQB", "LBRACE", "TRUE", "FALSE", "NONE"}
)


class Token(NamedTuple):
    """One token: where it starts in the text given, its kind (a Pygments token type name) and its text."""

    start: int
    kind: str
    text: str


def template_tokens(source: str) -> Iterator[Token]:
    """Every token of ``source`` in order; their texts joined rebuild the source exactly, for any input (a template
    with syntax errors included: the faulty part of a tag is ``Error``, an unclosed ``{{`` starts plain text)."""
    for piece in source_pieces(source):
        text = source[piece.start : piece.end]
        if piece.kind == "text":
            yield Token(piece.start, TEXT, text)
        elif piece.kind == "escaped":
            yield Token(piece.start, ESCAPE, text)
        elif piece.kind == "comment":
            yield Token(piece.start, COMMENT, text)
        else:
            for token in tag_tokens(text):
                yield Token(piece.start + token.start, token.kind, token.text)


def tag_tokens(tag: str) -> tuple[Token, ...]:
    """The tokens of one tag's text. Lexing is cached by text (a template repeats its tags); naming the kinds is not,
    so a block or command registered later is highlighted as such."""
    lexed, fault = _lexed(tag)
    if fault is not None and tag.endswith("}}}"):  # `{{x}}}`: a tag, then text that starts with '}' (as parsed)
        shorter = tag_tokens(tag[:-1])
        if all(token.kind != ERROR for token in shorter):
            return (*shorter, Token(len(tag) - 1, TEXT, "}"))
    out: list[Token] = []
    pos = 0
    for i, (start, _terminal, text) in enumerate(lexed):
        if start > pos:
            out.append(Token(pos, WHITESPACE, tag[pos:start]))
        out.append(Token(start, _kind(lexed, i), text))
        pos = start + len(text)
    end = len(tag) if fault is None else fault
    if end > pos:
        out.append(Token(pos, WHITESPACE, tag[pos:end]))
    if fault is not None and fault < len(tag):
        out.append(Token(fault, ERROR, tag[fault:]))
    return tuple(out)


class _Lexeme(NamedTuple):
    start: int
    terminal: str  # the grammar's terminal name (NAME, STRING, TAG_OPEN, HASH, …)
    text: str


@lru_cache(maxsize=4096)
def _lexed(tag: str) -> tuple[tuple[_Lexeme, ...], Optional[int]]:
    tokens, fault = read_tag(tag)
    return tuple(_Lexeme(token.start_pos or 0, token.type, str(token)) for token in tokens), fault


def name_kind(name: str, block: bool = False) -> str:
    """The kind of a bare name (as ``check`` lists them): a registered block or command, else a variable (a block
    nobody registered is an error: the parser refuses it)."""
    if block:
        spec = BLOCKS.get(name)
        return ERROR if spec is None else GENERATING_BLOCK if spec.generates else KEYWORD
    command = COMMANDS.get(name)
    if command is None:
        return VARIABLE
    return GENERATING_COMMAND if command.generates else COMMAND


def _kind(lexed: tuple[_Lexeme, ...], i: int) -> str:
    """The kind of lexeme ``i`` of a tag, from its terminal, its neighbours and the registry."""
    terminal, text = lexed[i].terminal, lexed[i].text
    before = lexed[i - 1].terminal if i > 0 else None
    after = lexed[i + 1].terminal if i + 1 < len(lexed) else None
    if terminal in ("TAG_OPEN", "TAG_CLOSE") or (i == 1 and terminal in _TAG_SIGILS):
        return DELIMITER
    if (i == 1 and terminal in _SEPARATORS) or (terminal == "IF" and before == "ELSE"):
        return KEYWORD
    if terminal == "STRING":
        return STRING
    if terminal == "INT":
        return INTEGER
    if terminal == "FLOAT":
        return FLOAT
    if terminal == "AT_NAME":
        return SPECIAL
    if text in _CONSTANTS:
        return CONSTANT
    if text in _WORD_OPERATORS:
        return WORD_OPERATOR
    if terminal != "NAME":
        return PUNCTUATION if text in _PUNCTUATION else OPERATOR
    if i == 2 and before in ("HASH", "SLASH"):
        return name_kind(text, block=True)
    if i == 2 and before == "MORETHAN":
        return VARIABLE  # {{>partial}}: a Program or template passed in
    if after == "EQUAL":
        return ATTRIBUTE
    if before == "DOT":
        return NAME
    if text == "this":
        return SPECIAL
    command_form = after in _ARGUMENT_STARTS and (i == 1 or before == "LPAR")  # {{name arg …}}, (name arg …)
    if after == "LPAR_CALL" or command_form or (i == 1 and text in COMMANDS):
        named = name_kind(text)
        return FUNCTION if named == VARIABLE else named  # not registered: a function the program is given
    return VARIABLE


# ---- HTML and terminal --------------------------------------------------------------------------------------------

# How each kind looks: its CSS classes (rules in ``TOKEN_CSS``, all under ``.gl-root`` like display's, so they cannot
# restyle the rest of a notebook) and its terminal colour. A kind missing here is plain text.
_STYLES: dict[str, tuple[str, str]] = {
    COMMENT: ("gl-tok-comment", "\x1b[2;3m"),
    ESCAPE: ("gl-tok-escape", "\x1b[31m"),
    DELIMITER: ("gl-tok-delim", "\x1b[2m"),
    KEYWORD: ("gl-tok-keyword", "\x1b[1;35m"),
    GENERATING_BLOCK: ("gl-tok-keyword gl-tok-gen", "\x1b[1;32m"),
    COMMAND: ("gl-tok-command", "\x1b[34m"),
    GENERATING_COMMAND: ("gl-tok-command gl-tok-gen", "\x1b[1;32m"),
    FUNCTION: ("gl-tok-function", "\x1b[36m"),
    SPECIAL: ("gl-tok-special", "\x1b[35m"),
    ATTRIBUTE: ("gl-tok-attr", "\x1b[33m"),
    STRING: ("gl-tok-string", "\x1b[31m"),
    INTEGER: ("gl-tok-number", "\x1b[33m"),
    FLOAT: ("gl-tok-number", "\x1b[33m"),
    CONSTANT: ("gl-tok-constant", "\x1b[33m"),
    WORD_OPERATOR: ("gl-tok-operator", "\x1b[35m"),
    OPERATOR: ("gl-tok-operator", ""),
    ERROR: ("gl-tok-error", "\x1b[1;4;31m"),
}
_ANSI_RESET = "\x1b[0m"

TOKEN_CSS = """
.gl-root .gl-tok-delim{color:var(--gl-muted,#57606a)}
.gl-root .gl-tok-keyword{color:#7c3aed;font-weight:600}
.gl-root .gl-tok-command{color:#0369a1}
.gl-root .gl-tok-gen{color:#047857;font-weight:700}
.gl-root .gl-tok-function{color:#0e7490}
.gl-root .gl-tok-special{color:#9333ea;font-style:italic}
.gl-root .gl-tok-attr{color:#b45309}
.gl-root .gl-tok-string{color:#be123c}
.gl-root .gl-tok-escape{color:#be123c;font-weight:600}
.gl-root .gl-tok-number,.gl-root .gl-tok-constant{color:#c2410c}
.gl-root .gl-tok-operator{color:#6d28d9}
.gl-root .gl-tok-comment{color:#6b7280;font-style:italic}
.gl-root .gl-tok-error{color:#dc2626;text-decoration:underline wavy #dc2626}
[data-jp-theme-light="false"] .gl-root .gl-tok-keyword,body.vscode-dark .gl-root .gl-tok-keyword{color:#c4b5fd}
[data-jp-theme-light="false"] .gl-root .gl-tok-command,body.vscode-dark .gl-root .gl-tok-command{color:#7dd3fc}
[data-jp-theme-light="false"] .gl-root .gl-tok-gen,body.vscode-dark .gl-root .gl-tok-gen{color:#6ee7b7}
[data-jp-theme-light="false"] .gl-root .gl-tok-function,body.vscode-dark .gl-root .gl-tok-function{color:#67e8f9}
[data-jp-theme-light="false"] .gl-root .gl-tok-special,body.vscode-dark .gl-root .gl-tok-special{color:#d8b4fe}
[data-jp-theme-light="false"] .gl-root .gl-tok-attr,body.vscode-dark .gl-root .gl-tok-attr{color:#fcd34d}
[data-jp-theme-light="false"] .gl-root .gl-tok-string,[data-jp-theme-light="false"] .gl-root .gl-tok-escape,
body.vscode-dark .gl-root .gl-tok-string,body.vscode-dark .gl-root .gl-tok-escape{color:#fda4af}
[data-jp-theme-light="false"] .gl-root .gl-tok-number,[data-jp-theme-light="false"] .gl-root .gl-tok-constant,
body.vscode-dark .gl-root .gl-tok-number,body.vscode-dark .gl-root .gl-tok-constant{color:#fdba74}
[data-jp-theme-light="false"] .gl-root .gl-tok-operator,body.vscode-dark .gl-root .gl-tok-operator{color:#c4b5fd}
[data-jp-theme-light="false"] .gl-root .gl-tok-comment,body.vscode-dark .gl-root .gl-tok-comment{color:#a3acb5}
[data-jp-theme-light="false"] .gl-root .gl-tok-error,body.vscode-dark .gl-root .gl-tok-error{color:#fca5a5}
"""


def tokens_html(tokens: Iterable[Token]) -> str:
    """Tokens as escaped HTML, each kind in a ``<span class="gl-tok-…">`` (style: ``TOKEN_CSS``)."""
    out = []
    for token in tokens:
        text = html.escape(token.text, quote=True)
        style = _STYLES.get(token.kind)
        out.append(f'<span class="{style[0]}">{text}</span>' if style else text)
    return "".join(out)


def tag_html(tag: str) -> str:
    """One tag (or comment) highlighted as escaped HTML: what display puts inside a tag's box."""
    if tag.startswith("{{!") or tag.startswith("{{~!"):
        return tokens_html((Token(0, COMMENT, tag),))
    return tokens_html(tag_tokens(tag))


# ---- terminal -----------------------------------------------------------------------------------------------------


def paint(kind: str, text: str) -> str:
    """``text`` in the terminal colour of ``kind`` (unchanged when the kind has none)."""
    code = _STYLES.get(kind, ("", ""))[1]
    return f"{code}{text}{_ANSI_RESET}" if code and text else text


def ansi_lines(source: str) -> list[str]:
    """The template highlighted for a terminal, one string per source line, each line's colours closed on that line
    (so any line can be printed alone, as in an error excerpt). Tabs become one space, as in ``source_excerpt``."""
    lines: list[str] = [""]
    for token in template_tokens(source):
        parts = token.text.replace("\t", " ").split("\n")
        for index, part in enumerate(parts):
            if index:
                lines.append("")
            lines[-1] += paint(token.kind, part)
    return lines


def highlighted_excerpt(source: str, line: int, col: int) -> str:
    """``errors.source_excerpt`` in colour: the highlighted source line and a red caret under column ``col``."""
    lines = ansi_lines(source)
    if not 1 <= line <= len(lines) or not source.splitlines():
        return ""
    return f"    {lines[line - 1]}\n    {' ' * max(col - 1, 0)}{paint(ERROR, '^')}"


__all__ = [
    "Token",
    "template_tokens",
    "tag_tokens",
    "tokens_html",
    "tag_html",
    "TOKEN_CSS",
    "paint",
    "name_kind",
    "ansi_lines",
    "highlighted_excerpt",
]
