"""The only place the stages are wired together: collect() runs the sources into the store, build_digests()
ranks, writes the cards and renders each profile's bundle.

Errors from one source are recorded on its run and never stop the others. Imports every stage; nothing
but the edges (cli, scheduler, web) imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cards.breakdown import breakdown, formula_notes
from feedsvc.cards.extractive import build_card
from feedsvc.cards.fulltext import FullText
from feedsvc.cards.llm import ChatClient, client_from_settings
from feedsvc.cards.llm import write_card as llm_write_card
from feedsvc.cards.writer import parse_fulltext, write_card
from feedsvc.config import Settings
from feedsvc.deliver.files import write_atomically
from feedsvc.identity import bare_arxiv_id, match_title, title_fingerprint
from feedsvc.models import (
    Candidate,
    Card,
    ConfigError,
    Digest,
    Profile,
    Scored,
    Source,
    SourceError,
    SourceReport,
)
from feedsvc.rank.pool import build_pool
from feedsvc.rank.ranker import Ranking, rank_pool, single_threaded_blas, thread_query
from feedsvc.rank.semantic import Embedder, load_embedder
from feedsvc.render.markdown import SOURCE_LABELS, render_markdown
from feedsvc.render.paper import render_paper_markdown
from feedsvc.sources.arxiv import ArxivSource
from feedsvc.sources.fulltext_fetch import fetch_fulltext, paper_from_html
from feedsvc.sources.hn import HackerNewsSource
from feedsvc.sources.http import SourceHttp, Validators
from feedsvc.sources.library_file import read_library
from feedsvc.sources.lobsters import LobstersSource
from feedsvc.sources.youtube import QuotaBudget, TalkCheck, YouTubeSource
from feedsvc.store import queries
from feedsvc.store.db import session_scope

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    source: str
    status: str  # ok | empty | failed | disabled | backoff
    scanned: int = 0
    fetched: int = 0
    new: int = 0
    error: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Built:
    profile: str
    day: date
    digest: Digest
    markdown: str
    path: Path | None
    existed: bool = False
    pages: Mapping[str, str] = field(default_factory=dict)  # relative path -> the paper page's Markdown


def arxiv_categories(profiles: Sequence[Profile]) -> list[str]:
    cats: list[str] = []
    for p in profiles:
        cats += [c for c in p.arxiv_categories if c not in cats]
    return cats


def hn_queries(profiles: Sequence[Profile], per_thread: int = 2, limit: int = 12) -> list[str]:
    """Hacker News search terms from the profiles: each thread's first keywords (else its name)."""
    out: list[str] = []
    for p in profiles:
        for t in p.threads:
            for q in t.keywords[:per_thread] or (t.name,):
                if q.lower() not in (o.lower() for o in out):
                    out.append(q)
    return out[:limit]


def youtube_source(
    settings: Settings, profiles: Sequence[Profile], quota: QuotaBudget | None
) -> YouTubeSource:
    return YouTubeSource(
        settings,
        api_key=settings.youtube_api_key.get_secret_value() or None,
        channels=settings.youtube_channels,
        topic_queries=[t.name for p in profiles for t in p.threads],
        min_duration_s=settings.youtube_min_duration_s,
        search_budget=settings.youtube_topic_searches,
        base_url=settings.youtube_api_url or None,
        quota=quota,
    )


SourcesFactory = Callable[[Settings, Sequence[Profile], Validators, QuotaBudget], list[Source]]


def default_sources(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget
) -> list[Source]:
    """The four sources (HTTP clients are closed by `collect`); arXiv only when a profile names categories."""
    sources: list[Source] = []
    cats = arxiv_categories(profiles)
    if cats:
        sources.append(
            ArxivSource(settings, SourceHttp(settings, source="arxiv", validators=validators), cats)
        )
    sources.append(youtube_source(settings, profiles, quota))
    sources.append(
        HackerNewsSource(
            settings,
            SourceHttp(settings, source="hn", validators=validators),
            hn_queries(profiles),
            min_points=settings.hn_min_points,
            base_url=settings.hn_api_url,
        )
    )
    sources.append(
        LobstersSource(
            settings,
            SourceHttp(settings, source="lobsters", validators=validators),
            tags=settings.lobsters_tags,
            base_url=settings.lobsters_url,
        )
    )
    return sources


