"""The archive's HTML pages: the latest bundle per profile, a profile's digests by date, a digest's
permalink, an item's page, search, and the stylesheet.

A digest's page is rendered once and served from memory afterwards (digests are immutable); its handler
is async so that a cached page is answered without a thread hop. Imports the store's archive reads and
`feedsvc.web`'s helpers: an edge module.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from markupsafe import Markup, escape
from sqlalchemy.orm import Session
from starlette.responses import Response

from feedsvc.store import archive, queries
from feedsvc.web.cache import IMMUTABLE, REVALIDATE, SHORT, Page, respond
from feedsvc.web.deps import SessionDep, StateDep, WebState, get_state
from feedsvc.web.details import paper_page
from feedsvc.web.templating import css_text, render

router = APIRouter()

HTML = "text/html; charset=utf-8"
PER_PAGE = 30
SEARCH_PER_PAGE = 20
PageNumber = Annotated[int, Query(ge=1, le=100_000)]


def html(
    request: Request, st: WebState, template: str, cache: str = REVALIDATE, **context: object
) -> Response:
    """Render a page and answer it with an ETag (304 when the client has the same bytes)."""
    return respond(request, Page.of(render(st.templates, template, **context), HTML, cache))


def parse_day(day: str) -> date:
    """A date in the URL's one form, YYYY-MM-DD; anything else is not a page."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise HTTPException(404, "There is no digest at this address.") from None
    if parsed.isoformat() != day:
        raise HTTPException(404, "There is no digest at this address.")
    return parsed


# --- the stylesheet ------------------------------------------------------------------------------------


@router.api_route("/static/style.css", methods=["GET", "HEAD"], include_in_schema=False)
async def stylesheet(request: Request) -> Response:
    st = get_state(request)
    page = st.pages.get("style.css")
    if page is None:
        page = st.pages.put(
            Page.of(css_text(), "text/css; charset=utf-8", "public, max-age=31536000, immutable"), "style.css"
        )
    return respond(request, page)


# --- the latest bundles and a profile's archive --------------------------------------------------------


def home_context(session: Session) -> dict[str, object]:
    """What the home page shows: each profile's latest digest with its listing."""
    latest = []
    for listing in archive.latest_digests(session):
        found = archive.digest_by_id(session, listing.id)
        if found is not None:
            latest.append({"digest": found[0], "listing": listing})
    return {"latest": latest}


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def home(request: Request, st: StateDep, session: SessionDep) -> Response:
    return html(request, st, "home.html.j2", SHORT, **home_context(session))


