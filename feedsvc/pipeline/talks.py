"""Did the authors give a talk? YouTube is searched by each paper pick's exact title; a real talk becomes
a video pick of the digest, and the search's quota units are recorded as a `youtube` run of its own
(noted "author-talk checks", which source health leaves out)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from feedsvc.cards.extractive import listed
from feedsvc.config import Settings
from feedsvc.models import Candidate, Profile, Scored, SourceError
from feedsvc.sources import make_youtube
from feedsvc.sources.http import MemoryValidators
from feedsvc.sources.youtube import TalkCheck, YouTubeSource
from feedsvc.store import queries

TalkFinder = Callable[[Candidate], TalkCheck]
Talk = tuple[str, Scored]  # the paper's title, the talk as a video pick
NOTE = "author-talk checks"


def youtube_for_talks(
    settings: Settings, session: Session, profiles: Sequence[Profile], now: datetime
) -> YouTubeSource:
    """The YouTube source whose `find_talk` searches, spending today's quota as recorded in the store."""
    quota = queries.StoreQuota(session, "youtube", settings.youtube_daily_quota, now)
    return make_youtube(settings, profiles, MemoryValidators(), quota)


def record_talk_search(session: Session, youtube: YouTubeSource, now: datetime) -> None:
    """Record the quota units the talk searches spent, if any, as a finished `youtube` run."""
    if not youtube.units_spent:
        return
    run_id = queries.start_run(session, "youtube", now)
    queries.finish_run(
        session, run_id, status="ok", now=datetime.now(UTC), note=NOTE, units=youtube.units_spent
    )


def talk_check(
    session: Session, picks: Sequence[Scored], find_talk: TalkFinder | None, now: datetime
) -> tuple[list[str], list[Talk]]:
    """Search YouTube by each paper pick's exact title; returns the note's sentences (each talk found and
    why it is the paper's, then the papers without one grouped by what their search returned) and the talks
    found (each stored as an item)."""
    if not picks:
        return ["no paper picks today, so no talk was searched for."], []
    if find_talk is None:
        return [
            "not run: no YouTube API key is configured (FEEDSVC_YOUTUBE_API_KEY), so no talk was searched "
            "for today's papers."
        ], []
    found: list[str] = []
    missed: dict[str, list[str]] = {}  # why no talk was found: the titles it holds for
    talks: list[Talk] = []
    for s in picks:
        paper = s.candidate
        try:
            check = find_talk(paper)
        except SourceError as e:
            missed.setdefault(f"the search failed ({e.cause})", []).append(paper.title)
            continue
        if check.found is not None:
            queries.upsert_candidates(session, [check.found], run_id=None, now=now)
            video = replace(
                s, candidate=check.found, reasons=(f"a talk about a paper pick ({check.reason})",)
            )
            talks.append((paper.title, video))
            why = check.reason.removeprefix("accepted: ")
            found.append(f"*{paper.title}*: found a talk, *{check.found.title}* ({why}).")
        else:
            missed.setdefault(check.reason, []).append(paper.title)
    lines = [
        *found,
        *(f"{listed([f'*{t}*' for t in titles])}: {reason}." for reason, titles in missed.items()),
    ]
    if not talks:
        lines.append("So the video picks are topic lectures, when any clear the bar.")
    return [f"searched YouTube by the exact titles of today's {len(picks)} paper picks.", *lines], talks