def collect(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    now: datetime | None = None,
    make_sources: SourcesFactory = default_sources,
    progress: Progress | None = None,
) -> list[RunOutcome]:
    """Fetch every enabled source into the store, one recorded run each; a source that keeps failing
    waits (exponential back-off, or the Retry-After it was given) and says until when."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=max((p.max_age_days for p in profiles), default=365))
    outcomes: list[RunOutcome] = []
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        session.commit()
        quota = queries.StoreQuota(session, "youtube", settings.youtube_daily_quota, now)
        sources = make_sources(settings, profiles, queries.StoreValidators(session, now), quota)
        try:
            for source in sources:
                if progress:
                    progress(source.name)
                if source.name in settings.disabled_sources:
                    outcomes.append(
                        RunOutcome(source.name, "disabled", note="disabled by FEEDSVC_DISABLED_SOURCES")
                    )
                    continue
                wait = backoff_until(session, settings, source.name, now)
                if wait is not None:
                    outcomes.append(
                        RunOutcome(
                            source.name, "backoff", note=f"backing off until {wait:%Y-%m-%d %H:%M} UTC"
                        )
                    )
                    continue
                outcomes.append(_run_source(session, source, since, now))
        finally:
            for source in sources:
                close = getattr(getattr(source, "http", None), "close", None)
                if close:
                    close()
    return outcomes


def backoff_until(session: Session, settings: Settings, source: str, now: datetime) -> datetime | None:
    """When `source` may run again, if not now: after the Retry-After it was given, and after two or more
    failures in a row, `backoff_minutes` doubling with each further failure (at most a day)."""
    streak = queries.failure_streak(session, source)
    if not streak:
        return None
    last = streak[0]
    until = last.retry_at
    if len(streak) >= 2 and last.finished is not None:
        pause = timedelta(minutes=settings.backoff_minutes * 2 ** (len(streak) - 2))
        until = max(filter(None, (until, last.finished + min(pause, timedelta(days=1)))))
    return until if until is not None and until > now else None


@dataclass(frozen=True)
class Health:
    """One source's health, as `feedsvc sources` and (later) /healthz report it."""

    source: str
    enabled: bool
    last_status: str  # ok | empty | failed | never run
    last_run: datetime | None
    last_success: datetime | None
    failing_since: datetime | None
    failures: int
    next_try: datetime | None
    error: str | None
    note: str
    units_today: int = 0


SOURCE_NAMES = ("arxiv", "youtube", "hn", "lobsters")


def source_health(
    settings: Settings, factory: sessionmaker[Session], now: datetime | None = None
) -> list[Health]:
    """What each source's recorded runs say: the truth, including failures and back-off."""
    now = now or datetime.now(UTC)
    out = []
    with session_scope(factory) as session:
        runs = queries.latest_runs(session, exclude_notes=("author-talk checks",))
        for name in SOURCE_NAMES:
            run = runs.get(name)
            streak = queries.failure_streak(session, name)
            out.append(
                Health(
                    source=name,
                    enabled=name not in settings.disabled_sources,
                    last_status=run.status if run else "never run",
                    last_run=run.finished if run else None,
                    last_success=queries.last_success(session, name),
                    failing_since=streak[-1].started if streak else None,
                    failures=len(streak),
                    next_try=backoff_until(session, settings, name, now),
                    error=run.error if run and run.status == "failed" else None,
                    note=run.note if run else "",
                    units_today=queries.StoreQuota(session, name, 0, now).used_before
                    if name == "youtube"
                    else 0,
                )
            )
    return out


