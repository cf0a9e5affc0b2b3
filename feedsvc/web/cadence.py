"""The delivery settings page behind each digest's signed "Delivery settings" link (`/s/<token>`): daily
or weekly (on a day), a send time and time zone, and whether a quiet day sends one line.

GET shows the recipient's cadence in a form and changes nothing; POST, with the same signed token, saves
it (`feedsvc.pipeline.cadence.change_cadence`); a bad value answers 400 with the form and what was wrong.
Without the token nothing can be read or written; the link does not expire (like unsubscribe).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from feedsvc.cadence import DAYS, describe, next_due
from feedsvc.models import Cadence, Recipient
from feedsvc.pipeline.cadence import cadence_for, change_cadence
from feedsvc.store import delivery
from feedsvc.web.actions import Refused, _payload, _recipient, _shown, page, refused
from feedsvc.web.deps import NowDep, SessionDep, StateDep, WebState

router = APIRouter()


def _active(st: WebState, session: Session, token: str) -> Recipient:
    recipient = _recipient(session, _payload(st, "settings", token))
    found = delivery.recipient_by_id(session, recipient.id)
    if not (found and found[1]):
        raise Refused("Nothing was changed: this address is unsubscribed; subscribe again first.")
    return recipient


def _form(
    request: Request, st: WebState, r: Recipient, cadence: Cadence, status: int = 200, error: str = ""
) -> Response:
    return page(
        request,
        st,
        "cadence.html.j2",
        status,
        profile=r.profile,
        shown=_shown(r),
        current=describe(cadence),
        cadence=cadence,
        days=DAYS,
        error=error,
        action=request.url.path,
    )


@router.api_route("/s/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def settings_form(request: Request, st: StateDep, session: SessionDep, token: str) -> Response:
    try:
        r = _active(st, session, token)
    except Refused as why:
        return refused(request, st, why)
    return _form(request, st, r, cadence_for(session, r))


@router.post("/s/{token}", include_in_schema=False)
def settings_post(
    request: Request,
    st: StateDep,
    session: SessionDep,
    now: NowDep,
    token: str,
    every: Annotated[str, Form(max_length=16)] = "daily",
    day: Annotated[str, Form(max_length=16)] = "monday",
    send_at: Annotated[str, Form(max_length=8)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    try:
        r = _active(st, session, token)
    except Refused as why:
        return refused(request, st, why)
    if every not in ("daily", "weekly"):
        return _form(request, st, r, cadence_for(session, r), 400, "Choose daily or weekly.")
    words = [day, every, send_at or "?", timezone or "?", "note" if note else "no-note"]
    try:
        saved = change_cadence(session, r, words, now)
    except ValueError as e:
        return _form(request, st, r, cadence_for(session, r), 400, f"Nothing was changed: {e}.")
    session.commit()
    upcoming = next_due(saved, now).strftime("%A %Y-%m-%d at %H:%M")
    return page(
        request,
        st,
        "message.html.j2",
        heading="Saved",
        text=f"The digest of {r.profile} now comes {describe(saved)}.",
        detail=f"The next one: {upcoming} ({saved.timezone}).",
        tone="success",
    )
