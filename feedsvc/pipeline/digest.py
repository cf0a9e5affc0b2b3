"""The recipe of one profile's digest for one day (`make_digest`): rank the papers in the window, search
for their authors' talks, rank the videos for what is left, write a card per pick (from the paper's full
text, the LLM rewriting the prose when configured), attach the discussions, and say what each source
brought. `build_digests` runs it for each profile, stores the digest and writes its Markdown and paper
pages beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.cards.breakdown import breakdown, formula_notes, page_data
from feedsvc.cards.extractive import build_card, talk_card
from feedsvc.cards.fulltext import FullText
from feedsvc.cards.llm import ChatClient, client_from_settings
from feedsvc.cards.llm import write_card as llm_write_card
from feedsvc.cards.writer import parse_fulltext, write_card
from feedsvc.config import Settings
from feedsvc.deliver.files import write_atomically
from feedsvc.identity import ItemKey
from feedsvc.models import Candidate, Card, Digest, Feedback, Profile, Scored, Silence, SourceReport
from feedsvc.pipeline import notes
from feedsvc.pipeline.collect import LLM
from feedsvc.pipeline.talks import NOTE, TalkFinder, record_talk_search, talk_check, youtube_for_talks
from feedsvc.rank.judge import Verdict, choose, judge_picks, top_to_judge
from feedsvc.rank.pool import build_pool
from feedsvc.rank.ranker import Ranking, embedded_texts, rank_pool, single_threaded_blas
from feedsvc.rank.semantic import Embedder, load_embedder
from feedsvc.render.markdown import render_markdown
from feedsvc.render.paper import render_paper_markdown
from feedsvc.sources.fulltext_fetch import fetch_fulltext
from feedsvc.sources.http import SourceHttp
from feedsvc.store import queries
from feedsvc.store.db import session_scope

TextFinder = Callable[[Candidate], FullText | None]
WEEK_DAYS = 7  # a weekly bundle ranks the candidates published in the week ending its day


@dataclass(frozen=True)
class PaperPage:
    """A paper pick's page: written as Markdown beside the digest, stored as data for the web."""

    path: str  # relative to the digest's directory: papers/<id>.md
    markdown: str
    data: dict[str, Any]  # `feedsvc.cards.breakdown.page_data`


@dataclass(frozen=True)
class Built:
    profile: str
    day: date
    digest: Digest
    markdown: str
    path: Path | None
    existed: bool = False
    pages: Mapping[str, str] = field(default_factory=dict)  # relative path -> the paper page's Markdown


def digest_day(profile: Profile, now: datetime) -> date:
    return now.astimezone(ZoneInfo(profile.timezone)).date()


def fulltext_finder(settings: Settings, session: Session, http: SourceHttp, now: datetime) -> TextFinder:
    """Full text for a paper pick: from the store, else fetched (arXiv HTML, else e-print) and stored."""

    def find(c: Candidate) -> FullText | None:
        arxiv = ItemKey(c.key).arxiv_id
        if arxiv is None:
            return None
        cached = queries.cached_fulltext(session, c.key)
        if cached is None:
            raw = fetch_fulltext(settings, http, arxiv)
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
    span: str = "day",
    had: Collection[str] = (),
) -> list[Built]:
    """Rank, write cards and render each profile's digest for `day` (default: today in its timezone).

    For each paper pick YouTube is searched by the exact title (`find_talk`, by default the YouTube source
    when a key is configured); a real talk becomes a video pick. A digest, once built, is immutable:
    asking again for the same profile and day returns it unchanged. With `dry_run` nothing is stored.
    `span` "week" builds the bundle of the week ending `day` instead, from the week's candidates, leaving
    out `had` (what its recipients already had) in place of the daily ledger.
    """
    now = now or datetime.now(UTC)
    built: list[Built] = []
    with session_scope(factory) as session, SourceHttp(settings, source="arxiv-fulltext") as text_http:
        queries.sync_profiles(session, profiles, now)
        session.commit()
        find_text = fulltext_finder(settings, session, text_http, now)
        llm_client = client_from_settings(settings)
        judging = top_to_judge(settings)
        youtube = None
        if find_talk is None:
            youtube = youtube_for_talks(settings, session, profiles, now)
            find_talk = youtube.find_talk if youtube.configured else None
        for profile in profiles:
            the_day = day or digest_day(profile, now)
            existing = None if dry_run else _existing(settings, session, profile.name, the_day, span)
            if existing is not None:
                built.append(existing)
                continue
            if embedder == "auto":  # loaded once, and only when a digest is to be made
                embedder = load_embedder(settings)
            with single_threaded_blas():
                digest, pages = make_digest(
                    session,
                    profile,
                    the_day,
                    find_talk,
                    now,
                    embedder,
                    find_text,
                    llm_client,
                    span,
                    had,
                    judge_top=judging,
                )
            built.append(_save(settings, session, digest, pages, now, dry_run))
        if youtube is not None:
            record_talk_search(session, youtube, now)
        if dry_run:
            session.rollback()
    return built