def _run_source(session: Session, source: Source, since: datetime, now: datetime) -> RunOutcome:
    run_id = queries.start_run(session, source.name, now)
    session.commit()
    quota = getattr(source, "quota", None)
    spent_before = getattr(quota, "spent", 0)
    retry_at = None
    try:
        fetched = source.fetch(since)
        candidates = _attach_by_title(session, fetched.candidates, now)
        count, new = queries.upsert_candidates(session, candidates, run_id=run_id, now=now)
        outcome = RunOutcome(source.name, fetched.status, fetched.scanned, count, new, None, fetched.note)
    except SourceError as e:
        session.rollback()
        outcome = RunOutcome(source.name, "failed", error=e.cause)
        if e.retry_after:
            retry_at = now + timedelta(seconds=e.retry_after)
        log.warning("%s", e)
    except Exception as e:  # a bug in one source must not stop the others; it is recorded, not hidden
        session.rollback()
        log.exception("source %s crashed", source.name)
        outcome = RunOutcome(source.name, "failed", error=f"unexpected {type(e).__name__}: {e}")
    queries.finish_run(
        session,
        run_id,
        status=outcome.status,
        now=datetime.now(UTC),
        scanned=outcome.scanned,
        fetched=outcome.fetched,
        new=outcome.new,
        error=outcome.error,
        note=outcome.note,
        retry_at=retry_at,
        units=getattr(quota, "spent", 0) - spent_before,
    )
    session.commit()
    return outcome


def _attach_by_title(session: Session, candidates: list[Candidate], now: datetime) -> list[Candidate]:
    """A story whose link is not a paper but whose title is a known paper's (or nearly) discusses it."""
    links = [c for c in candidates if c.kind == "link" and not c.meta.get("about")]
    if not links:
        return candidates
    index = {
        title_fingerprint(t): k for k, t in queries.titles_since(session, now - timedelta(days=730)).items()
    }
    out = []
    for c in candidates:
        if c.kind == "link" and not c.meta.get("about"):
            key = match_title(c.title, index)
            if key:
                c = replace(c, meta={**c.meta, "about": key, "matched_by": "title"})
        out.append(c)
    return out


# --- digests -------------------------------------------------------------------------------------------


def digest_day(profile: Profile, now: datetime) -> date:
    return now.astimezone(ZoneInfo(profile.timezone)).date()


TalkFinder = Callable[[Candidate], TalkCheck]
TextFinder = Callable[[Candidate], FullText | None]


def fulltext_finder(settings: Settings, session: Session, http: SourceHttp, now: datetime) -> TextFinder:
    """Full text for a paper pick: from the store, else fetched (arXiv HTML, else e-print) and stored."""

    def find(c: Candidate) -> FullText | None:
        if not c.key.startswith("arxiv:"):
            return None
        cached = queries.cached_fulltext(session, c.key)
        if cached is None:
            raw = fetch_fulltext(settings, http, c.key.removeprefix("arxiv:"))
            queries.save_fulltext(session, c.key, raw.kind, raw.content, raw.reason, now)
            cached = (raw.kind, raw.content, raw.reason)
        kind, content, reason = cached
        return parse_fulltext(kind, content, c.text, reason, settings.fulltext_max_bytes)

    return find


def build_digests(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    *,
    day: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    find_talk: TalkFinder | None = None,
    embedder: Embedder | Literal["auto"] | None = "auto",
) -> list[Built]:
    """Rank, write cards and render each profile's digest for `day` (default: today in its timezone).

    For each paper pick YouTube is searched by the exact title (`find_talk`, by default the YouTube source
    when a key is configured); a real talk becomes a video pick. A digest, once built, is immutable:
    asking again for the same profile and day returns it unchanged. With `dry_run` nothing is stored.
    """
    now = now or datetime.now(UTC)
    built: list[Built] = []
    with session_scope(factory) as session, SourceHttp(settings, source="arxiv-fulltext") as text_http:
        queries.sync_profiles(session, profiles, now)
        session.commit()
        find_text = fulltext_finder(settings, session, text_http, now)
        llm_client = client_from_settings(settings)
        youtube = None
        if find_talk is None:
            quota = queries.StoreQuota(session, "youtube", settings.youtube_daily_quota, now)
            youtube = youtube_source(settings, profiles, quota)
            find_talk = youtube.find_talk if youtube.configured else None
        for profile in profiles:
            the_day = day or digest_day(profile, now)
            existing = queries.find_digest(session, profile.name, the_day)
            if existing is not None and not dry_run:
                path = _digest_path(settings, profile.name, the_day)
                built.append(
                    Built(
                        profile.name,
                        the_day,
                        queries.load_digest(session, existing),
                        existing.markdown,
                        path if path.exists() else None,
                        existed=True,
                    )
                )
                continue
            if embedder == "auto":
                embedder = load_embedder(settings)
            with single_threaded_blas():
                digest, pages = _make_digest(
                    session, profile, the_day, find_talk, now, embedder, find_text, llm_client
                )
            rendered = render_markdown(digest)
            path = None
            if not dry_run:
                queries.save_digest(session, digest, rendered.body, now)
                path = _digest_path(settings, profile.name, the_day)
                for rel, page in pages.items():
                    write_atomically(path.parent / rel, page)
                write_atomically(path, rendered.body)
                session.commit()
            built.append(Built(profile.name, the_day, digest, rendered.body, path, pages=pages))
        if youtube is not None and youtube.quota.spent:  # type: ignore[attr-defined]
            run_id = queries.start_run(session, "youtube", now)
            queries.finish_run(
                session,
                run_id,
                status="ok",
                now=datetime.now(UTC),
                note="author-talk checks",
                units=youtube.quota.spent,
            )  # type: ignore[attr-defined]
        if dry_run:
            session.rollback()
    return built


