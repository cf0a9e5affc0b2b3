"""The endpoints that change something: feedback and unsubscribe links (signed), the subscription form
and its confirmation link (double opt-in).

GET never changes anything: it checks the link and shows what pressing the button will do; POST does it.
An unsubscribe URL also takes a mail client's RFC 8058 one-click POST (body `List-Unsubscribe=One-Click`,
no cookie, no other token). A forged, damaged, expired or wrong-purpose token gets a 400 page saying so
and nothing changes. Without FEEDSVC_SECRET_KEY these endpoints answer 503; the archive still works.
Imports the store, `feedsvc.signing` and `feedsvc.pipeline.subscribe`, which records a subscription
request (rate limited: 429 with Retry-After) and leaves its confirmation mail to the publish run's outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from feedsvc.models import VOTES, ConfigError, Recipient
from feedsvc.signing import BadToken, Purpose, read_token
from feedsvc.store import archive, delivery, queries
from feedsvc.web.cache import PRIVATE, Page, respond
from feedsvc.web.deps import NowDep, SessionDep, StateDep, WebState
from feedsvc.web.templating import mask_address, render

log = logging.getLogger(__name__)
router = APIRouter()

HTML = "text/html; charset=utf-8"
FEEDBACK_MAX_AGE = timedelta(days=365)  # a vote from a year-old email still counts; older links expire
# Unsubscribe links never expire (a reader must always be able to leave); confirmation links are bounded
# by the subscription's own expiry in the store.


class Refused(Exception):
    """A link that cannot be acted on, with the reader-facing reason."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def page(request: Request, st: WebState, template: str, status: int = 200, **context: Any) -> Response:
    body = render(st.templates, template, **context)
    return respond(request, Page.of(body, HTML, PRIVATE), status=status)


def refused(request: Request, st: WebState, why: Refused) -> Response:
    heading = "Not available" if why.status == 503 else "This link cannot be used"
    return page(request, st, "message.html.j2", why.status, heading=heading, text=why.reason, tone="error")


def _payload(st: WebState, purpose: Purpose, token: str, max_age: timedelta | None = None) -> dict[str, Any]:
    secret = st.secret
    if secret is None:
        raise Refused("Links are not configured on this server (it has no signing secret).", 503)
    try:
        return read_token(secret, purpose, token, max_age=max_age.total_seconds() if max_age else None)
    except BadToken as e:
        raise Refused(f"Nothing was changed: {e}.") from None


def _recipient(session: Session, data: dict[str, Any]) -> Recipient:
    rid = data.get("r")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise Refused("Nothing was changed: this link is not valid (damaged or not ours).")
    found = delivery.recipient_by_id(session, rid)
    if found is None:
        raise Refused("Nothing was changed: the subscription this link belongs to no longer exists.")
    return found[0]


# --- feedback ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vote:
    recipient: Recipient
    key: str
    vote: str
    title: str


def _vote(st: WebState, session: Session, token: str) -> Vote:
    data = _payload(st, "feedback", token, FEEDBACK_MAX_AGE)
    key, vote = data.get("k"), data.get("v")
    if not isinstance(key, str) or vote not in VOTES:
        raise Refused("Nothing was changed: this link is not valid (damaged or not ours).")
    recipient = _recipient(session, data)
    item = archive.item(session, key)
    if item is None:
        raise Refused("Nothing was changed: the item this link is about is no longer in the archive.")
    return Vote(recipient, key, str(vote), item.title)


