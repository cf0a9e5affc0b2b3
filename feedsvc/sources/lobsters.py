"""The Lobsters source: recent stories from lobste.rs's hottest and newest JSON listings.

`fetch(since)` reads `{base_url}/hottest.json` and `{base_url}/newest.json` through `SourceHttp`,
de-duplicates by `short_id`, keeps stories created after `since` and, when `tags` are given, carrying one
of them, and turns each into a "link" Candidate keyed canonically (a story about an arXiv paper or a
YouTube video gets that item's key and `meta["about"]`). A 429 comes back from `SourceHttp` as a
SourceError with `retry_after` set. Accepts `submitter_user` as an object (2023) or a bare name (later).
Imports only feedsvc.models, feedsvc.config, feedsvc.identity and feedsvc.sources (never feedsvc.store).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from feedsvc.config import Settings
from feedsvc.identity import canonical_key
from feedsvc.models import Candidate, Fetched, SourceError
from feedsvc.sources.http import SourceHttp, safe_url
from feedsvc.sources.text import about_key, clean_title, iso_time, parse_json, plain_text

NAME = "lobsters"
LISTINGS = ("hottest", "newest")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _submitter(story: dict[str, Any]) -> tuple[str, ...]:
    user = story.get("submitter_user")
    if isinstance(user, dict):
        user = user.get("username")
    return (user,) if isinstance(user, str) and user else ()


class LobstersSource:
    name = NAME
    units_spent = 0  # no API quota

    def __init__(
        self,
        settings: Settings,
        http: SourceHttp,
        *,
        tags: Sequence[str] = (),
        base_url: str = "https://lobste.rs",
    ) -> None:
        self.settings = settings
        self.http = http
        self.tags = tuple(t.strip().lower() for t in tags if t.strip())
        self.base_url = base_url.rstrip("/")

    def close(self) -> None:
        self.http.close()

    def fetch(self, since: datetime) -> Fetched:
        stories: dict[str, dict[str, Any]] = {}
        for listing in LISTINGS:
            response = self.http.get(f"{self.base_url}/{listing}.json")
            data = parse_json(NAME, response)
            if not isinstance(data, list):
                raise SourceError(
                    NAME, f"unexpected answer from {safe_url(response.url)}: not a list of stories"
                )
            for story in data:
                if isinstance(story, dict) and story.get("short_id"):
                    stories.setdefault(str(story["short_id"]), story)

        recent = 0
        untitled = 0
        candidates: list[Candidate] = []
        for story in stories.values():
            created = iso_time(story.get("created_at"))
            if created is None or created <= since:
                continue
            recent += 1
            tags = tuple(str(t) for t in story.get("tags") or () if isinstance(t, str))
            if self.tags and not set(self.tags) & {t.lower() for t in tags}:
                continue
            candidate = _candidate(story, created, tags)
            if candidate is None:
                untitled += 1
                continue
            candidates.append(candidate)

        note = f"{' + '.join(LISTINGS)}: {len(stories)} stories, {recent} since {since:%Y-%m-%d %H:%M} UTC"
        if self.tags:
            note += f", {len(candidates)} tagged {', '.join(self.tags)}"
        if untitled:
            note += f"; {untitled} without a title skipped"
        return Fetched(candidates, status="ok" if candidates else "empty", scanned=len(stories), note=note)


def _candidate(story: dict[str, Any], created: datetime, tags: tuple[str, ...]) -> Candidate | None:
    title = clean_title(story.get("title"))
    if not title:
        return None
    short_id = str(story["short_id"])
    discussion = story.get("comments_url") or story.get("short_id_url") or f"https://lobste.rs/s/{short_id}"
    url = (story.get("url") or "").strip() or discussion
    key = canonical_key(url, title)
    plain = story.get("description_plain")
    return Candidate(
        key=key,
        kind="link",
        title=title,
        text=plain_text(story.get("description")) or (plain.strip() if isinstance(plain, str) else ""),
        url=url,
        source=NAME,
        authors=_submitter(story),
        published=created,
        meta={
            "points": _int(story.get("score")),
            "comments": _int(story.get("comment_count")),
            "discussion_url": discussion,
            "story_id": short_id,
            "tags": tags,
            "about": about_key(key),
        },
    )