def _make_digest(
    session: Session,
    profile: Profile,
    day: date,
    find_talk: TalkFinder | None,
    now: datetime,
    embedder: Embedder | None,
    find_text: TextFinder | None = None,
    llm_client: ChatClient | None = None,
) -> tuple[Digest, dict[str, str]]:
    tz = ZoneInfo(profile.timezone)
    end = datetime.combine(day, time.max, tz).astimezone(UTC)
    start = end - timedelta(days=profile.max_age_days)
    library = queries.library_of(session, profile.name)
    seed_keys = [f"arxiv:{s}" for t in profile.threads for s in t.seed_papers]
    seeds = queries.items_by_keys(session, seed_keys + [k for keys in library.values() for k in keys])
    sent = queries.sent_keys(session, profile.name, before=day)
    feedback = queries.feedback_for(session, profile.name)

    def ranked(kind: str, exclude: set[str], limit: int | None = None) -> Ranking:
        candidates = queries.items_published_between(session, start, end, kinds=(kind,))
        cached: dict[str, np.ndarray] = {}
        if embedder is not None:
            keys = [c.key for c in candidates] + list(seeds) + [f.candidate.key for f in feedback]
            cached = queries.embeddings_for(session, keys, embedder.name)

        def store(fresh: dict[str, np.ndarray]) -> None:
            queries.save_embeddings(session, fresh, embedder.name, now)  # type: ignore[union-attr]

        pool = build_pool(candidates, embedder=embedder, cached=cached, on_embedded=store)
        if embedder is not None:
            pool.text_cache.update(
                queries.text_embeddings(session, [thread_query(t) for t in profile.threads], embedder.name)
            )
        ranking = rank_pool(
            profile,
            pool,
            now=end,
            seeds=seeds,
            seed_vectors=cached,
            library=library,
            already_sent=exclude,
            feedback=feedback,
            limit=limit,
        )
        if embedder is not None and pool.fresh_texts:
            queries.save_text_embeddings(session, pool.fresh_texts, embedder.name, now)
        return ranking

    own = {k for keys in library.values() for k in keys}  # the reader's library is theirs already
    papers = ranked("paper", sent | own)
    talk_lines, talks = _talk_check(session, papers.picks, find_talk, now)
    talks = [t for t in talks if t[1].candidate.key not in sent][: profile.videos]
    taken = {s.candidate.key for _, s in talks}
    videos = ranked("video", sent | taken, limit=max(profile.videos - len(talks), 0))

    texts = {s.candidate.key: find_text(s.candidate) if find_text else None for s in papers.picks}
    cards = [write_card(s, texts[s.candidate.key]) for s in papers.picks]
    pages: dict[str, str] = {}
    for i, s in enumerate(papers.picks):
        ft = texts[s.candidate.key]
        if ft is not None and ft.source != "abstract":
            rel = f"papers/{s.candidate.key.removeprefix('arxiv:').replace('/', '_')}.md"
            pages[rel] = render_paper_markdown(breakdown(s.candidate, ft), formula_notes(ft))
            cards[i] = replace(cards[i], details=rel)
    if llm_client is not None:
        cards = _llm_cards(session, llm_client, papers.picks, cards, texts, now)
    cards += [replace(build_card(s), talk_for=paper) for paper, s in talks]
    cards += [build_card(s) for s in videos.picks]
    threads = queries.discussions_for(session, [c.key for c in cards])
    cards = [replace(c, discussions=tuple(threads.get(c.key, ()))) for c in cards]
    digest = Digest(
        profile=profile.name,
        day=day,
        title=f"Daily Feed - {day.isoformat()}",
        summary=_summary(cards),
        cards=tuple(cards),
        papers_wanted=profile.papers,
        videos_wanted=profile.videos,
        talk_check=" ".join(talk_lines),
        sources=tuple(
            _source_reports(session, profile, papers, videos, cards, len(seed_keys) - len(seeds), texts)
        ),
        shortfall=_shortfall(profile, papers, videos, len(talks)),
    )
    return digest, pages