def _existing(settings: Settings, session: Session, profile: str, day: date, span: str) -> Built | None:
    """The digest already built for `profile`, `day` and `span`, unchanged; None when there is none."""
    row = queries.find_digest(session, profile, day, span)
    if row is None:
        return None
    path = _digest_path(settings, profile, day, span)
    digest = queries.load_digest(session, row)
    return Built(profile, day, digest, row.markdown, path if path.exists() else None, existed=True)


def _save(
    settings: Settings,
    session: Session,
    digest: Digest,
    pages: Mapping[str, PaperPage],
    now: datetime,
    dry_run: bool,
) -> Built:
    """Render the digest; unless `dry_run`, store it with its paper pages and write both as Markdown."""
    rendered = render_markdown(digest)
    path = None
    if not dry_run:
        queries.save_digest(session, digest, rendered.body, now, {k: p.data for k, p in pages.items()})
        path = _digest_path(settings, digest.profile, digest.day, digest.span)
        files = {path.parent / p.path: p.markdown for p in pages.values()} | {path: rendered.body}
        _write_and_commit(session, files)
    markdown_pages = {p.path: p.markdown for p in pages.values()}
    return Built(digest.profile, digest.day, digest, rendered.body, path, pages=markdown_pages)


def _write_and_commit(session: Session, files: Mapping[Path, str]) -> None:
    """Write `files` and commit the digest flushed into `session`: both or neither. A file that cannot be
    written (a full disk) rolls the row back; a commit that fails removes the files written."""
    written: list[Path] = []
    try:
        for path, text in files.items():
            write_atomically(path, text)
            written.append(path)
        session.commit()
    except BaseException:
        try:
            for path in written:
                path.unlink(missing_ok=True)
        finally:
            session.rollback()
        raise


def _digest_path(settings: Settings, profile: str, day: date, span: str = "day") -> Path:
    suffix = "" if span == "day" else f".{span}"
    return settings.digest_dir() / profile / f"{day.isoformat()}{suffix}.md"


# --- the recipe ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reader:
    """What the store knows of the reader on the day: the window, their library, seeds, what they got."""

    start: datetime
    end: datetime
    library: dict[str, list[str]]
    own: set[str]  # the library's keys: the reader's already
    seed_keys: list[str]
    seeds: dict[str, Candidate]
    sent: set[str]
    feedback: list[Feedback]
    silence: list[Silence]  # sent, never voted on: the learned scorer's weak negatives


