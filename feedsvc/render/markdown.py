"""The Markdown renderer: a `Digest` in the format of the seed digest (YAML front matter, bundle line,
author-talk check, cards, source-discovery note). Pure: no I/O but reading the template, no clock.

Every scraped string is inert: HTML special characters become entities and square brackets are
backslash-escaped (with any backslashes before them), so no scraped text makes a link, an image, an
autolink or raw HTML in a CommonMark viewer, and it still reads the same once rendered. URLs other than
http(s) are refused. Equations are kept verbatim inside `$$` blocks, except for spaces a LaTeX formula
does not see: after a `<` directly before a letter (`a<b` -> `a< b`, no HTML tag) and between `]` and a
following `(` or `:` (no inline link, no link reference definition). Link and image commands inside
equations are made inert where formulas are produced (`cards.fulltext.inert_latex`).
Imports only `feedsvc.models` and Jinja2.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from feedsvc.models import Digest, Rendered

SOURCE_LABELS = {"arxiv": "arXiv", "youtube": "YouTube", "hn": "Hacker News", "lobsters": "Lobsters"}


_BRACKET = re.compile(r"(\\*)([\[\]])")
_LINK_CLOSE = re.compile(r"\](?=[(:])")


def md(text: object) -> str:
    """Escape a scraped string for Markdown prose: no raw HTML, link or image can get through."""
    s = str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    # a link or image needs `](` (inline) or a `[label]:` definition at a line's start (newlines are gone):
    # a space after `]` there breaks both, and leaves brackets in inline maths ($R[g]$) as they were
    return _LINK_CLOSE.sub("] ", s)


def md_link_text(text: object) -> str:
    """Link text: `md` with its brackets escaped, so that none can close the link early."""
    return _BRACKET.sub(lambda m: m[1] * 2 + "\\" + m[2], md(text))


def md_url(url: object) -> str:
    s = str(url).strip()
    if not re.match(r"^https?://", s, re.I):
        return "#"
    return (
        s.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
    )


def md_url_relative(path: object) -> str:
    """A relative link inside the digest directory: letters, digits, `._/-` only, never `..`."""
    s = str(path)
    return s if re.fullmatch(r"[A-Za-z0-9._/-]+", s) and ".." not in s else "#"


def md_math(latex: object) -> str:
    """A formula for a `$$` block: no HTML tag, inline link or link reference definition for a viewer."""
    s = str(latex).replace("$$", "$ $")
    s = re.sub(r"<(?=[A-Za-z/!?])", "< ", s)
    return _LINK_CLOSE.sub("] ", s)


def yaml(text: object) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text), ensure_ascii=False)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(resources.files("feedsvc.templates"))),
        autoescape=False,  # Markdown, not HTML: the filters above do the escaping
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters.update(
        md=md,
        md_link_text=md_link_text,
        md_url=md_url,
        md_url_relative=md_url_relative,
        md_math=md_math,
        yaml=yaml,
        source_label=lambda s: SOURCE_LABELS.get(str(s), str(s)),
    )
    return env


def render_markdown(digest: Digest) -> Rendered:
    papers = sum(1 for c in digest.cards if c.kind == "paper")
    videos = sum(1 for c in digest.cards if c.kind == "video")
    body = _environment().get_template("digest.md.j2").render(digest=digest, papers=papers, videos=videos)
    body = re.sub(r"\n{3,}", "\n\n", body)
    return Rendered(channel="markdown", body=body, mime="text/markdown")
