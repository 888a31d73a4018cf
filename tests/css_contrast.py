"""Just enough CSS to compute the contrast of every text of our HTML views: the cascade of our own stylesheet (class,
tag and attribute selectors, descendant and child combinators, ``!important``), inline styles, custom properties and
``var()`` with fallbacks, inherited colours, translucent backgrounds composited over the page and ``opacity``.

Themes are the values of JupyterLab 4's theme variables our stylesheet reads (copied from the light and dark theme
CSS of jupyterlab 4.6, ``themes/@jupyterlab/theme-*-extension/index.css``), the page background and text colour an
output sits on, and the attributes JupyterLab or VS Code put on ``<body>``. ``tests/ui/lab_views.py`` measures the
same thing in a real JupyterLab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from html_tree import Node, parse

RGBA = tuple[float, float, float, float]


@dataclass(frozen=True)
class Theme:
    name: str
    body: dict  # attributes of <body>
    background: str
    text: str
    variables: dict = field(default_factory=dict)


_JUPYTERLAB_LIGHT = {
    "--jp-layout-color0": "#ffffff",
    "--jp-content-font-color1": "rgba(0,0,0,.87)",
    "--jp-brand-color0": "#0d47a1",
    "--jp-brand-color2": "#64b5f6",
    "--jp-error-color0": "#b71c1c",
    "--jp-error-color2": "#e57373",
    "--jp-ui-font-family": "system-ui, sans-serif",
}
_JUPYTERLAB_DARK = {
    "--jp-layout-color0": "#111111",
    "--jp-content-font-color1": "#ffffff",
    "--jp-brand-color0": "#1976d2",
    "--jp-brand-color2": "#64b5f6",
    "--jp-error-color0": "#d32f2f",
    "--jp-error-color2": "#e57373",
    "--jp-ui-font-family": "system-ui, sans-serif",
}

THEMES = (
    Theme("JupyterLab Light", {"data-jp-theme-light": "true"}, "#ffffff", "rgba(0,0,0,.87)", _JUPYTERLAB_LIGHT),
    Theme("JupyterLab Dark", {"data-jp-theme-light": "false"}, "#111111", "#ffffff", _JUPYTERLAB_DARK),
    # frontends without JupyterLab's variables: the fallbacks
    Theme("plain light page", {}, "#ffffff", "#000000"),
    Theme("VS Code dark", {"class": "vscode-dark"}, "#1e1e1e", "#cccccc"),
)


# ---- colours ---------------------------------------------------------------------------------------------------

_NAMED = {"white": "#ffffff", "black": "#000000", "transparent": "rgba(0,0,0,0)"}


def parse_color(text: str) -> RGBA:
    text = _NAMED.get(text.strip().lower(), text.strip().lower())
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 1.0)
    match = re.fullmatch(r"rgba?\(([^)]*)\)", text)
    if not match:
        raise ValueError(f"not a colour this model understands: {text!r}")
    parts = [float(p) for p in re.split(r"[\s,/]+", match.group(1).strip()) if p]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def over(top: RGBA, under: RGBA) -> RGBA:
    alpha = top[3]
    return (*(top[i] * alpha + under[i] * (1 - alpha) for i in range(3)), 1.0)  # type: ignore[return-value]


def luminance(color: RGBA) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color[0]) + 0.7152 * channel(color[1]) + 0.0722 * channel(color[2])


def contrast(a: RGBA, b: RGBA) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# ---- stylesheet -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compound:
    tag: Optional[str]
    classes: frozenset
    attrs: tuple  # (name, value)

    def matches(self, node: Node) -> bool:
        if self.tag is not None and node.tag != self.tag:
            return False
        if not self.classes <= node.classes():
            return False
        return all(node.attrs.get(name) == value for name, value in self.attrs)


@dataclass(frozen=True)
class Selector:
    parts: tuple  # ((combinator, Compound), ...) left to right; the first combinator is ""

    @property
    def specificity(self) -> tuple[int, int]:
        classes = sum(len(c.classes) + len(c.attrs) for _, c in self.parts)
        return (classes, sum(1 for _, c in self.parts if c.tag))

    def matches(self, path: list[Node]) -> bool:
        """``path``: the ancestors of the element, outermost first, the element last."""
        return _match(self.parts, len(self.parts) - 1, path, len(path) - 1)


def _match(parts: tuple, index: int, path: list[Node], at: int) -> bool:
    combinator, compound = parts[index]
    if at < 0 or not compound.matches(path[at]):
        return False
    if index == 0:
        return True
    if combinator == ">":
        return _match(parts, index - 1, path, at - 1)
    return any(_match(parts, index - 1, path, up) for up in range(at - 1, -1, -1))


def _compound(text: str) -> Compound:
    match = re.fullmatch(r"([a-z]+)?((?:\.[\w-]+)*)((?:\[[\w-]+=\"[^\"]*\"\])*)", text)
    assert match, f"selector part this model does not know: {text!r}"
    classes = frozenset(c for c in match.group(2).split(".") if c)
    attrs = tuple(re.findall(r"\[([\w-]+)=\"([^\"]*)\"\]", match.group(3)))
    return Compound(match.group(1), classes, attrs)


def parse_selector(text: str) -> Selector:
    tokens = re.findall(r">|[^\s>]+", text.strip())
    parts: list[tuple[str, Compound]] = []
    combinator = ""
    for token in tokens:
        if token == ">":
            combinator = ">"
            continue
        parts.append((combinator, _compound(token)))
        combinator = " "
    return Selector(tuple(parts))


@dataclass(frozen=True)
class Rule:
    selector: Selector
    declarations: tuple  # (property, value, important)
    order: int


def parse_declarations(text: str) -> list[tuple[str, str, bool]]:
    out = []
    for item in text.split(";"):
        if ":" not in item:
            continue
        name, value = item.split(":", 1)
        important = "!important" in value
        out.append((name.strip(), value.replace("!important", "").strip(), important))
    return out


def parse_stylesheet(css: str) -> list[Rule]:
    rules = []
    for order, chunk in enumerate(css.split("}")):
        if "{" not in chunk:
            continue
        selectors, body = chunk.split("{", 1)
        declarations = tuple(parse_declarations(body))
        rules.extend(Rule(parse_selector(s), declarations, order) for s in selectors.split(","))
    return rules


# ---- the cascade over a document --------------------------------------------------------------------------------


@dataclass
class Computed:
    color: str
    custom: dict
    background: RGBA  # the background this element's content sits on (composited)
    opacity: float


def _resolve(value: str, custom: dict) -> str:
    """Substitute ``var(--x, fallback)`` (innermost first) from the custom properties in scope."""
    pattern = re.compile(r"var\((--[\w-]+)\s*(?:,\s*([^()]*(?:\([^()]*\)[^()]*)*))?\)")
    for _ in range(10):
        match = pattern.search(value)
        if not match:
            return value
        name, fallback = match.group(1), match.group(2)
        replacement = custom.get(name, fallback)
        assert replacement is not None, f"{name} has no value and no fallback"
        value = value[: match.start()] + replacement.strip() + value[match.end() :]
    raise AssertionError(f"var() nesting too deep in {value!r}")


def _declared(path: list[Node], rules: list[Rule]) -> dict[str, str]:
    """The winning declaration of each property for the last element of ``path`` (then its inline style)."""
    matched = [rule for rule in rules if rule.selector.matches(path)]
    matched.sort(key=lambda rule: (rule.selector.specificity, rule.order))
    normal: dict[str, str] = {}
    important: dict[str, str] = {}
    for rule in matched:
        for name, value, is_important in rule.declarations:
            (important if is_important else normal)[name] = value
    for name, value, _ in parse_declarations(path[-1].attrs.get("style") or ""):
        normal[name] = value
    return {**normal, **important}


def _background(declared: dict[str, str], custom: dict) -> Optional[RGBA]:
    for name in ("background-color", "background"):
        if name in declared:
            value = _resolve(declared[name], custom)
            if value in ("transparent", "none"):
                return None
            return parse_color(value)
    return None


@dataclass
class TextRun:
    text: str
    classes: str
    ratio: float


def text_contrasts(markup: str, css: str, theme: Theme) -> list[TextRun]:
    """Every non-blank text of ``markup`` (rendered in an output of ``theme``) with its contrast ratio."""
    rules = parse_stylesheet(css)
    document = parse(markup).root
    body = Node("body", dict(theme.body), [Node("div", {"class": "jp-OutputArea-output"}, list(document.children))])
    page = parse_color(theme.background)
    base = Computed(theme.text, dict(theme.variables), page, 1.0)
    runs: list[TextRun] = []

    def walk(node: Node, path: list[Node], inherited: Computed) -> None:
        path = [*path, node]
        if node.tag == "style":
            return
        declared = _declared(path, rules)
        custom = {**inherited.custom, **{k: v for k, v in declared.items() if k.startswith("--")}}
        color = _resolve(declared["color"], custom) if "color" in declared else inherited.color
        own_background = _background(declared, custom)
        background = over(own_background, inherited.background) if own_background else inherited.background
        opacity = inherited.opacity * float(declared.get("opacity", 1))
        computed = Computed(color, custom, background, opacity)
        for child in node.children:
            if isinstance(child, Node):
                walk(child, path, computed)
            elif child.strip():
                fg = parse_color(color)
                seen = over((fg[0], fg[1], fg[2], fg[3] * opacity), background)
                runs.append(TextRun(child.strip(), node.attrs.get("class", node.tag), contrast(seen, background)))

    walk(body, [], base)
    return runs
