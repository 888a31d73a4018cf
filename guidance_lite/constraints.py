"""Output constraints as llama.cpp GBNF grammars: select options, regex patterns, tool calls with valid arguments.

Why grammars: a local model can be *made* to produce a valid option, a matching string or a schema-valid tool call,
instead of being asked nicely and checked afterwards. Everything here returns GBNF text (the grammar language of
llama.cpp); ``guidance_lite.models.llamacpp`` compiles and applies it. Unsupported input raises ``ModelError`` naming
the construct, never a grammar that silently means something else.

Tool-call grammars describe a format's *whole* call text (e.g. hermes ``<tool_call>\\n{"name": …, "arguments": …}
\\n</tool_call>``); the backend starts constrained generation exactly where a call begins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from .models.base import ModelError
from .tools import ToolChoiceError, resolve_tool_choice, tool_specs

ROOT = "root"


# ---- literals and character classes --------------------------------------------------------------------------------
def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (quotes, backslashes and control characters escaped)."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _class_char(ch: str) -> str:
    """One character inside a GBNF ``[...]`` class; all but letters and digits are hex-escaped to stay unambiguous."""
    if ch.isascii() and ch.isalnum():
        return ch
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _class(ranges: Sequence[tuple[str, str]], negated: bool = False) -> str:
    body = "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in ranges)
    return f"[{'^' if negated else ''}{body}]"


# ---- select options --------------------------------------------------------------------------------------------------
def options_grammar(options: Sequence[str]) -> str:
    """A grammar whose only sentences are the option strings (duplicates collapse; order kept)."""
    if not options:
        raise ModelError("select needs at least one option to constrain generation; got an empty options list")
    seen: list[str] = []
    for option in options:
        if not isinstance(option, str):
            raise ModelError(f"select options must be strings, got {type(option).__name__}: {option!r}")
        if option not in seen:
            seen.append(option)
    return f"{ROOT} ::= " + " | ".join(gbnf_literal(o) for o in seen)


# ---- regex -> GBNF ---------------------------------------------------------------------------------------------------
_DIGIT = [("0", "9")]
_WORD = [("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")]
_SPACE = [(" ", " "), ("\t", "\t"), ("\n", "\n"), ("\r", "\r"), ("\f", "\f"), ("\v", "\v")]
_SHORTHANDS = {
    "d": (_DIGIT, False),
    "D": (_DIGIT, True),
    "w": (_WORD, False),
    "W": (_WORD, True),
    "s": (_SPACE, False),
    "S": (_SPACE, True),
}
_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "0": "\0"}
_UNSUPPORTED_ESCAPES = {
    "b": "word boundary \\b",
    "B": "non-boundary \\B",
    "A": "anchor \\A",
    "Z": "anchor \\Z",
    "z": "anchor \\z",
    "G": "anchor \\G",
    "p": "unicode property \\p{…}",
    "P": "unicode property \\P{…}",
    "k": "named backreference \\k<…>",
    "N": "named character \\N{…}",
}


class _RegexToGbnf:
    """A recursive-descent translator for the regex subset generation can enforce.

    Supported: literals, escapes, ``.`` (any character but newline), classes ``[a-z\\d_]`` / ``[^…]``, ``\\d \\w \\s``
    (ASCII) and their negations, groups ``(…)``, ``(?:…)``, ``(?P<n>…)``, alternation, ``? * +``, ``{m}``,
    ``{m,}``, ``{m,n}`` (lazy ``?`` suffixes accepted: the set of matching strings is the same), and ``^``/``$`` at
    the very ends (the whole output must match anyway). Anything else raises ``ModelError`` naming it.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.i = 0

    def fail(self, what: str) -> ModelError:
        return ModelError(
            f"pattern {self.pattern!r}: {what} (at position {self.i}) can't be enforced by the local "
            f"model's grammar; supported: literals, classes [...], \\d \\w \\s, ., groups, |, "
            f"? * + {{m,n}}. Rewrite the pattern without it"
        )

    def peek(self) -> Optional[str]:
        return self.pattern[self.i] if self.i < len(self.pattern) else None

    def translate(self) -> str:
        if self.peek() == "^":
            self.i += 1
        expr = self.alternation(top=True)
        if self.i < len(self.pattern):
            raise self.fail("an unbalanced ')'")
        return expr

    def alternation(self, top: bool = False) -> str:
        branches = [self.sequence(top)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence(top))
        return branches[0] if len(branches) == 1 else " | ".join(f"( {b} )" if b else '""' for b in branches)

    def sequence(self, top: bool) -> str:
        items: list[str] = []
        while True:
            ch = self.peek()
            if ch is None or ch in "|)":
                break
            if ch == "$":
                self.i += 1
                nxt = self.peek()
                if not (top and (nxt is None or nxt == "|")):
                    raise self.fail("the anchor '$' anywhere but at the end")
                continue
            if ch == "^":
                raise self.fail("the anchor '^' anywhere but at the start")
            atom = self.atom()
            items.append(self.quantified(atom))
        return " ".join(items) if items else '""'

    def quantified(self, atom: str) -> str:
        ch = self.peek()
        if ch is None:
            return atom
        if ch in "?*+":
            self.i += 1
            result = f"( {atom} ){ch}"
        elif ch == "{" and re.match(r"\{\d*(,\d*)?\}", self.pattern[self.i :]):
            match = re.match(r"\{(\d*)(?:(,)(\d*))?\}", self.pattern[self.i :])
            assert match is not None
            low, comma, high = match.group(1), match.group(2), match.group(3)
            if not low and not comma:
                raise self.fail("an empty quantifier '{}'")
            lo = int(low) if low else 0
            if comma and high and int(high) < lo:
                raise self.fail(f"the quantifier {match.group(0)} (max below min)")
            self.i += match.end()
            bounds = str(lo) if not comma else f"{lo},{high}" if high else f"{lo},"
            result = f"( {atom} ){{{bounds}}}"
        else:
            return atom
        nxt = self.peek()
        if nxt == "?":  # lazy: same language
            self.i += 1
        elif nxt == "+":
            raise self.fail("a possessive quantifier")
        after = self.peek()
        if (after is not None and after in "?*+") or (
            after == "{" and re.match(r"\{\d*(,\d*)?\}", self.pattern[self.i :])
        ):
            raise self.fail("a repeated quantifier")
        return result

    def atom(self) -> str:
        ch = self.pattern[self.i]
        if ch == "(":
            return self.group()
        if ch == "[":
            return self.char_class()
        if ch == ".":
            self.i += 1
            return _class([("\n", "\n")], negated=True)
        if ch == "\\":
            return self.escape()
        if ch in "*+?":
            raise self.fail(f"a quantifier '{ch}' with nothing to repeat")
        if ch == "{" and re.match(r"\{\d*(,\d*)?\}", self.pattern[self.i :]):
            raise self.fail("a quantifier '{…}' with nothing to repeat")
        self.i += 1
        return gbnf_literal(ch)

    def group(self) -> str:
        self.i += 1
        if self.pattern.startswith("?", self.i):
            rest = self.pattern[self.i :]
            if rest.startswith("?:"):
                self.i += 2
            elif m := re.match(r"\?P?<[A-Za-z_]\w*>", rest):
                self.i += m.end()
            else:
                kinds = {
                    "?=": "a lookahead (?=…)",
                    "?!": "a negative lookahead (?!…)",
                    "?<=": "a lookbehind (?<=…)",
                    "?<!": "a negative lookbehind (?<!…)",
                    "?>": "an atomic group (?>…)",
                    "?P=": "a backreference (?P=…)",
                    "?#": "a comment (?#…)",
                    "?(": "a conditional (?(…)…)",
                }
                for prefix, name in sorted(kinds.items(), key=lambda kv: -len(kv[0])):
                    if rest.startswith(prefix):
                        raise self.fail(name)
                raise self.fail("inline flags (?…)")
        inner = self.alternation()
        if self.peek() != ")":
            raise self.fail("an unclosed '('")
        self.i += 1
        return f"( {inner} )"

    def escape(self) -> str:
        if self.i + 1 >= len(self.pattern):
            raise self.fail("a trailing backslash")
        ch = self.pattern[self.i + 1]
        if ch in _SHORTHANDS:
            self.i += 2
            ranges, negated = _SHORTHANDS[ch]
            return _class(ranges, negated)
        return gbnf_literal(self.escaped_char())

    def escaped_char(self) -> str:
        """The single character an escape like ``\\.`` / ``\\n`` / ``\\x41`` / ``\\u00e9`` stands for."""
        ch = self.pattern[self.i + 1]
        if ch in _UNSUPPORTED_ESCAPES:
            raise self.fail(_UNSUPPORTED_ESCAPES[ch])
        if ch.isdigit() and ch != "0":
            raise self.fail(f"a backreference \\{ch}")
        if ch in _CHAR_ESCAPES:
            self.i += 2
            return _CHAR_ESCAPES[ch]
        for prefix, width in (("x", 2), ("u", 4), ("U", 8)):
            if ch == prefix:
                digits = self.pattern[self.i + 2 : self.i + 2 + width]
                if not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
                    raise self.fail(f"a malformed \\{prefix} escape")
                self.i += 2 + width
                return chr(int(digits, 16))
        if ch.isalnum():
            raise self.fail(f"the unknown escape \\{ch}")
        self.i += 2
        return ch

    def char_class(self) -> str:
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges: list[tuple[str, str]] = []
        first = True
        while True:
            ch = self.peek()
            if ch is None:
                self.i = start
                raise self.fail("an unclosed '['")
            if ch == "]" and not first:
                self.i += 1
                break
            first = False
            if ch == "[" and self.pattern.startswith("[:", self.i):
                raise self.fail("a POSIX class [:…:]")
            if ch == "\\" and self.i + 1 < len(self.pattern) and self.pattern[self.i + 1] in _SHORTHANDS:
                short_ranges, short_negated = _SHORTHANDS[self.pattern[self.i + 1]]
                if short_negated:
                    raise self.fail(f"a negated shorthand \\{self.pattern[self.i + 1]} inside [...]")
                self.i += 2
                ranges.extend(short_ranges)
                continue
            low = self.class_member()
            if self.peek() == "-" and self.i + 1 < len(self.pattern) and self.pattern[self.i + 1] != "]":
                self.i += 1
                if self.peek() == "\\" and self.i + 1 < len(self.pattern) and self.pattern[self.i + 1] in _SHORTHANDS:
                    raise self.fail("a range ending in a shorthand class")
                high = self.class_member()
                if ord(high) < ord(low):
                    raise self.fail(f"the reversed range {low}-{high}")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        return _class(ranges, negated)

    def class_member(self) -> str:
        ch = self.pattern[self.i]
        if ch == "\\":
            if self.i + 1 < len(self.pattern) and self.pattern[self.i + 1] == "b":
                self.i += 2
                return "\b"  # inside a class \b is backspace
            return self.escaped_char()
        self.i += 1
        return ch