def make_digest(
    session: Session,
    profile: Profile,
    day: date,
    find_talk: TalkFinder | None,
    now: datetime,
    embedder: Embedder | None,
    find_text: TextFinder | None = None,
    llm_client: ChatClient | None = None,
    span: str = "day",
    had: Collection[str] = (),
    *,
    judge_top: int = 0,
) -> tuple[Digest, dict[str, PaperPage]]:
    """One profile's digest for `day` (or, `span` "week", for the week ending `day`), and the pages of
    its paper picks (by item key). With `judge_top` (and `llm_client`), the LLM judges that many of the
    top papers and the picks are taken in its order (rank/judge.py)."""
    reader = _reader(session, profile, day, now, span, had)
    judging = judge_top if llm_client is not None else 0
    depth = max(profile.papers, judging) if judging else None
    papers = _rank(session, profile, reader, embedder, now, "paper", reader.sent | reader.own, limit=depth)
    if llm_client is not None and judging:
        judged = _judged(session, llm_client, papers.picks, profile, judging, now)
        papers = replace(papers, picks=choose(judged, profile, profile.papers))
    talk_lines, talks = talk_check(session, papers.picks, find_talk, now)
    talks = [t for t in talks if t[1].candidate.key not in reader.sent][: profile.videos]
    taken = {s.candidate.key for _, s in talks}
    left = max(profile.videos - len(talks), 0)
    videos = _rank(session, profile, reader, embedder, now, "video", reader.sent | taken, limit=left)

    texts = {s.candidate.key: find_text(s.candidate) if find_text else None for s in papers.picks}
    cards, pages = _paper_cards(papers.picks, texts)
    if llm_client is not None:
        cards = _llm_cards(session, llm_client, papers.picks, cards, texts, now)
    cards += [talk_card(paper, s) for paper, s in talks]
    cards += [build_card(s) for s in videos.picks]
    cards = _with_discussions(session, cards)
    digest = Digest(
        profile=profile.name,
        day=day,
        title=f"Daily Feed - {day.isoformat()}"
        if span == "day"
        else f"Weekly Feed - week to {day.isoformat()}",
        summary=notes.summary(cards),
        cards=tuple(cards),
        papers_wanted=profile.papers,
        videos_wanted=profile.videos,
        talk_check=" ".join(talk_lines),
        sources=_source_reports(session, profile, reader, papers, videos, cards, texts),
        shortfall=notes.shortfall(profile, papers, videos, len(talks)),
        span=span,
    )
    return digest, pages


def _reader(
    session: Session, profile: Profile, day: date, now: datetime, span: str = "day", had: Collection[str] = ()
) -> _Reader:
    """What the store knows of the reader; a weekly bundle's window is the week, its ledger `had`."""
    end = datetime.combine(day, time.max, ZoneInfo(profile.timezone)).astimezone(UTC)
    days = profile.max_age_days if span == "day" else min(WEEK_DAYS, profile.max_age_days)
    sent = queries.sent_keys(session, profile.name, before=day) if span == "day" else set(had)
    library = queries.library_of(session, profile.name)
    own = {k for keys in library.values() for k in keys}
    seed_keys = [ItemKey.arxiv(s) for t in profile.threads for s in t.seed_papers]
    return _Reader(
        start=end - timedelta(days=days),
        end=end,
        library=library,
        own=own,
        seed_keys=seed_keys,
        seeds=queries.items_by_keys(session, seed_keys + [k for keys in library.values() for k in keys]),
        sent=sent,
        feedback=queries.feedback_for(session, profile.name),
        silence=queries.silence_for(session, profile.name, now),
    )


def _rank(
    session: Session,
    profile: Profile,
    reader: _Reader,
    embedder: Embedder | None,
    now: datetime,
    kind: str,
    exclude: set[str],
    limit: int | None = None,
) -> Ranking:
    """Rank the window's items of `kind`, leaving out `exclude`; embeddings come from and go to the store."""
    candidates = queries.items_published_between(session, reader.start, reader.end, kinds=(kind,))
    cached: dict[str, np.ndarray] = {}
    on_embedded = None
    if embedder is not None:
        keys = [c.key for c in candidates] + list(reader.seeds) + [f.candidate.key for f in reader.feedback]
        keys += [s.candidate.key for s in reader.silence]
        cached = queries.embeddings_for(session, keys, embedder.name)
        model = embedder.name

        def on_embedded(fresh: dict[str, np.ndarray]) -> None:
            queries.save_embeddings(session, fresh, model, now)

    pool = build_pool(candidates, embedder=embedder, cached=cached, on_embedded=on_embedded)
    if embedder is not None:
        thread_texts = embedded_texts(profile.threads)
        pool.text_cache.update(queries.text_embeddings(session, thread_texts, embedder.name))
    ranking = rank_pool(
        profile,
        pool,
        now=reader.end,
        seeds=reader.seeds,
        seed_vectors=cached,
        library=reader.library,
        already_sent=exclude,
        feedback=reader.feedback,
        limit=limit,
        silence=reader.silence,
    )
    if embedder is not None and pool.fresh_texts:
        queries.save_text_embeddings(session, pool.fresh_texts, embedder.name, now)
    return ranking


