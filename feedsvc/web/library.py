"""A reader's study list on the web: its page (`/library/{profile}`, filtered by `thread` and `tag`), the
Atom feed of its additions and its JSON (`/api/library/{profile}`). The list itself comes from
`feedsvc.pipeline.study`; this module only shows it. An edge module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from feedsvc.models import StudyEntry, StudyList
from feedsvc.pipeline.study import study_list
from feedsvc.web.cache import SHORT, Page, respond
from feedsvc.web.deps import SessionDep, StateDep
from feedsvc.web.feeds import ATOM, json_page
from feedsvc.web.pages import PageNumber, html
from feedsvc.web.templating import item_path, render, rfc3339, xml_safe

router = APIRouter()

FEED_ENTRIES = 30
PER_PAGE = 50
Filter = Annotated[str, Query(max_length=256)]


def _list(session: SessionDep, profile: str, thread: str = "", tag: str = "") -> StudyList:
    found = study_list(session, profile, thread=thread.strip(), tag=tag.strip().lower())
    if found is None:
        raise HTTPException(404, f"There is no profile named {profile!r}.")
    return found


def library_path(profile: str) -> str:
    return f"/library/{quote(profile, safe='')}"


def _page_of(shelf: StudyList, page: int) -> tuple[StudyList, int]:
    """The `page`th PER_PAGE entries of the list, and how many pages it has (404 past the last)."""
    pages = max(1, math.ceil(len(shelf.entries) / PER_PAGE))
    if page > pages:
        raise HTTPException(404, f"The study list of {shelf.profile!r} has {pages} page(s) here.")
    entries = shelf.entries[(page - 1) * PER_PAGE : page * PER_PAGE]
    return dataclasses.replace(shelf, entries=entries), pages


@router.api_route("/library/{profile}", methods=["GET", "HEAD"], include_in_schema=False)
def library_page(
    request: Request,
    st: StateDep,
    session: SessionDep,
    profile: str,
    thread: Filter = "",
    tag: Filter = "",
    page: PageNumber = 1,
) -> Response:
    found = _list(session, profile, thread, tag)
    shown, pages = _page_of(found, page)
    query = urlencode({k: v for k, v in (("thread", thread), ("tag", tag)) if v})
    return html(
        request,
        st,
        "library.html.j2",
        SHORT,
        shelf=shown,
        matching=len(found.entries),
        thread=thread,
        tag=tag,
        path=library_path(profile),
        page=page,
        pages=pages,
        pager_base=f"{library_path(profile)}?{query}{'&' if query else ''}",
    )


def _entry_json(base: str, e: StudyEntry) -> dict[str, Any]:
    data = dataclasses.asdict(e)
    data["page"] = base + item_path(e.key)
    data["breakdown_url"] = f"{base}{item_path(e.key)}#breakdown" if e.breakdown else None
    return data


@router.api_route("/api/library/{profile}", methods=["GET", "HEAD"])
def api_library(
    request: Request,
    st: StateDep,
    session: SessionDep,
    profile: str,
    thread: Filter = "",
    tag: Filter = "",
    page: PageNumber = 1,
) -> Response:
    """A reader's study list, newest first, 50 a page: imported papers, papers voted 👍 and the profile's
    seed papers, each with its tags, difficulty and breakdown link; `thread` and `tag` filter it."""
    found = _list(session, profile, thread, tag)
    shelf, pages = _page_of(found, page)
    base = st.settings.base_url.rstrip("/")
    data = {
        "profile": profile,
        "url": base + library_path(profile),
        "page": page,
        "pages": pages,
        "matching": len(found.entries),
        "total": shelf.total,
        "threads": list(shelf.threads),
        "tags": list(shelf.tags),
        "entries": [_entry_json(base, e) for e in shelf.entries],
    }
    return respond(request, json_page(data, SHORT))


@router.api_route("/library/{profile}/atom.xml", methods=["GET", "HEAD"], include_in_schema=False)
def library_feed(request: Request, st: StateDep, session: SessionDep, profile: str) -> Response:
    """The additions to the study list, newest first, as Atom (RFC 4287)."""
    shelf = _list(session, profile)
    base = st.settings.base_url.rstrip("/")
    entries = shelf.entries[:FEED_ENTRIES]
    body = render(
        st.feed_templates,
        "library_atom.xml.j2",
        profile=profile,
        list_url=base + library_path(profile),
        self_url=f"{base}{library_path(profile)}/atom.xml",
        updated=rfc3339(max((e.added for e in entries), default=st.clock())),
        entries=entries,
        rfc3339=rfc3339,
    )
    return respond(request, Page.of(xml_safe(body), ATOM, SHORT))