def regex_to_gbnf(pattern: str) -> str:
    """A grammar whose sentences are exactly the strings that fully match ``pattern`` (see ``_RegexToGbnf``)."""
    if not isinstance(pattern, str):
        raise ModelError(f"pattern must be a string, got {type(pattern).__name__}")
    try:
        re.compile(pattern)
    except (re.error, RecursionError) as exc:  # RecursionError: groups nested past the re parser's depth
        raise ModelError(f"pattern {pattern!r:.80} is not a valid regular expression: {exc}") from None
    return f"{ROOT} ::= " + _RegexToGbnf(pattern).translate()


# ---- JSON schema -> GBNF ---------------------------------------------------------------------------------------------
@dataclass
class GrammarBuilder:
    """Collects named rules (schema rules from llama.cpp's converter plus our own) into one grammar.

    The converter closes objects: keys outside ``properties`` are allowed only with ``additionalProperties: true``
    (or a schema), so small models can't invent extra arguments. Numeric bounds (minimum/maximum) aren't enforced.
    """

    converter: Any = None
    rules: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.converter is None:
            from llama_cpp.llama_grammar import SchemaConverter  # the same converter as json_schema_to_gbnf

            self.converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)

    def schema_rule(self, schema: dict, name: str, what: str) -> str:
        """Convert a JSON schema into rules; returns the name of the rule matching one JSON value of that schema.

        ``name`` also prefixes the schema's ``$defs``, so two tools with a ``Location`` model of their own don't
        share one rule (the converter names definition rules after the definition alone)."""
        try:
            own = _prefixed_definitions(json.loads(json.dumps(schema)), name)
            resolved = self.converter.resolve_refs(own, name)
            return self.converter.visit(resolved, name)
        except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
            raise ModelError(
                f"{what}: its JSON schema can't be turned into a grammar ({exc or type(exc).__name__}); "
                f"simplify the schema (plain types, properties, required, enum, arrays)"
            ) from None

    def add(self, name: str, rule: str) -> str:
        self.rules[name] = rule
        return name

    def grammar(self, root: str) -> str:
        lines = [f"{ROOT} ::= {root}"]
        lines += [f"{name} ::= {rule}" for name, rule in self.rules.items()]
        lines.append(self.converter.format_grammar())
        return "\n".join(lines)