def _llm_cards(
    session: Session,
    client: ChatClient,
    picks: Sequence[Scored],
    cards: list[Card],
    texts: Mapping[str, FullText | None],
    now: datetime,
) -> list[Card]:
    """Let the LLM rewrite the prose of the day's paper cards; what fails the grounding check keeps the
    extractive text. One `llm` run records the tokens, the rejections and the failures."""
    out, tokens_in, tokens_out, notes = [], 0, 0, []
    for s, card in zip(picks, cards, strict=True):
        ft = texts.get(s.candidate.key)
        result = llm_write_card(
            s, card, ft.text if ft else s.candidate.text, client, macros=ft.macros if ft else None
        )
        out.append(result.card)
        tokens_in, tokens_out = tokens_in + result.tokens[0], tokens_out + result.tokens[1]
        if result.error:
            notes.append(f"{s.candidate.key}: {result.error}")
        notes += [f"{s.candidate.key}: rejected {r}" for r in result.rejected]
    run_id = queries.start_run(session, "llm", now)
    failed = all(c.writer == "extractive" for c in out) and any("rejected" not in n for n in notes)
    queries.finish_run(
        session,
        run_id,
        status="failed" if failed and notes else "ok",
        now=datetime.now(UTC),
        fetched=len(out),
        note=f"{sum(c.writer != 'extractive' for c in out)} of {len(out)} cards written by the LLM; "
        f"tokens {tokens_in} in, {tokens_out} out" + ("; " + "; ".join(notes) if notes else ""),
        units=tokens_in + tokens_out,
        error=notes[0] if failed and notes else None,
    )
    return out


def _talk_check(
    session: Session, picks: Sequence[Scored], find_talk: TalkFinder | None, now: datetime
) -> tuple[list[str], list[tuple[str, Scored]]]:
    """Search YouTube by each paper pick's exact title; returns the note's sentences and the talks found."""
    if not picks:
        return ["no paper picks today, so no talk was searched for."], []
    if find_talk is None:
        return [
            "not run: no YouTube API key is configured (FEEDSVC_YOUTUBE_API_KEY), so no talk was searched "
            "for today's papers."
        ], []
    lines, talks = [], []
    for s in picks:
        paper = s.candidate
        try:
            check = find_talk(paper)
        except SourceError as e:
            lines.append(f"*{paper.title}*: the search failed ({e.cause}).")
            continue
        if check.found is not None:
            queries.upsert_candidates(session, [check.found], run_id=None, now=now)
            video = replace(
                s, candidate=check.found, reasons=(f"a talk about today's pick ({check.reason})",)
            )
            talks.append((paper.title, video))
            lines.append(f"*{paper.title}*: found a talk, {check.found.title} ({check.reason}).")
        else:
            lines.append(f"*{paper.title}*: {check.reason}.")
    if not talks:
        lines.append("So the video picks are topic lectures, when any clear the bar.")
    return [f"searched YouTube by the exact titles of today's {len(picks)} paper picks.", *lines], talks


def _summary(cards: Sequence[Card]) -> str:
    if not cards:
        return "Nothing cleared today's bar for this profile."
    parts = [f"{c.title.rstrip('.')} ({c.thread}{', video' if c.kind == 'video' else ''})" for c in cards]
    return "Today's picks: " + "; ".join(parts) + "."


