"""The Hacker News source: stories matching topic queries, through the Algolia search API.

`fetch(since)` asks `{base_url}/search_by_date` once per query (through `SourceHttp`) for stories
created after `since` with at least `min_points` points, de-duplicates them across queries and turns
each into a "link" Candidate. A story about an arXiv paper or a YouTube video gets that item's canonical
key (and `meta["about"]`), so the discussion attaches to the paper or talk. Ask HN stories (no URL) point
at their discussion page. Also holds the small text helpers the other community sources share
(`plain_text`, `clean_title`): scraped strings stay plain text, with tags and entities removed.
Imports only feedsvc.models, feedsvc.config, feedsvc.identity and feedsvc.sources (never feedsvc.store).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from feedsvc.config import Settings
from feedsvc.identity import canonical_key
from feedsvc.models import Candidate, Fetched, SourceError
from feedsvc.sources.http import SourceHttp, safe_url
from feedsvc.sources.text import about_key, clean_title, parse_json, plain_text

NAME = "hn"
DISCUSSION_URL = "https://news.ycombinator.com/item?id={}"
HITS_PER_PAGE = 100


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --- the source --------------------------------------------------------------------------------------


class HackerNewsSource:
    name = NAME
    units_spent = 0  # no API quota

    def __init__(
        self,
        settings: Settings,
        http: SourceHttp,
        queries: Sequence[str],
        *,
        min_points: int = 20,
        base_url: str = "https://hn.algolia.com/api/v1",
    ) -> None:
        self.settings = settings
        self.http = http
        self.queries = tuple(q.strip() for q in queries if q.strip())
        self.min_points = min_points
        self.base_url = base_url.rstrip("/")

    def close(self) -> None:
        self.http.close()

    def fetch(self, since: datetime) -> Fetched:
        if not self.queries:
            raise SourceError(NAME, "no Hacker News queries configured")
        since_ts = int(since.timestamp())
        url = f"{self.base_url}/search_by_date"
        hits: dict[str, dict[str, Any]] = {}
        for query in self.queries:
            params = {
                "query": query,
                "tags": "story",
                "numericFilters": f"created_at_i>{since_ts},points>={self.min_points}",
                "hitsPerPage": HITS_PER_PAGE,
            }
            response = self.http.get(url, params=params)
            data = parse_json(NAME, response)
            found = data.get("hits") if isinstance(data, dict) else None
            if not isinstance(found, list):
                raise SourceError(NAME, f"unexpected answer from {safe_url(response.url)}: no 'hits' list")
            for hit in found:
                if isinstance(hit, dict) and hit.get("objectID") is not None:
                    hits.setdefault(str(hit["objectID"]), hit)

        candidates: list[Candidate] = []
        untitled = 0
        for hit in hits.values():
            if _as_int(hit.get("points")) < self.min_points:
                continue
            created = _as_int(hit.get("created_at_i"))
            if created and created <= since_ts:
                continue
            candidate = _candidate(hit)
            if candidate is None:
                untitled += 1
                continue
            candidates.append(candidate)

        n = len(self.queries)
        note = (
            f"{n} {'query' if n == 1 else 'queries'}, {len(hits)} stories, "
            f"{len(candidates)} with ≥{self.min_points} points since {since:%Y-%m-%d}"
        )
        if untitled:
            note += f"; {untitled} without a title skipped"
        return Fetched(candidates, status="ok" if candidates else "empty", scanned=len(hits), note=note)


def _published(hit: dict[str, Any]) -> datetime | None:
    ts = hit.get("created_at_i")
    if isinstance(ts, int | float):
        return datetime.fromtimestamp(ts, tz=UTC)
    raw = hit.get("created_at")
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def _candidate(hit: dict[str, Any]) -> Candidate | None:
    title = clean_title(hit.get("title"))
    if not title:
        return None
    story_id = str(hit["objectID"])
    discussion = DISCUSSION_URL.format(story_id)
    url = (hit.get("url") or "").strip() or discussion
    key = canonical_key(url, title)
    author = hit.get("author")
    return Candidate(
        key=key,
        kind="link",
        title=title,
        text=plain_text(hit.get("story_text")),
        url=url,
        source=NAME,
        authors=(author,) if isinstance(author, str) and author else (),
        published=_published(hit),
        meta={
            "points": _as_int(hit.get("points")),
            "comments": _as_int(hit.get("num_comments")),
            "discussion_url": discussion,
            "story_id": story_id,
            "about": about_key(key),
        },
    )