def _paper_cards(
    picks: Sequence[Scored], texts: Mapping[str, FullText | None]
) -> tuple[list[Card], dict[str, PaperPage]]:
    """A card per paper pick, and for each pick with a full text its page (breakdown and formula notes),
    built here once: the Markdown file and the web's item page both come from it."""
    cards = [write_card(s, texts[s.candidate.key]) for s in picks]
    pages: dict[str, PaperPage] = {}
    for i, s in enumerate(picks):
        ft = texts[s.candidate.key]
        if ft is not None and ft.source != "abstract":
            bare = ItemKey(s.candidate.key).arxiv_id or s.candidate.key
            rel = f"papers/{bare.replace('/', '_')}.md"
            b, notes = breakdown(s.candidate, ft), formula_notes(ft)
            pages[s.candidate.key] = PaperPage(rel, render_paper_markdown(b, notes), page_data(b, notes))
            cards[i] = replace(cards[i], details=rel)
    return cards, pages


def _with_discussions(session: Session, cards: list[Card]) -> list[Card]:
    threads = queries.discussions_for(session, [c.key for c in cards])
    return [replace(c, discussions=tuple(threads.get(c.key, ()))) for c in cards]


def _source_reports(
    session: Session,
    profile: Profile,
    reader: _Reader,
    papers: Ranking,
    videos: Ranking,
    cards: Sequence[Card],
    texts: Mapping[str, FullText | None],
) -> tuple[SourceReport, ...]:
    """The source-discovery note: each source's last run, as the store recorded it, told by `notes`."""
    runs = queries.latest_runs(session, exclude_notes=(NOTE,))
    failed = [s for s in notes.SOURCES if s in runs and runs[s].status == "failed"]
    reports = notes.source_reports(
        profile,
        papers,
        videos,
        cards,
        runs=runs,
        failing_since={s: queries.failing_since(session, s) for s in failed},
        missing=len(reader.seed_keys) - len(reader.seeds),
        texts=texts,
    )
    return tuple(reports)


def _judged(
    session: Session, client: ChatClient, picks: Sequence[Scored], profile: Profile, top: int, now: datetime
) -> list[Scored]:
    """`picks` with the first `top` in the LLM judge's order (rank/judge.py). One `llm` run, noted "LLM
    judge", records how many it judged and the tokens it spent, as the card writer's run does."""
    verdicts: list[Verdict | None] = []
    before = client.tokens_spent
    judged = judge_picks(picks, profile, client, top=top, on_judged=lambda s, v: verdicts.append(v))
    tokens_in, tokens_out = (after - b for after, b in zip(client.tokens_spent, before, strict=True))
    graded = sum(v is not None for v in verdicts)
    failed = graded == 0 and bool(verdicts)
    run_id = queries.start_run(session, LLM, now)
    queries.finish_run(
        session,
        run_id,
        status="failed" if failed else "ok",
        now=datetime.now(UTC),
        fetched=len(verdicts),
        note=f"LLM judge: {graded} of {len(verdicts)} top papers judged; "
        f"tokens {tokens_in} in, {tokens_out} out",
        units=tokens_in + tokens_out,
        error="no paper could be judged (the logged warning gives the cause)" if failed else None,
    )
    return judged


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
    out, tokens_in, tokens_out, problems = [], 0, 0, []
    for s, card in zip(picks, cards, strict=True):
        ft = texts.get(s.candidate.key)
        result = llm_write_card(
            s, card, ft.text if ft else s.candidate.text, client, macros=ft.macros if ft else None
        )
        out.append(result.card)
        tokens_in, tokens_out = tokens_in + result.tokens[0], tokens_out + result.tokens[1]
        if result.error:
            problems.append(f"{s.candidate.key}: {result.error}")
        problems += [f"{s.candidate.key}: rejected {r}" for r in result.rejected]
        problems += [f"{s.candidate.key}: repaired {r}" for r in result.repaired]
    run_id = queries.start_run(session, LLM, now)
    failed = all(c.writer == "extractive" for c in out) and any(
        "rejected" not in n and "repaired" not in n for n in problems
    )
    queries.finish_run(
        session,
        run_id,
        status="failed" if failed and problems else "ok",
        now=datetime.now(UTC),
        fetched=len(out),
        note=f"{sum(c.writer != 'extractive' for c in out)} of {len(out)} cards written by the LLM; "
        f"tokens {tokens_in} in, {tokens_out} out" + ("; " + "; ".join(problems) if problems else ""),
        units=tokens_in + tokens_out,
        error=problems[0] if failed and problems else None,
    )
    return out