def _shortfall(profile: Profile, papers: Ranking, videos: Ranking, talks: int) -> str:
    out = []
    if len(papers.picks) < profile.papers:
        out.append(
            f"{len(papers.picks)} of {profile.papers} paper picks: of {papers.eligible} eligible papers, "
            f"{papers.below_bar} fell below the relevance bar, and weak picks are not used as padding."
        )
    n_videos = len(videos.picks) + talks
    if n_videos < profile.videos:
        out.append(
            f"{n_videos} of {profile.videos} video picks: {videos.considered} videos in the store, "
            f"{videos.eligible} eligible in the window, {videos.below_bar} below the bar."
        )
    return " ".join(out)


def _pool(profile: Profile, r: Ranking, kind: str) -> str:
    text = f"{r.considered} {kind}s from the last {profile.max_age_days} days in the store, "
    text += f"{r.eligible} eligible"
    excluded = []
    if r.vetoed:
        vetoes = ", ".join(f"'{t}' {n}" for t, n in sorted(r.vetoes.items()))
        excluded.append(f"{r.vetoed} vetoed by exclude terms ({vetoes})")
    if r.already_sent:
        excluded.append(f"{r.already_sent} already sent or in your library")
    if r.no_text:
        excluded.append(f"{r.no_text} known only from a discussion")
    if excluded:
        text += " after " + " and ".join(excluded)
    return text + f"; {r.below_bar} below the relevance bar; picked {len(r.picks)}."


def _fulltext_note(texts: Mapping[str, FullText | None]) -> str:
    got = [ft for ft in texts.values() if ft is not None]
    if not got:
        return ""
    counts: dict[str, int] = {}
    for ft in got:
        counts[ft.source] = counts.get(ft.source, 0) + 1
    parts = [
        f"{n} from {'the abstract only' if src == 'abstract' else src}" for src, n in sorted(counts.items())
    ]
    why = next((ft.failed for ft in got if ft.failed), "")
    return f" Full text of the picks: {', '.join(parts)}" + (f" ({why[:160]})." if why else ".")


def _source_reports(
    session: Session,
    profile: Profile,
    papers: Ranking,
    videos: Ranking,
    cards: Sequence[Card],
    missing: int,
    texts: Mapping[str, FullText | None] | None = None,
) -> list[SourceReport]:
    reports: list[SourceReport] = []
    runs = queries.latest_runs(session, exclude_notes=("author-talk checks",))
    for source in ("arxiv", "youtube", "hn", "lobsters"):
        label = SOURCE_LABELS.get(source, source)
        run = runs.get(source)
        if source == "arxiv":
            result, picked = _pool(profile, papers, "paper"), len(papers.picks)
            if missing:
                result += f" {missing} seed paper(s) of the profile are not in the store yet."
            result += _fulltext_note(texts or {})
        elif source == "youtube":
            result = _pool(profile, videos, "video")
            picked = sum(1 for c in cards if c.kind == "video")
        else:
            site = queries.SITES[source]
            on_picks = sum(1 for c in cards for d in c.discussions if d.site == site)
            result = (
                f"{on_picks} thread(s) on today's picks; stories not about a paper or talk are not "
                "picked by this build."
            )
            picked = 0
        if run is None:
            note = f"never fetched. {result}"
        elif run.status == "failed":
            since = queries.failing_since(session, source) or run.started
            note = f"failed since {since:%Y-%m-%d %H:%M} UTC ({run.error}); "
            note += f"using what the store already had: {result}"
        elif run.status == "empty":
            note = f"{run.note or 'nothing new'} (checked {run.finished:%Y-%m-%d %H:%M} UTC). {result}"
        else:
            note = (
                f"last fetch {run.finished:%Y-%m-%d %H:%M} UTC scanned {run.scanned} items, "
                f"kept {run.fetched} "
                f"({run.new} new to the store). {result}"
            )
        reports.append(
            SourceReport(
                source=label,
                status=run.status if run else "never run",
                scanned=run.scanned if run else 0,
                eligible=papers.eligible,
                picked=picked,
                note=note,
            )
        )
    return reports


def _digest_path(settings: Settings, profile: str, day: date) -> Path:
    return settings.digest_dir() / profile / f"{day.isoformat()}.md"


# --- the reader's library ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    read: int
    added: int
    fetched: int
    problems: list[str]


Lookup = Callable[[Sequence[str]], list[Candidate]]


