"""Independent checks of the report's pages (used by test_report.py and test_pipeline.py).

``check_html`` parses index.html with the standard library's html.parser and
checks that it is self-contained: every ``src``/``href`` is an inlined PNG that
decodes, an anchor of the page, or a relative path to an existing file; and
nothing refers to the network (no ``http://`` or ``https://`` anywhere, no CSS
``url(...)`` or ``@import``, no ``<script>``, ``<link>`` or ``<iframe>``).
``check_markdown`` does the same for report.md's images and links.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

PNG = b"\x89PNG\r\n\x1a\n"
NETWORK = re.compile(r"https?://", re.I)   # in attributes, "//host" is caught as non-relative


@dataclass
class Page:
    ids: set[str] = field(default_factory=set)
    sections: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    text: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.page = Page()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.page.tags.add(tag)
        if "id" in a:
            self.page.ids.add(a["id"])
        if tag == "section":
            self.page.sections.append(a.get("id"))
        if tag == "img":
            self.page.images.append(a.get("src") or "")
        for key in ("href", "srcset", "data", "poster", "action", "background"):
            if key in a:
                self.page.links.append(a[key])

    def handle_data(self, data):
        self.page.text.append(data)


def _resolve_local(ref: str, base: Path, anchors: set[str]) -> str | None:
    """None when ``ref`` resolves, else the problem."""
    if ref.startswith("#"):
        return None if ref[1:] in anchors else f"anchor {ref} has no target"
    if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I) or ref.startswith("/"):
        return f"{ref[:60]} is not a relative path"
    path = base / unquote(ref.split("#")[0])
    return None if path.is_file() else f"{ref} does not exist (looked for {path})"


def check_html(path: Path) -> Page:
    text = Path(path).read_text()
    parser = _Parser()
    parser.feed(text)
    page = parser.page
    problems = []
    outside_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    if NETWORK.search(outside_data):
        problems.append(f"network reference: {NETWORK.search(outside_data)[0]!r}")
    if re.search(r"url\(|@import", outside_data, re.I):
        problems.append("CSS url() or @import")
    for tag in ("script", "link", "iframe", "object", "embed"):
        if tag in page.tags:
            problems.append(f"<{tag}> element")
    for src in page.images:
        if src.startswith("data:"):
            head, _, payload = src.partition(",")
            if head != "data:image/png;base64" or not base64.b64decode(payload).startswith(PNG):
                problems.append(f"inlined image is not a PNG: {src[:40]}")
        elif (why := _resolve_local(src, Path(path).parent, page.ids)) is not None:
            problems.append(f"<img> {why}")
    for ref in page.links:
        if (why := _resolve_local(ref, Path(path).parent, page.ids)) is not None:
            problems.append(f"link {why}")
    assert not problems, "\n".join(problems)
    return page


def check_markdown(path: Path) -> tuple[list[str], list[str]]:
    """(image paths, link targets) of report.md; every one resolves."""
    text = Path(path).read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    links = re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)", text)
    problems = [why for ref in images + links
                if (why := _resolve_local(ref, Path(path).parent, anchors)) is not None]
    if NETWORK.search(text):
        problems.append(f"network reference: {NETWORK.search(text)[0]!r}")
    assert not problems, "\n".join(problems)
    return images, links
