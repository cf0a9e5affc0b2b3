"""The sources, one module each, and the registry the pipeline builds them from.

`SOURCES` maps each source's name to its factory: a plain function of the settings, the profiles, the
store's HTTP validators and the YouTube quota that returns the source, or None when the profiles give it
nothing to do (arXiv with no categories). The order is the order the sources run in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from feedsvc.config import Settings
from feedsvc.models import Profile, Source
from feedsvc.sources.arxiv import ArxivSource
from feedsvc.sources.hn import HackerNewsSource
from feedsvc.sources.http import SourceHttp, Validators
from feedsvc.sources.lobsters import LobstersSource
from feedsvc.sources.youtube import QuotaBudget, YouTubeSource

SourceFactory = Callable[[Settings, Sequence[Profile], Validators, QuotaBudget], Source | None]


def arxiv_categories(profiles: Sequence[Profile]) -> list[str]:
    """Every profile's arXiv categories, each once, in order."""
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


def make_arxiv(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget
) -> ArxivSource | None:
    cats = arxiv_categories(profiles)
    if not cats:
        return None
    return ArxivSource(settings, SourceHttp(settings, source="arxiv", validators=validators), cats)


def make_youtube(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget | None
) -> YouTubeSource:
    """The YouTube source; also the author-talk search of the digest run (`find_talk`)."""
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


def make_hn(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget
) -> HackerNewsSource:
    return HackerNewsSource(
        settings,
        SourceHttp(settings, source="hn", validators=validators),
        hn_queries(profiles),
        min_points=settings.hn_min_points,
        base_url=settings.hn_api_url,
    )


def make_lobsters(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget
) -> LobstersSource:
    return LobstersSource(
        settings,
        SourceHttp(settings, source="lobsters", validators=validators),
        tags=settings.lobsters_tags,
        base_url=settings.lobsters_url,
    )


SOURCES: dict[str, SourceFactory] = {
    "arxiv": make_arxiv,
    "youtube": make_youtube,
    "hn": make_hn,
    "lobsters": make_lobsters,
}


def build_sources(
    settings: Settings, profiles: Sequence[Profile], validators: Validators, quota: QuotaBudget
) -> list[Source]:
    """Every registered source the profiles give something to do; the caller closes them."""
    built = (make(settings, profiles, validators, quota) for make in SOURCES.values())
    return [source for source in built if source is not None]
