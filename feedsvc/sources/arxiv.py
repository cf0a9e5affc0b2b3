"""The arXiv source: today's announcement from the RSS listing, details from the search API.

`fetch` reads `{arxiv_rss_url}/{cat+cat}` (conditional GET through `SourceHttp`), keeps items of announce
type new / cross / replace / replace-cross whose categories meet the requested ones (the feed may cover
whole archives), and, when `settings.arxiv_enrich` is on, asks the API (its Atom answer read with
feedparser; `SourceHttp` too, at most one request per `arxiv_delay_seconds`) for comment, primary
category, journal ref, DOI and the first-version date; an API failure there only adds a sentence to the
note. A feed without items or a 304 is `status="empty"`, not an error. `lookup` fetches papers by bare id
through the API. The listing's `since` is not used: the feed is always the latest announcement, and
de-duplication is the store's job.
Imports only feedsvc.models, feedsvc.config, feedsvc.identity and feedsvc.sources (never feedsvc.store).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import feedparser

from feedsvc.config import Settings
from feedsvc.identity import ItemKey, arxiv_id
from feedsvc.models import Candidate, Fetched, SourceError
from feedsvc.sources.http import Response, SourceHttp, safe_url

NAME = "arxiv"
KEPT_TYPES = frozenset({"new", "cross", "replace", "replace-cross"})
API_BATCH = 100

_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.I)
_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _utc(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def _id_month(bare: str) -> datetime | None:
    """The first day of the month a new-style id was issued in (`2404.03653` -> 2024-04-01)."""
    m = re.match(r"^(\d{2})(\d{2})\.\d{4,5}$", bare)
    if not m or not 1 <= int(m.group(2)) <= 12:
        return None
    return datetime(2000 + int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)


def _in_categories(item_categories: Iterable[str], wanted: Sequence[str]) -> bool:
    """True when an item category equals a wanted one or lies in a wanted archive (`cs` holds `cs.LG`)."""
    return any(cat == w or cat.startswith(w + ".") for cat in item_categories for w in wanted)


def _looks_like_html(response: Response) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    head = response.content[:512].lstrip().lower()
    return "text/html" in ctype or head.startswith((b"<!doctype html", b"<html"))


class ArxivSource:
    name = NAME
    units_spent = 0  # no API quota

    def __init__(
        self,
        settings: Settings,
        http: SourceHttp,
        categories: Sequence[str],
    ) -> None:
        self.settings = settings
        self.http = http
        self.categories = tuple(c.strip() for c in categories if c.strip())
        self._api_next = 0.0  # monotonic time before which the API is not asked again

    def close(self) -> None:
        self.http.close()

    @property
    def feed_url(self) -> str:
        return f"{self.settings.arxiv_rss_url.rstrip('/')}/{'+'.join(self.categories)}"

    # --- the listing -------------------------------------------------------------------------------

    def fetch(self, since: datetime) -> Fetched:
        if not self.categories:
            raise SourceError(NAME, "no arXiv categories configured")
        wanted = "+".join(self.categories)
        response = self.http.get(self.feed_url, conditional=True)
        if response.not_modified:
            return Fetched([], status="empty", note="unchanged since the last fetch (304)")
        feed = self._parse(response)
        entries = feed.entries
        if not entries:
            built = feed.feed.get("updated") or feed.feed.get("published") or "unknown time"
            return Fetched(
                [], status="empty", note=f"arXiv had no announcement for {wanted} (feed built {built})"
            )
        candidates = [c for c in (self._candidate(e) for e in entries) if c is not None]
        note = f"rss: {len(entries)} announced, {len(candidates)} in {', '.join(self.categories)}"
        if candidates and self.settings.arxiv_enrich:
            candidates, extra = self._enrich(candidates)
            note = f"{note}; {extra}"
        return Fetched(candidates, status="ok" if candidates else "empty", scanned=len(entries), note=note)

    def _parse(self, response: Response) -> Any:
        where = safe_url(response.url)
        if _looks_like_html(response):
            m = _HTML_TITLE.search(response.content[:4096])
            title = _squash(m.group(1).decode("utf-8", "replace")) if m else ""
            detail = f" ({title})" if title else ""
            raise SourceError(NAME, f"expected an RSS feed, got an HTML page{detail} from {where}")
        # No sanitising: it would mangle LaTeX such as "$1/3<s<1$" in abstracts (they are plain text).
        feed = feedparser.parse(response.content, sanitize_html=False, resolve_relative_uris=False)
        title = feed.feed.get("title", "")
        if title.startswith("Feed error for query"):
            detail = _squash(feed.feed.get("description", "")) or title
            raise SourceError(NAME, f"arXiv rejected the feed query: {detail}")
        if feed.bozo and not isinstance(feed.bozo_exception, feedparser.CharacterEncodingOverride):
            exc = feed.bozo_exception
            line = getattr(exc, "getLineNumber", lambda: None)()
            at = f" at line {line}" if line else ""
            raise SourceError(
                NAME, f"malformed RSS from {where}{at}: {exc} ({len(response.content)} bytes; truncated?)"
            )
        if not feed.version or not title:
            raise SourceError(NAME, f"not an RSS feed ({len(response.content)} bytes) from {where}")
        return feed

    def _candidate(self, entry: Any) -> Candidate | None:
        announce = (entry.get("arxiv_announce_type") or "").strip().lower()
        if announce not in KEPT_TYPES:
            return None
        categories = tuple(t.get("term") for t in entry.get("tags", []) if t.get("term"))
        if not _in_categories(categories, self.categories):
            return None
        found = arxiv_id(entry.get("id", "")) or arxiv_id(entry.get("link", ""))
        if not found:
            return None
        bare, version = found
        description = entry.get("summary", "")
        authors = tuple(a.strip() for a in entry.get("author", "").split(", ") if a.strip())
        when = _utc(entry.get("published_parsed"))
        meta: dict[str, Any] = {"announce_type": announce}
        published = when
        if announce.startswith("replace"):
            # the listing dates a replacement by its re-announcement; the paper itself is older. Until the
            # API gives the first-version date, the id's month is the honest estimate.
            published = min(filter(None, (when, _id_month(bare))), default=when)
            meta["published_estimated"] = True
        if entry.get("rights"):
            meta["rights"] = entry["rights"]
        return Candidate(
            key=ItemKey.arxiv(bare),
            kind="paper",
            title=_squash(entry.get("title", "")),
            text=_PREFIX.sub("", description, count=1).strip(),
            url=f"https://arxiv.org/abs/{bare}",
            source=NAME,
            authors=authors,
            categories=categories,
            published=published,
            updated=when,
            version=version,
            meta=meta,
        )

    # --- the API -------------------------------------------------------------------------------------

    def _query(self, ids: Sequence[str]) -> dict[str, Any]:
        """API entries (feedparser's) by bare id, in batches of `API_BATCH`; raises SourceError."""
        found: dict[str, Any] = {}
        for start in range(0, len(ids), API_BATCH):
            batch = list(ids[start : start + API_BATCH])
            for entry in self._api_page(batch):
                if "/api/errors" in entry.get("id", ""):  # arXiv answers some errors with an error entry
                    detail = _squash(entry.get("summary", "")) or entry.get("title", "")
                    raise SourceError(NAME, f"arXiv API error: {detail}")
                got = arxiv_id(entry.get("id", ""))
                if got:
                    found[got[0]] = entry
        return found

    def _api_page(self, batch: list[str]) -> list[Any]:
        """One API request (at most one per `arxiv_delay_seconds`, as arXiv asks); any failed answer is
        retried, as the `arxiv` package this replaces did."""
        wait = self._api_next - time.monotonic()
        if wait > 0:
            self.http.retry.sleep(wait)
        params = {"id_list": ",".join(batch), "start": 0, "max_results": API_BATCH}
        try:
            response = self.http.get(self.settings.arxiv_api_url, params=params, retry_4xx=True)
        except SourceError as e:
            said = "answered " if e.cause.startswith("HTTP") else "request failed: "
            raise SourceError(NAME, f"arXiv API {said}{e.cause}", retry_after=e.retry_after) from None
        finally:
            self._api_next = time.monotonic() + self.settings.arxiv_delay_seconds
        feed = feedparser.parse(response.content, sanitize_html=False, resolve_relative_uris=False)
        if feed.bozo and not feed.entries:
            raise SourceError(NAME, f"malformed answer from the arXiv API: {feed.bozo_exception}")
        return list(feed.entries)

    def _enrich(self, candidates: list[Candidate]) -> tuple[list[Candidate], str]:
        ids = [ItemKey(c.key).value for c in candidates]
        try:
            found = self._query(ids)
        except SourceError as e:
            return candidates, f"API enrichment failed: {e.cause}"
        out = []
        for c in candidates:
            r = found.get(ItemKey(c.key).value)
            if r is None:
                out.append(c)
                continue
            meta = {**c.meta, **_api_meta(r), "published_estimated": False}
            out.append(replace(c, published=_utc(r.get("published_parsed")) or c.published, meta=meta))
        return out, f"API details for {sum(1 for i in ids if i in found)} of {len(ids)}"

    def lookup(self, ids: Sequence[str]) -> list[Candidate]:
        """Papers by arXiv id (version ignored) through the API, in the order asked; unknown ids absent."""
        bare: list[str] = []
        for raw in ids:
            got = arxiv_id(raw) or arxiv_id(f"arXiv:{raw.strip()}")
            if not got:
                raise SourceError(NAME, f"not an arXiv id: {raw!r}")
            if got[0] not in bare:
                bare.append(got[0])
        if not bare:
            return []
        try:
            found = self._query(bare)
        except SourceError as e:
            cause = f"{e.cause} for ids {', '.join(bare[:5])}"
            raise SourceError(NAME, cause, retry_after=e.retry_after) from None
        return [_from_api(found[i]) for i in bare if i in found]


def _api_meta(entry: Any) -> dict[str, Any]:
    primary = entry.get("arxiv_primary_category") or {}
    meta: dict[str, Any] = {"primary_category": primary.get("term") or None}
    for name in ("comment", "journal_ref", "doi"):
        value = entry.get(f"arxiv_{name}")
        meta[name] = _squash(value) if value else None
    return meta


def _from_api(entry: Any) -> Candidate:
    bare, version = arxiv_id(entry.get("id", "")) or (entry.get("id", ""), None)
    return Candidate(
        key=ItemKey.arxiv(bare),
        kind="paper",
        title=_squash(entry.get("title", "")),
        text=_squash(entry.get("summary", "")),
        url=f"https://arxiv.org/abs/{bare}",
        source=NAME,
        authors=tuple(a.get("name", "") for a in entry.get("authors", []) if a.get("name")),
        categories=tuple(t.get("term") for t in entry.get("tags", []) if t.get("term")),
        published=_utc(entry.get("published_parsed")),
        updated=_utc(entry.get("updated_parsed")),
        version=version,
        meta=_api_meta(entry),
    )
