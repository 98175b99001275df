"""One document, two renderings: ``report.md`` and a self-contained ``index.html``.

The report is assembled once as a :class:`Document` of sections made of a few
block types (text, bullet list, table, figure, gallery, code); the renderers
turn it into GitHub-flavoured Markdown (images by relative path, so it reads
on a code-hosting site) and into one HTML page that needs nothing else: a
small inline stylesheet, images inlined as base64 PNG, no script, no external
reference of any kind, so it works opened from disk without a network.

Text blocks may use two inline marks: ``code`` in backticks and links
``[label](relative/path)``.
"""
from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Text:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""
    empty: str = "No models."


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Gallery:
    """Figures side by side (wrapping), e.g. every model's samples."""

    figures: list[Figure]


@dataclass
class Code:
    text: str
    lang: str = ""
    summary: str | None = None   # collapsible under this summary in HTML


Block = Text | Bullets | Table | Figure | Gallery | Code


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    intro: list[Block]
    sections: list[Section]


# --- Markdown ------------------------------------------------------------------------------

def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _md_block(block: Block, base: Path) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        if block.frame.empty:
            return f"*{block.empty}*"
        caption = f"*{block.caption}*\n\n" if block.caption else ""
        return caption + md_table(block.frame)
    if isinstance(block, Figure):
        return f"![{block.caption}]({_rel(block.path, base)})\n\n*{block.caption}*"
    if isinstance(block, Gallery):
        return "\n\n".join(_md_block(f, base) for f in block.figures)
    if isinstance(block, Code):
        fence = f"```{block.lang}\n{block.text.rstrip()}\n```"
        return f"{block.summary}:\n\n{fence}" if block.summary else fence
    raise TypeError(f"unknown block {type(block).__name__}")


def to_markdown(doc: Document, base: Path) -> str:
    """GitHub-flavoured Markdown; images relative to ``base`` (the folder of report.md)."""
    parts = [f"# {doc.title}", *(_md_block(b, base) for b in doc.intro), "## Contents",
             "\n".join(f"- [{s.title}](#{s.id})" for s in doc.sections)]
    for s in doc.sections:
        parts.append(f'<a id="{s.id}"></a>\n\n## {s.title}')
        parts.extend(_md_block(b, base) for b in s.blocks)
    return "\n\n".join(parts) + "\n"


# --- HTML ----------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 1em 2em 4em; background: #fff; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em;
     margin-top: 2em; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 90%; }
code { background: #f1f1f1; padding: 0 .25em; border-radius: 3px; }
pre { background: #f5f5f5; padding: .8em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; font-size: 100%; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top;
         white-space: nowrap; }
td.long { white-space: normal; min-width: 18em; }
.scroll { overflow-x: auto; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-style: italic; color: #555;
          padding-bottom: .3em; }
figure { margin: .8em 0; } figure img { max-width: 100%; height: auto;
                                         border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.gallery figure { margin: 0; max-width: 48%; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px;
          margin-right: .4em; vertical-align: baseline; }
nav ul { columns: 2; } .empty { color: #777; font-style: italic; }
"""

_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    out = _CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))
    return _LINK.sub(lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', out)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_table(frame: pd.DataFrame, caption: str = "", colours: dict[str, str] | None = None
               ) -> str:
    """A table of strings; a model name in the first column gets its colour swatch."""
    rows = [f"<caption>{inline_html(caption)}</caption>" if caption else "",
            "<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
            + "</tr></thead><tbody>"]
    for row in frame.itertuples(index=False):
        cells = []
        for i, value in enumerate(row):
            text = html.escape(str(value))
            if i == 0 and colours and value in colours:
                text = f'<span class="swatch" style="background:{colours[value]}"></span>{text}'
            cells.append(f'<td class="long">{text}</td>' if len(str(value)) > 40
                         else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<div class="scroll"><table>' + "".join(rows) + "</tbody></table></div>"


def _html_figure(fig: Figure) -> str:
    alt = html.escape(fig.caption)
    return (f'<figure><img src="{data_uri(fig.path)}" alt="{alt}">'
            f"<figcaption>{inline_html(fig.caption)}</figcaption></figure>")


def _html_block(block: Block, colours: dict[str, str]) -> str:
    if isinstance(block, Text):
        return f"<p>{inline_html(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        if block.frame.empty:
            return f'<p class="empty">{inline_html(block.empty)}</p>'
        return html_table(block.frame, block.caption, colours)
    if isinstance(block, Figure):
        return _html_figure(block)
    if isinstance(block, Gallery):
        return '<div class="gallery">' + "".join(_html_figure(f) for f in block.figures) + "</div>"
    if isinstance(block, Code):
        pre = f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>"
        if block.summary:
            return f"<details><summary>{inline_html(block.summary)}</summary>{pre}</details>"
        return pre
    raise TypeError(f"unknown block {type(block).__name__}")


def to_html(doc: Document, colours: dict[str, str] | None = None) -> str:
    """One self-contained page: inline CSS, images as base64 data URIs, no scripts."""
    colours = colours or {}
    body = [f"<h1>{html.escape(doc.title)}</h1>", *(_html_block(b, colours) for b in doc.intro),
            "<nav><h2>Contents</h2><ul>"
            + "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>'
                      for s in doc.sections) + "</ul></nav>"]
    for s in doc.sections:
        body.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>'
                    + "\n".join(_html_block(b, colours) for b in s.blocks) + "</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(doc.title)}</title><style>{STYLE}</style></head>\n"
            "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")