def _prefixed_definitions(schema: Any, prefix: str) -> Any:
    """``schema`` with local definitions (``$defs``/``definitions``) renamed ``<prefix>-<name>``, refs to match."""
    if isinstance(schema, list):
        return [_prefixed_definitions(item, prefix) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$defs", "definitions") and isinstance(value, dict):
            out[key] = {f"{prefix}-{name}": _prefixed_definitions(sub, prefix) for name, sub in value.items()}
        elif key == "$ref" and isinstance(value, str) and re.match(r"#/(\$defs|definitions)/[^/]+$", value):
            head, _, name = value.rpartition("/")
            out[key] = f"{head}/{prefix}-{name}"
        else:
            out[key] = _prefixed_definitions(value, prefix)
    return out


# ---- tool calls ----------------------------------------------------------------------------------------------------
class CallSyntax(Protocol):
    """What a tool format tells us about its call text (``guidance_lite.tool_formats.ToolFormat`` provides it)."""

    name: str
    mid_text_prefix: str

    def call_grammar_prefix(self, tool_name: Optional[str] = None) -> str: ...

    def call_grammar_suffix(self) -> str: ...

    def parallel_calls(self, builder: GrammarBuilder, one: str, tools: list[tuple[str, str]]) -> Optional[str]: ...


# Building blocks formats use for ``parallel_calls``.
JSON_STRING = r'"\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\""'  # one JSON string


def separated_calls(one: str, separator: str) -> str:
    """Rule: one or more calls ``one`` with ``separator`` between them."""
    return f"{one} ( {gbnf_literal(separator)} {one} )*"


def json_call_objects(builder: GrammarBuilder, tools: list[tuple[str, str]], args_key: str) -> str:
    """Rule: one bare ``{"name": "<tool>", "<args_key>": <args>}`` object for any of ``tools``."""
    alternatives = []
    for name, args in tools:
        head = '{"name": ' + json.dumps(name, ensure_ascii=False) + ', "' + args_key + '": '
        alternatives.append(f'{gbnf_literal(head)} {args} "}}"')
    return builder.add("gl-json-call", " | ".join(alternatives))


def tool_call_grammar(
    fmt: CallSyntax,
    tools: Sequence[Any],
    tool_choice: Any = "required",
    *,
    parallel: bool = True,
    text_alternative: Optional[str] = None,
    after_text: bool = False,
) -> str:
    """A grammar for the complete call text of ``fmt`` whose arguments match each tool's JSON schema.

    One call is the format's ``call_grammar_prefix(name)`` + arguments + ``call_grammar_suffix()``, so the text is
    exactly what the format's parser reads. ``tools``: ToolSpecs (or Tools / OpenAI tool dicts); ``tool_choice``: a
    ToolChoice or as a template writes it ('required'/'auto': any offered tool; a name: only that tool). ``parallel``
    allows several calls in a row (``fmt.parallel_calls``). ``text_alternative`` is a complete grammar (e.g. from
    ``regex_to_gbnf``) accepted instead of a call. ``after_text``: the call follows text already written in the reply
    (adds ``fmt.mid_text_prefix``).
    """
    specs = tool_specs(tools)
    if not specs:
        raise ModelError("a tool call was asked for but no tools were offered; pass tools=[...] to gen")
    try:
        allowed = resolve_tool_choice(tool_choice, specs).allowed(specs)
    except ToolChoiceError as exc:
        raise ModelError(str(exc)) from None
    builder = GrammarBuilder()
    try:
        suffix = gbnf_literal(fmt.call_grammar_suffix())
        heads = [gbnf_literal(fmt.call_grammar_prefix(spec.name)) for spec in allowed]
    except NotImplementedError:
        raise ModelError(
            f"tool format {fmt.name!r} does not describe its call syntax (call_grammar_prefix/"
            f"suffix), so calls can't be constrained; use tool_choice='auto'"
        ) from None
    per_tool: list[tuple[str, str]] = []
    alternatives = []
    for i, (spec, head) in enumerate(zip(allowed, heads)):
        args = builder.schema_rule(spec.parameters, f"gl-args-{i}", f"tool {spec.name!r}")
        per_tool.append((spec.name, args))
        alternatives.append(builder.add(f"gl-call-{i}", f"{head} {args} {suffix}"))
    one = builder.add("gl-call", " | ".join(alternatives))
    several = fmt.parallel_calls(builder, one, per_tool) if parallel else None
    root = several or one
    if after_text and fmt.mid_text_prefix:
        root = f"{gbnf_literal(fmt.mid_text_prefix)} ( {root} )"
    if not text_alternative:
        return builder.grammar(root)
    return builder.grammar(f"( {root} ) | gl-text") + "\n" + _renamed_root(text_alternative, "gl-text")


def _renamed_root(grammar: str, name: str) -> str:
    """The same grammar with its ``root`` rule called ``name`` (our grammars define root first, never refer to it)."""
    prefix = f"{ROOT} ::= "
    if not grammar.startswith(prefix):
        raise ValueError("expected a grammar whose first rule is root")
    return f"{name} ::= " + grammar[len(prefix) :]
