"""The digest's texts about itself: the summary line, the shortfall (why fewer picks than wanted) and the
source-discovery note (what each source brought, and what became of it).

Pure: the digest run passes in what the store said (the sources' last runs, when a failing one began
failing); nothing here reads the store or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from feedsvc.cards.fulltext import FullText
from feedsvc.models import Card, Profile, SourceReport
from feedsvc.rank.ranker import Ranking
from feedsvc.render.markdown import SOURCE_LABELS

SOURCES = ("arxiv", "youtube", "hn", "lobsters")


class Run(Protocol):
    """A source's last finished run, as the store records it."""

    status: str
    started: datetime
    finished: datetime | None
    scanned: int
    fetched: int
    new: int
    error: str | None
    note: str


def summary(cards: Sequence[Card]) -> str:
    if not cards:
        return "Nothing cleared today's bar for this profile."
    parts = [f"{c.title.rstrip('.')} ({c.thread}{', video' if c.kind == 'video' else ''})" for c in cards]
    return "Today's picks: " + "; ".join(parts) + "."


def shortfall(profile: Profile, papers: Ranking, videos: Ranking, talks: int) -> str:
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


def _result(
    source: str,
    profile: Profile,
    papers: Ranking,
    videos: Ranking,
    cards: Sequence[Card],
    missing: int,
    texts: Mapping[str, FullText | None],
) -> tuple[str, int]:
    """What became of `source`'s items in this digest, and how many of them were picked."""
    if source == "arxiv":
        result = _pool(profile, papers, "paper")
        if missing:
            result += f" {missing} seed paper(s) of the profile are not in the store yet."
        return result + _fulltext_note(texts), len(papers.picks)
    if source == "youtube":
        return _pool(profile, videos, "video"), sum(1 for c in cards if c.kind == "video")
    site = SOURCE_LABELS[source]  # a discussion names its site by the source's label
    on_picks = sum(1 for c in cards for d in c.discussions if d.site == site)
    return (
        f"{on_picks} thread(s) on today's picks; stories not about a paper or talk are not picked by "
        "this build.",
        0,
    )


def _run_note(run: Run | None, failing_since: datetime | None, result: str) -> str:
    """The source's last run in a sentence, then `result`."""
    if run is None:
        return f"never fetched. {result}"
    if run.status == "failed":
        since = failing_since or run.started
        return (
            f"failed since {since:%Y-%m-%d %H:%M} UTC ({run.error}); "
            f"using what the store already had: {result}"
        )
    if run.status == "empty":
        return f"{run.note or 'nothing new'} (checked {run.finished:%Y-%m-%d %H:%M} UTC). {result}"
    return (
        f"last fetch {run.finished:%Y-%m-%d %H:%M} UTC scanned {run.scanned} items, kept {run.fetched} "
        f"({run.new} new to the store). {result}"
    )


def source_reports(
    profile: Profile,
    papers: Ranking,
    videos: Ranking,
    cards: Sequence[Card],
    *,
    runs: Mapping[str, Run],
    failing_since: Mapping[str, datetime | None],
    missing: int = 0,
    texts: Mapping[str, FullText | None] | None = None,
) -> list[SourceReport]:
    """The source-discovery note, one report per source: its last run (`runs`; `failing_since` for the
    failed ones) and what became of its items; `missing` counts seed papers not in the store."""
    reports = []
    for source in SOURCES:
        run = runs.get(source)
        result, picked = _result(source, profile, papers, videos, cards, missing, texts or {})
        reports.append(
            SourceReport(
                source=SOURCE_LABELS.get(source, source),
                status=run.status if run else "never run",
                scanned=run.scanned if run else 0,
                eligible=papers.eligible,
                picked=picked,
                note=_run_note(run, failing_since.get(source), result),
            )
        )
    return reports