@router.api_route("/f/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def feedback_form(request: Request, st: StateDep, session: SessionDep, token: str) -> Response:
    try:
        v = _vote(st, session, token)
    except Refused as why:
        return refused(request, st, why)
    return page(
        request,
        st,
        "action.html.j2",
        heading="Record your vote",
        question=f"Mark “{v.title}” as {VOTES[v.vote].phrase} for the profile {v.recipient.profile}?",
        detail="Your votes steer which papers and talks this profile's next digests pick.",
        button=f"Yes, {VOTES[v.vote].phrase}",
        action=request.url.path,
    )


@router.post("/f/{token}", include_in_schema=False)
def feedback_post(request: Request, st: StateDep, session: SessionDep, now: NowDep, token: str) -> Response:
    try:
        v = _vote(st, session, token)
        queries.record_feedback(
            session, v.recipient.profile, v.key, v.vote, channel="email", now=now, recipient_id=v.recipient.id
        )
    except Refused as why:
        return refused(request, st, why)
    except LookupError as e:
        return refused(request, st, Refused(f"Nothing was changed: {e}."))
    session.commit()
    return page(
        request,
        st,
        "message.html.j2",
        heading="Thank you",
        text=f"Recorded: “{v.title}”, {VOTES[v.vote].phrase}.",
        detail=f"The next digests of {v.recipient.profile} take it into account.",
        tone="success",
    )


# --- unsubscribe ---------------------------------------------------------------------------------------


def _leaving(st: WebState, session: Session, token: str) -> tuple[Recipient, bool]:
    data = _payload(st, "unsubscribe", token)
    recipient = _recipient(session, data)
    found = delivery.recipient_by_id(session, recipient.id)
    return recipient, bool(found and found[1])


@router.api_route("/u/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def unsubscribe_form(request: Request, st: StateDep, session: SessionDep, token: str) -> Response:
    try:
        recipient, active = _leaving(st, session, token)
    except Refused as why:
        return refused(request, st, why)
    if not active:
        return page(
            request,
            st,
            "message.html.j2",
            heading="Already unsubscribed",
            text=f"This address no longer receives the digests of {recipient.profile}.",
        )
    return page(
        request,
        st,
        "action.html.j2",
        heading="Unsubscribe",
        question=f"Stop sending the digests of {recipient.profile} to {_shown(recipient)}?",
        detail="You can subscribe again at any time.",
        button="Unsubscribe",
        action=request.url.path,
    )


def _shown(recipient: Recipient) -> str:
    return (
        mask_address(recipient.address) if recipient.channel == "email" else f"this {recipient.channel} chat"
    )


@router.post("/u/{token}", include_in_schema=False)
def unsubscribe_post(
    request: Request, st: StateDep, session: SessionDep, now: NowDep, token: str
) -> Response:
    """Unsubscribe: the confirmation form's POST and RFC 8058's one-click POST alike (no body needed)."""
    try:
        recipient, _ = _leaving(st, session, token)
        delivery.deactivate_recipient(session, recipient.id, "unsubscribed by link", now)
    except Refused as why:
        return refused(request, st, why)
    except LookupError as e:
        return refused(request, st, Refused(f"Nothing was changed: {e}."))
    session.commit()
    return page(
        request,
        st,
        "message.html.j2",
        heading="Unsubscribed",
        text=f"You will receive no more digests of {recipient.profile} at {_shown(recipient)}.",
        tone="success",
    )


# --- subscription: the form, then the emailed confirmation link ----------------------------------------


def _subscribe_form(
    request: Request, st: WebState, session: Session, status: int = 200, **context: Any
) -> Response:
    profiles = archive.profile_names(session)
    selected = context.pop("selected", "") or request.query_params.get("profile", "")
    context.setdefault("address", "")
    context.setdefault("error", "")
    return page(request, st, "subscribe.html.j2", status, profiles=profiles, selected=selected, **context)


@router.api_route("/subscribe", methods=["GET", "HEAD"], include_in_schema=False)
def subscribe_form(request: Request, st: StateDep, session: SessionDep) -> Response:
    if st.secret is None:
        return refused(request, st, Refused("Email subscription is not configured on this server.", 503))
    return _subscribe_form(request, st, session)


@router.post("/subscribe", include_in_schema=False)
def subscribe_post(
    request: Request,
    st: StateDep,
    session: SessionDep,
    now: NowDep,
    address: Annotated[str, Form(max_length=320)] = "",
    profile: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    if st.secret is None:
        return refused(request, st, Refused("Email subscription is not configured on this server.", 503))
    if profile not in archive.profile_names(session):
        return _subscribe_form(
            request, st, session, 400, address=address, error="Choose one of the profiles."
        )
    session.close()  # the request opens its own session
    from feedsvc.pipeline.subscribe import TooMany, request_email_subscription

    try:
        request_email_subscription(st.settings, st.factory, address, profile, now, client=_peer(request))
    except TooMany as e:
        log.info("subscription form: %s", e.reason)
        return _too_many(request, st, e.retry_after)
    except ConfigError as e:
        log.warning("subscription form: %s", e)
        return refused(request, st, Refused("Email subscription is not configured on this server.", 503))
    except ValueError:
        return _subscribe_form(
            request,
            st,
            session,
            400,
            address=address,
            selected=profile,
            error="That does not look like an email address. Check it and try again.",
        )
    except LookupError:
        return _subscribe_form(
            request, st, session, 400, address=address, error="Choose one of the profiles."
        )
    return page(
        request,
        st,
        "message.html.j2",
        heading="Check your inbox",
        text=f"A confirmation link is on its way to {address.strip()}. "
        "Nothing is sent to you until you open it.",
        detail="The link is valid for a few days. If no mail arrives within a quarter of an hour, check the "
        "spam folder or try again.",
        tone="success",
    )


def _peer(request: Request) -> str:
    """The client the rate limit counts: the socket peer (a proxy in front counts as one client)."""
    return request.client.host if request.client else ""


def _too_many(request: Request, st: WebState, retry_after: int) -> Response:
    minutes = max(1, -(-retry_after // 60))
    answer = page(
        request,
        st,
        "message.html.j2",
        429,
        heading="Too many requests",
        text=f"Nothing was sent: too many subscription requests. Please try again in {minutes} minutes.",
        tone="error",
    )
    answer.headers["Retry-After"] = str(retry_after)
    return answer


def _pending(st: WebState, session: Session, token: str) -> tuple[str, archive.Pending]:
    data = _payload(st, "confirm", token)
    code = data.get("c")
    if not isinstance(code, str) or not code:
        raise Refused("Nothing was changed: this link is not valid (damaged or not ours).")
    found = archive.pending_subscription(session, "email", code)
    if found is None:
        raise Refused("Nothing was changed: this confirmation link is not known; ask for a new one.")
    return code, found


@router.api_route("/confirm/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def confirm_form(request: Request, st: StateDep, session: SessionDep, now: NowDep, token: str) -> Response:
    try:
        _, pending = _pending(st, session, token)
        if pending.used is not None:
            raise Refused("This confirmation link was already used: the subscription is active.")
        if pending.expires <= now:
            raise Refused("This confirmation link has expired; subscribe again to get a new one.")
    except Refused as why:
        return refused(request, st, why)
    return page(
        request,
        st,
        "action.html.j2",
        heading="Confirm your subscription",
        question=f"Send the digests of {pending.profile} to {pending.address}?",
        detail="Every digest carries a link to unsubscribe in one click.",
        button="Confirm the subscription",
        action=request.url.path,
    )


@router.post("/confirm/{token}", include_in_schema=False)
def confirm_post(request: Request, st: StateDep, session: SessionDep, now: NowDep, token: str) -> Response:
    try:
        code, _ = _pending(st, session, token)
        redeemed = delivery.redeem_subscription(session, "email", code, now)
    except Refused as why:
        return refused(request, st, why)
    except LookupError as e:
        return refused(request, st, Refused(f"Nothing was changed: {e}."))
    session.commit()
    r = redeemed.recipient
    return page(
        request,
        st,
        "message.html.j2",
        heading="Subscribed" if redeemed.new else "Already subscribed",
        text=f"{r.address} receives the digests of {r.profile} from the next one on.",
        tone="success",
    )
