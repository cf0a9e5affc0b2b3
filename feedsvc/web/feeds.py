"""Machine-readable views of the archive: a profile's Atom feed of digests and the JSON API.

Atom (RFC 4287): feed and entries carry id, title, updated, alternate links; each entry's content is the
digest's HTML (`type="html"`, so escaped once), with absolute links. A published digest's JSON, like its
page, is built once and served from memory with an ETag. Imports the store's archive reads: an edge.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import Response

from feedsvc.models import Card, Digest
from feedsvc.store import archive, queries
from feedsvc.web.cache import IMMUTABLE, REVALIDATE, SHORT, Page, respond
from feedsvc.web.deps import SessionDep, StateDep, WebState, get_state
from feedsvc.web.details import paper_page
from feedsvc.web.pages import PER_PAGE, PageNumber, parse_day
from feedsvc.web.templating import digest_path, item_path, render, rfc3339, xml_safe

router = APIRouter()

ATOM = "application/atom+xml; charset=utf-8"
JSON = "application/json"
FEED_ENTRIES = 20


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_page(data: Any, cache: str) -> Page:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return Page.of(text, JSON, cache)


def _base(st: WebState) -> str:
    return st.settings.base_url.rstrip("/")


# --- Atom ----------------------------------------------------------------------------------------------


def atom_body(st: WebState, session: Session, profile: str, listings: list[archive.Listing]) -> bytes:
    """The profile's Atom feed of these digests (newest first), every link absolute."""
    base = _base(st)
    entries = []
    for listing in listings:
        found = archive.digest_by_id(session, listing.id)
        if found is None:
            continue
        digest = found[0]
        entries.append(
            {
                "url": base + digest_path(profile, listing.day),
                "title": digest.title,
                "published": rfc3339(listing.created),
                "updated": rfc3339(listing.created),
                "summary": digest.summary,
                "html": render(st.feed_templates, "feed_entry.html.j2", digest=digest),
            }
        )
    updated = rfc3339(max((entry.created for entry in listings), default=st.clock()))
    body = render(
        st.feed_templates,
        "atom.xml.j2",
        profile=profile,
        archive_url=f"{base}/d/{profile}",
        self_url=f"{base}/d/{profile}/atom.xml",
        updated=updated,
        entries=entries,
    )
    return xml_safe(body).encode("utf-8")


def _atom_page(st: WebState, profile: str) -> Page:
    with st.factory() as session:
        listings, total = archive.list_digests(session, profile, limit=FEED_ENTRIES)
        if total == 0 and profile not in archive.profile_names(session):
            raise HTTPException(404, f"There is no profile named {profile!r}.")
        return Page.of(atom_body(st, session, profile, listings), ATOM, SHORT)


@router.api_route("/d/{profile}/atom.xml", methods=["GET", "HEAD"], include_in_schema=False)
async def atom_feed(request: Request, profile: str) -> Response:
    """The profile's feed, built once per store generation (no SQL while no digest is added)."""
    st = get_state(request)
    key = ("atom", profile, await st.current_generation())
    page = st.pages.get(key)
    if page is None:
        page = st.pages.put(await run_in_threadpool(_atom_page, st, profile), key)
    return respond(request, page)


# --- JSON ----------------------------------------------------------------------------------------------


def _card_json(base: str, card: Card) -> dict[str, Any]:
    return {
        **dataclasses.asdict(card),
        "page": base + item_path(card.key),
        "api": f"{base}/api/items/{item_path(card.key).removeprefix('/item/')}",
    }


def _digest_json(base: str, digest: Digest, listing: archive.Listing) -> dict[str, Any]:
    data = dataclasses.asdict(digest)
    data["cards"] = [_card_json(base, c) for c in digest.cards]
    return {"url": base + digest_path(digest.profile, digest.day), "created": listing.created, **data}


@router.api_route("/api/digests/{profile}", methods=["GET", "HEAD"])
def api_digests(
    request: Request, st: StateDep, session: SessionDep, profile: str, page: PageNumber = 1
) -> Response:
    """A profile's digests, newest first, 30 a page."""
    listings, total = archive.list_digests(session, profile, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    if total == 0 and profile not in archive.profile_names(session):
        raise HTTPException(404, f"There is no profile named {profile!r}.")
    base = _base(st)
    data = {
        "profile": profile,
        "page": page,
        "pages": max(1, math.ceil(total / PER_PAGE)),
        "total": total,
        "digests": [
            {
                **dataclasses.asdict(entry),
                "url": base + digest_path(profile, entry.day),
                "api": f"{base}/api{digest_path(profile, entry.day).replace('/d/', '/digests/', 1)}",
            }
            for entry in listings
        ],
    }
    return respond(request, json_page(data, SHORT))


def _digest_json_page(st: WebState, profile: str, day: str) -> Page:
    the_day = parse_day(day)
    with st.factory() as session:
        digest_id = archive.digest_id(session, profile, the_day)
        found = archive.digest_by_id(session, digest_id) if digest_id is not None else None
    if found is None or digest_id is None:
        raise HTTPException(404, f"{profile!r} has no digest for {day}.")
    page = json_page(_digest_json(_base(st), *found), IMMUTABLE)
    return st.pages.put(page, ("digest.json", digest_id), ("digest.json", profile, day))


@router.api_route("/api/digests/{profile}/{day}", methods=["GET", "HEAD"])
async def api_digest(request: Request, profile: str, day: str) -> Response:
    """One digest, every card in full (immutable: cached, with an ETag)."""
    st = get_state(request)
    page = st.pages.get(("digest.json", profile, day))
    if page is None:
        page = await run_in_threadpool(_digest_json_page, st, profile, day)
    return respond(request, page)


@router.api_route("/api/items/{key:path}", methods=["GET", "HEAD"])
def api_item(request: Request, st: StateDep, session: SessionDep, key: str) -> Response:
    """An item: its fields, its cards, its discussions, its talks, and its breakdown when read in full."""
    item = archive.item(session, key)
    if item is None:
        raise HTTPException(404, "This item is not in the archive.")
    base = _base(st)
    appearances = archive.appearances(session, key)
    talks = (
        archive.talks_for(session, [item.title] + [a.card.title for a in appearances])
        if item.kind == "paper"
        else []
    )
    paper = paper_page(session, item, st.papers)
    data = {
        "key": item.key,
        "kind": item.kind,
        "title": item.title,
        "url": item.url,
        "page": base + item_path(item.key),
        "text": item.text,
        "authors": list(item.authors),
        "categories": list(item.categories),
        "published": item.published,
        "updated": item.updated,
        "version": item.version,
        "placeholder": bool(item.meta.get("placeholder")),
        "appearances": [
            {
                "profile": a.profile,
                "day": a.day,
                "url": base + digest_path(a.profile, a.day),
                "card": _card_json(base, a.card),
            }
            for a in appearances
        ],
        "discussions": [dataclasses.asdict(d) for d in queries.discussions_for(session, [key]).get(key, [])],
        "talks": [
            {"profile": t.profile, "day": t.day, "key": t.card.key, "title": t.card.title, "url": t.card.url}
            for t in talks
        ],
        "breakdown": dataclasses.asdict(paper.breakdown) if paper else None,
        "formula_notes": [dataclasses.asdict(n) for n in paper.notes] if paper else [],
    }
    return respond(request, json_page(data, REVALIDATE))