def import_library(
    settings: Settings,
    factory: sessionmaker[Session],
    profiles: Sequence[Profile],
    profile: str,
    path: Path,
    *,
    thread: str = "",
    lookup: Lookup | None = None,
    now: datetime | None = None,
) -> Imported:
    """Add the papers in a library file to a profile's seeds (all threads, or `thread`). Papers not in the
    store are fetched from arXiv by id; entries without an arXiv id are kept with the title and abstract
    the file gives. Every entry that cannot be imported is reported, and the rest are imported."""
    now = now or datetime.now(UTC)
    target = next((p for p in profiles if p.name == profile), None)
    if target is None:
        raise ConfigError(f"no profile named '{profile}'")
    if thread and thread not in {t.name for t in target.threads}:
        names = ", ".join(repr(t.name) for t in target.threads)
        raise ConfigError(f"profile '{profile}' has no thread {thread!r} (its threads: {names})")
    read = read_library(path)
    problems = list(read.problems)
    with session_scope(factory) as session:
        queries.sync_profiles(session, profiles, now)
        known = queries.items_by_keys(session, [e.key for e in read.entries])
        missing = [e.arxiv for e in read.entries if e.arxiv and e.key not in known]
        fetched: list[Candidate] = []
        if missing:
            failed = None
            try:
                if lookup is None:
                    with SourceHttp(settings, source="arxiv") as http:
                        fetched = ArxivSource(settings, http, []).lookup(missing)
                else:
                    fetched = lookup(missing)
            except SourceError as e:  # arXiv down: its entries are reported, the rest imported
                failed = f"not imported: {e}"
            queries.upsert_candidates(session, fetched, run_id=None, now=now)
            got = {c.key for c in fetched}
            for e in read.entries:
                if e.arxiv and e.key not in known and e.key not in got:
                    problems.append(f"{e.label}: {failed or f'arXiv has no paper {e.arxiv}; skipped'}")
        local = [
            Candidate(
                key=e.key,
                kind="paper",
                title=e.title,
                text=e.abstract,
                url=e.url or e.doi,
                source="library",
                authors=e.authors,
                published=datetime(e.year, 1, 1, tzinfo=UTC) if e.year else None,
            )
            for e in read.entries
            if not e.arxiv and e.key not in known
        ]
        queries.upsert_candidates(session, local, run_id=None, now=now)
        present = set(queries.items_by_keys(session, [e.key for e in read.entries]))
        keys = [e.key for e in read.entries if e.key in present]
        added = queries.add_to_library(session, profile, keys, thread=thread, origin=str(path), now=now)
    return Imported(read=len(read.entries), added=added, fetched=len(fetched), problems=problems)


@dataclass(frozen=True)
class PapersFetched:
    from_api: int
    from_html: int
    problems: list[str]


def fetch_papers(
    settings: Settings, factory: sessionmaker[Session], ids: Sequence[str], *, now: datetime | None = None
) -> PapersFetched:
    """Fetch papers by arXiv id: from arXiv's API; those it cannot supply (unknown there, or the API down)
    from their arXiv HTML, whose title, authors and abstract are the paper's own (the HTML is kept as the
    paper's full text). Each id that neither has is reported."""
    now = now or datetime.now(UTC)
    bare = list(dict.fromkeys(bare_arxiv_id(i) for i in ids))
    problems: list[str] = []
    with session_scope(factory) as session, SourceHttp(settings, source="arxiv") as http:
        found: list[Candidate] = []
        try:
            found = ArxivSource(settings, http, []).lookup(bare)
        except SourceError as e:
            problems.append(f"arXiv API: {e.cause}; reading the papers' HTML instead")
        queries.upsert_candidates(session, found, run_id=None, now=now)
        got = {c.key for c in found}
        from_html = 0
        for arxiv_id in bare:
            if f"arxiv:{arxiv_id}" in got:
                continue
            raw = fetch_fulltext(settings, http, arxiv_id)
            paper = paper_from_html(arxiv_id, raw.content) if raw.kind == "html" else None
            if paper is None:
                problems.append(
                    f"{arxiv_id}: not found ({raw.reason or 'no HTML with a title and abstract'})"
                )
                continue
            queries.upsert_candidates(session, [paper], run_id=None, now=now)
            queries.save_fulltext(session, paper.key, raw.kind, raw.content, raw.reason, now)
            from_html += 1
    return PapersFetched(from_api=len(found), from_html=from_html, problems=problems)
