"""A reader's study list on the web: its page (`/library/{profile}`, filtered by `thread` and `tag`), the
Atom feed of its additions and its JSON (`/api/library/{profile}`). The list itself comes from
`feedsvc.pipeline.study`; this module only shows it. An edge module.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from feedsvc.models import StudyEntry, StudyList
from feedsvc.pipeline.study import study_list
from feedsvc.web.cache import SHORT, Page, respond
from feedsvc.web.deps import SessionDep, StateDep
from feedsvc.web.feeds import ATOM, json_page
from feedsvc.web.pages import html
from feedsvc.web.templating import item_path, render, rfc3339, xml_safe

router = APIRouter()

FEED_ENTRIES = 30
Filter = Annotated[str, Query(max_length=256)]


def _list(session: SessionDep, profile: str, thread: str = "", tag: str = "") -> StudyList:
    found = study_list(session, profile, thread=thread.strip(), tag=tag.strip().lower())
    if found is None:
        raise HTTPException(404, f"There is no profile named {profile!r}.")
    return found


def library_path(profile: str) -> str:
    return f"/library/{quote(profile, safe='')}"


@router.api_route("/library/{profile}", methods=["GET", "HEAD"], include_in_schema=False)
def library_page(
    request: Request, st: StateDep, session: SessionDep, profile: str, thread: Filter = "", tag: Filter = ""
) -> Response:
    shelf = _list(session, profile, thread, tag)
    return html(
        request, st, "library.html.j2", SHORT, shelf=shelf, thread=thread, tag=tag, path=library_path(profile)
    )


def _entry_json(base: str, e: StudyEntry) -> dict[str, Any]:
    data = dataclasses.asdict(e)
    data["page"] = base + item_path(e.key)
    data["breakdown_url"] = f"{base}{item_path(e.key)}#breakdown" if e.breakdown else None
    return data


@router.api_route("/api/library/{profile}", methods=["GET", "HEAD"])
def api_library(
    request: Request, st: StateDep, session: SessionDep, profile: str, thread: Filter = "", tag: Filter = ""
) -> Response:
    """A reader's study list, newest first: imported papers, papers voted 👍 and the profile's seed papers,
    each with its tags, difficulty and breakdown link; `thread` and `tag` filter it."""
    shelf = _list(session, profile, thread, tag)
    base = st.settings.base_url.rstrip("/")
    data = {
        "profile": profile,
        "url": base + library_path(profile),
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
