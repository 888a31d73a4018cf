"""A tiny DOM built with html.parser, so assertions on the HTML views look at real tags, attributes and text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Optional

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict
    children: list = field(default_factory=list)

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, cls: Optional[str] = None, tag: Optional[str] = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (cls is None or cls in child.classes()) and (tag is None or child.tag == tag):
                    found.append(child)
                found.extend(child.find_all(cls, tag))
        return found


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.start_tags: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.start_tags.append((tag, attrs))
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.start_tags.append((tag, attrs))
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"mismatched </{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(markup: str) -> TreeBuilder:
    builder = TreeBuilder()
    builder.feed(markup)
    builder.close()
    assert builder.stack == [builder.root], "unclosed tags"
    return builder
