"""The Markdown renderer: a `Digest` in the format of the seed digest (YAML front matter, bundle line,
author-talk check, cards, source-discovery note). Pure: no I/O but reading the template, no clock.

Every scraped string is escaped: HTML special characters become entities, link text cannot close its
brackets, URLs other than http(s) are refused. Equations are kept verbatim inside `$$` blocks, except
that a `<` directly before a letter gets a space (`a<b` -> `a< b`, the same formula in LaTeX) so that no
Markdown viewer can read it as an HTML tag. Imports only `feedsvc.models` and Jinja2.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from feedsvc.models import Digest, Rendered

SOURCE_LABELS = {"arxiv": "arXiv", "youtube": "YouTube", "hn": "Hacker News", "lobsters": "Lobsters"}


def md(text: object) -> str:
    """Escape a scraped string for Markdown prose: no raw HTML can get through."""
    s = str(text)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def md_link_text(text: object) -> str:
    return md(text).replace("[", "\\[").replace("]", "\\]")


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
    s = str(latex).replace("$$", "$ $")
    return re.sub(r"<(?=[A-Za-z/!?])", "< ", s)


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
