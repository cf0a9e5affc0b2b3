"""Full text of a paper pick, as bytes: arXiv's HTML (LaTeXML), else its e-print (the LaTeX source), else
nothing, with the reason. Parsing is the cards stage's job (`feedsvc.cards.fulltext`).

Only the day's picks are fetched, one request at a time through `SourceHttp` (timeouts, retries,
Retry-After). A body larger than `fulltext_max_bytes` is refused rather than read. Imports only
feedsvc.models, feedsvc.config and feedsvc.sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedsvc.config import Settings
from feedsvc.models import SourceError
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
            response = http.get(url)
        except SourceError as e:
            reasons.append(f"{kind}: {e.cause}")
            continue
        if len(response.content) > settings.fulltext_max_bytes:
            limit = settings.fulltext_max_bytes
            reasons.append(f"{kind}: {len(response.content)} bytes, over the {limit} limit")
            continue
        if not response.content.strip():
            reasons.append(f"{kind}: empty body")
            continue
        return RawFullText(kind, response.content, "; ".join(reasons))
    return RawFullText("none", b"", "; ".join(reasons) or "no full text")
