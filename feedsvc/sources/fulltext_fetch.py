"""Full text of a paper pick, as bytes: arXiv's HTML (LaTeXML), else its e-print (the LaTeX source), else
nothing, with the reason. Parsing is the cards stage's job (`feedsvc.cards.fulltext`).

Only the day's picks are fetched, one request at a time through `SourceHttp` (timeouts, retries,
Retry-After, an overall deadline). A body larger than `fulltext_max_bytes`, decoded, is refused as it
streams in, never read whole. Imports only feedsvc.models, feedsvc.config, feedsvc.identity and
feedsvc.sources.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from feedsvc.config import Settings
from feedsvc.identity import ItemKey
from feedsvc.models import Candidate, SourceError
from feedsvc.sources.http import SourceHttp


@dataclass(frozen=True)
class RawFullText:
    kind: str  # "html" | "eprint" | "none"
    content: bytes
    reason: str  # why the earlier kinds were not used, for the card's note


def fetch_fulltext(settings: Settings, http: SourceHttp, arxiv_id: str) -> RawFullText:
    """Try arXiv HTML, then the e-print; never raises for a missing or failed text, says why instead."""
    reasons = []
    for kind, base in (("html", settings.arxiv_html_url), ("eprint", settings.arxiv_eprint_url)):
        url = f"{base.rstrip('/')}/{arxiv_id}"
        try:
            response = http.get(url, max_bytes=settings.fulltext_max_bytes)
        except SourceError as e:
            reasons.append(f"{kind}: {e.cause}")
            continue
        if not response.content.strip():
            reasons.append(f"{kind}: empty body")
            continue
        return RawFullText(kind, response.content, "; ".join(reasons))
    return RawFullText("none", b"", "; ".join(reasons) or "no full text")


_TITLE = re.compile(r'<h1 class="ltx_title ltx_title_document">(.*?)</h1>', re.S)
_ABSTRACT = re.compile(r'<div class="ltx_abstract">(.*?)</div>', re.S)
_PERSON = re.compile(r'<span class="ltx_personname">(.*?)(?:<br|</span>)', re.S)
_NAME = re.compile(r"^[A-ZÀ-Ý][\w'’.-]+(?:\s+[A-ZÀ-Ý][\w'’.-]+){1,3}$")


def _plain(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def paper_from_html(arxiv_id: str, page: bytes) -> Candidate | None:
    """A paper's listing fields read from its arXiv HTML (LaTeXML): title, authors, abstract; for ids the
    API cannot supply. The date is estimated from the id's month (and flagged so)."""
    text = page.decode("utf-8", errors="replace")
    title, abstract = _TITLE.search(text), _ABSTRACT.search(text)
    if not title or not abstract:
        return None
    authors: list[str] = []
    for raw in _PERSON.findall(text):
        for part in re.split(r"\s{2,}|\xa0+|&amp;|&|,|\band\b", html.unescape(re.sub(r"<[^>]+>", " ", raw))):
            name = " ".join(part.split())
            if _NAME.match(name) and name not in authors:
                authors.append(name)
    m = re.match(r"^(\d{2})(\d{2})\.\d{4,5}$", arxiv_id)
    published = datetime(2000 + int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC) if m else None
    return Candidate(
        key=ItemKey.arxiv(arxiv_id),
        kind="paper",
        title=_plain(title.group(1)),
        text=_plain(abstract.group(1)).removeprefix("Abstract").strip(),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        source="arxiv",
        authors=tuple(authors),
        published=published,
        meta={"from": "arXiv HTML", "published_estimated": True},
    )