@router.api_route("/d/{profile}", methods=["GET", "HEAD"], include_in_schema=False)
def profile_archive(
    request: Request, st: StateDep, session: SessionDep, profile: str, page: PageNumber = 1
) -> Response:
    listings, total = archive.list_digests(session, profile, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    if total == 0 and profile not in archive.profile_names(session):
        raise HTTPException(404, f"There is no profile named {profile!r}.")
    pages = max(1, math.ceil(total / PER_PAGE))
    if page > pages:
        raise HTTPException(404, f"The archive of {profile!r} has {pages} page(s).")
    return html(
        request,
        st,
        "archive.html.j2",
        SHORT,
        profile=profile,
        listings=listings,
        total=total,
        page=page,
        pages=pages,
    )


# --- a digest's permalink ------------------------------------------------------------------------------


def _digest_page(st: WebState, profile: str, day: str) -> Page:
    the_day = parse_day(day)
    with st.factory() as session:
        digest_id = archive.digest_id(session, profile, the_day)
        if digest_id is None:
            raise HTTPException(404, f"{profile!r} has no digest for {day}.")
        page = st.pages.get(("digest.html", digest_id))
        if page is None:
            found = archive.digest_by_id(session, digest_id)
            if found is None:
                raise HTTPException(404, f"{profile!r} has no digest for {day}.")
            digest, listing = found
            body = render(st.templates, "digest.html.j2", digest=digest, created=listing.created)
            page = Page.of(body, HTML, IMMUTABLE)
    return st.pages.put(page, ("digest.html", digest_id), ("digest.html", profile, day))


@router.api_route("/d/{profile}/{day}", methods=["GET", "HEAD"], include_in_schema=False)
async def digest_permalink(request: Request, profile: str, day: str) -> Response:
    st = get_state(request)
    page = st.pages.get(("digest.html", profile, day))
    if page is None:
        page = await run_in_threadpool(_digest_page, st, profile, day)
    return respond(request, page)


# --- an item -------------------------------------------------------------------------------------------


def item_context(session: Session, st: WebState, key: str) -> dict[str, object] | None:
    """What an item's page shows (its cards, breakdown, discussions, talks), or None when it is unknown."""
    item = archive.item(session, key)
    if item is None:
        return None
    appearances = archive.appearances(session, key)
    titles = [item.title] + [a.card.title for a in appearances]
    talks = archive.talks_for(session, titles) if item.kind == "paper" else []
    papers_of_talk = []
    for a in appearances:
        if a.card.talk_for:
            for paper_key in archive.keys_titled(session, a.card.talk_for):
                found = archive.item(session, paper_key)
                if found is not None and (paper_key, found.title) not in papers_of_talk:
                    papers_of_talk.append((paper_key, found.title))
    return {
        "item": item,
        "placeholder": bool(item.meta.get("placeholder")),
        "appearances": appearances,
        "paper": paper_page(session, item, st.papers),
        "discussions": queries.discussions_for(session, [key]).get(key, []),
        "talks": talks,
        "papers_of_talk": papers_of_talk,
    }


@router.api_route("/item/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
def item_page(request: Request, st: StateDep, session: SessionDep, key: str) -> Response:
    context = item_context(session, st, key)
    if context is None:
        raise HTTPException(404, "This item is not in the archive.")
    return html(request, st, "item.html.j2", **context)


# --- search --------------------------------------------------------------------------------------------

SNIPPET_CHARS = 240


def snippet(text: str, terms: list[tuple[str, ...]]) -> Markup:
    """A piece of `text` around the first match, every word starting like a query word marked."""
    words = sorted({w for term in terms for w in term}, key=len, reverse=True)
    if not text or not words:
        return Markup("")
    # a word's stem-like prefix, so that "graphs" marks "graph" and "networks" marks "network"
    stems = [re.escape(w[: max(4, len(w) - 2)] if len(w) > 4 else w) for w in words]
    pattern = re.compile(r"\b(?:" + "|".join(stems) + r")\w*", re.I | re.UNICODE)
    first = pattern.search(text)
    start = 0 if first is None else max(0, first.start() - SNIPPET_CHARS // 3)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first.start() else start  # type: ignore[union-attr]
    piece = text[start : start + SNIPPET_CHARS]
    if start + SNIPPET_CHARS < len(text) and " " in piece:
        piece = piece[: piece.rindex(" ")]  # end on a whole word
    out, pos = [], 0
    for m in pattern.finditer(piece):
        out.append(escape(piece[pos : m.start()]))
        out.append(Markup("<mark>") + escape(m.group(0)) + Markup("</mark>"))
        pos = m.end()
    out.append(escape(piece[pos:]))
    prefix = "… " if start else ""
    suffix = " …" if start + SNIPPET_CHARS < len(text) else ""
    return Markup(prefix) + Markup("").join(out) + Markup(suffix)


def _shown_terms(terms: list[tuple[str, ...]]) -> str:
    return ", ".join(f"“{' '.join(t)}”" for t in terms)


def _search_page(st: WebState, query: str, page: int) -> Page:
    with st.factory() as session:
        offset = (page - 1) * SEARCH_PER_PAGE
        results = archive.search(session, query, offset=offset, limit=SEARCH_PER_PAGE)
        found_in = archive.digests_of(session, [h.key for h in results.hits])
    hits = [
        {
            "key": h.key,
            "kind": h.kind,
            "title": h.title,
            "snippet": snippet(h.text, results.terms),
            "digests": found_in.get(h.key, [])[:5],
        }
        for h in results.hits
    ]
    body = render(
        st.templates,
        "search.html.j2",
        query=query,
        terms=results.terms,
        shown_terms=_shown_terms(results.terms),
        hits=hits,
        total=results.total,
        page=page,
        pages=max(1, math.ceil(results.total / SEARCH_PER_PAGE)),
        first=offset + 1,
    )
    return Page.of(body, HTML, REVALIDATE)


@router.api_route("/search", methods=["GET", "HEAD"], include_in_schema=False)
async def search_page(request: Request, q: str = "", page: PageNumber = 1) -> Response:
    """Search results, kept in memory per query and page while the store's generation is unchanged (a
    repeated query costs no SQL; a new digest, item or update shows within a second)."""
    st = get_state(request)
    query = q.replace("\x00", "")[: archive.MAX_QUERY].strip()
    key = ("search", await st.current_generation(), query, page)
    found = st.searches.get(key)
    if found is None:
        found = st.searches.put(await run_in_threadpool(_search_page, st, query, page), key)
    return respond(request, found)
