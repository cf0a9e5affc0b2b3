"""Publishing, the outbox run: wires render -> deliver to the store's outbox.

`publish` enqueues each active recipient's latest digest once, claims due deliveries (see
`feedsvc.store.delivery` for the claim and its crash semantics), renders each digest once per channel,
sends, and records every outcome: sent, retried with back-off, given up with a notice, or the recipient
deactivated when the channel says they are gone (bot blocked, address refused). A channel that is not
configured leaves its deliveries pending and visible. Before the digests, it sends the email
subscriptions' due confirmation mails (`send_confirmations`), which the requests only recorded, with
the same claims, retries and back-off.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from feedsvc import signing
from feedsvc.config import Settings
from feedsvc.deliver.files import MarkdownFiles
from feedsvc.models import Channel, ConfigError, DeliveryError, Digest, Rendered
from feedsvc.render.markdown import render_markdown
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope
from feedsvc.store.tables import DigestRow

if TYPE_CHECKING:
    from feedsvc.deliver.email import EmailChannel

log = logging.getLogger(__name__)

CLAIM = 4  # deliveries a worker claims at a time: few, so workers share the work evenly
KEEP_CONFIRMATIONS = timedelta(days=7)  # finished subscription requests are forgotten after this


def signing_secret(settings: Settings, why: str) -> str:
    """The key that signs links; ConfigError naming `why` it is needed when it is missing or short."""
    secret = settings.secret_key.get_secret_value()
    if len(secret) < signing.MIN_SECRET:
        raise ConfigError(
            f"FEEDSVC_SECRET_KEY is not set (or shorter than {signing.MIN_SECRET} characters): {why} "
            "needs it to sign links; generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    return secret


# --- channels and renderers ----------------------------------------------------------------------------


def open_channels(
    settings: Settings, stack: ExitStack, *, only: str | None = None, share: int = 1
) -> dict[str, Channel]:
    """The channels the settings configure (or just `only`); each is closed when `stack` closes. With
    `share` workers side by side, each one's Telegram channel gets that share of the overall rate."""
    channels: dict[str, Channel] = {}
    if only in (None, "markdown"):
        channels["markdown"] = MarkdownFiles(settings.data_dir)
    if settings.smtp_host and only in (None, "email"):
        email = email_channel(settings)
        stack.callback(email.close)
        channels["email"] = email
    token = settings.telegram_bot_token.get_secret_value()
    if token and only in (None, "telegram"):
        from feedsvc.deliver.telegram import TelegramChannel

        telegram = TelegramChannel(
            token,
            base_url=settings.telegram_api_url,
            chat_interval=settings.telegram_chat_interval,
            global_rate=settings.telegram_global_rate / share,
            max_wait=settings.http_max_wait,
            retries=settings.http_retries,
            jitter=settings.http_jitter,
        )
        stack.callback(telegram.close)
        channels["telegram"] = telegram
    return channels


def email_channel(settings: Settings) -> EmailChannel:
    """The SMTP channel the settings describe (it connects when it first sends; the caller closes it)."""
    from feedsvc.deliver.email import EmailChannel

    return EmailChannel(
        settings.smtp_host,
        settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        timeout=settings.smtp_timeout,
        sender=settings.mail_from,
        base_url=settings.base_url,
        secret=signing_secret(settings, "email delivery"),
    )


def render_for(channel: str, digest: Digest, settings: Settings) -> Rendered:
    if not digest.cards:  # only a reader who asked for it is sent a digest without picks: one line
        from feedsvc.render.quiet import render_quiet

        return render_quiet(channel, digest)
    if channel == "email":
        from feedsvc.render.email import render_email

        return render_email(digest, settings.base_url)
    if channel == "telegram":
        from feedsvc.render.telegram import render_telegram

        return render_telegram(digest, settings.base_url)
    return render_markdown(digest)


# --- publish -------------------------------------------------------------------------------------------


@dataclass
class Published:
    enqueued: int = 0
    sent: int = 0
    retrying: int = 0
    gave_up: int = 0
    gone: int = 0
    confirmations: int = 0  # confirmation mails of email subscriptions sent
    waiting: dict[str, int] = field(default_factory=dict)  # channel -> deliveries with no configured channel
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.sent} sent, {self.retrying} to retry, {self.gave_up} given up, "
            f"{self.gone} recipients gone ({self.enqueued} new deliveries)"
        )
        if self.confirmations:
            text += f"; {self.confirmations} confirmation mails sent"
        for channel, n in sorted(self.waiting.items()):
            text += f"; {n} {channel} deliveries wait: {channel} is not configured"
        return text


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def workers_for(settings: Settings, channel: str) -> int:
    """How many workers send on `channel` side by side in one publish run."""
    if channel == "email":
        return max(1, settings.smtp_connections)
    if channel == "telegram":  # each worker paces one chat at a time at 1 message per chat_interval
        per_worker = 1 / settings.telegram_chat_interval if settings.telegram_chat_interval > 0 else 1e9
        return max(1, min(64, math.ceil(settings.telegram_global_rate / per_worker)))
    return 1


def configured_channels(settings: Settings) -> list[str]:
    """The channels `open_channels` would open."""
    names = ["markdown"]
    if settings.smtp_host:
        names.append("email")
    if settings.telegram_bot_token.get_secret_value():
        names.append("telegram")
    return names


def publish(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    now: datetime | None = None,
    worker: str | None = None,
    profile: str | None = None,
    channels: Mapping[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
    on_sent: Callable[[Published], None] | None = None,
) -> Published:
    """Deliver every due delivery once; see the module docstring. `now` freezes the clock (tests).

    Without `channels`, each configured channel gets its crew of workers side by side (`workers_for`):
    email one per SMTP connection, Telegram enough that its 1 message/s per chat never idles the
    overall rate, which they split. They share the work through the outbox's claims exactly as separate
    processes would. With `channels`, one worker uses those, and confirmation mails wait for a run
    without them.
    """
    tick = clock or ((lambda: now) if now is not None else (lambda: datetime.now(UTC)))
    worker = worker or default_worker_id()
    report = Published()
    lock = threading.Lock()
    names = list(channels) if channels is not None else configured_channels(settings)
    with session_scope(factory) as session:
        report.enqueued = delivery.enqueue_latest(session, tick(), profile)
        for channel, n in delivery.pending_by_channel(session).items():
            if channel not in names:
                report.waiting[channel] = n
    if channels is None and "email" in names:
        with closing(email_channel(settings)) as email:
            report.confirmations = send_confirmations(settings, factory, email, tick, f"{worker}/confirm")
    work = _Work(settings, factory, tick, profile, report, lock, on_sent)
    if channels is not None:
        work.run(worker, channels)
    else:
        crews = {name: workers_for(settings, name) for name in names}

        def run(name: str, i: int) -> None:
            with ExitStack() as stack:
                work.run(f"{worker}/{name}{i}", open_channels(settings, stack, only=name, share=crews[name]))

        jobs = [(name, i) for name, n in crews.items() for i in range(n)]
        with ThreadPoolExecutor(len(jobs), thread_name_prefix="publish") as pool:
            list(pool.map(lambda job: run(*job), jobs))  # re-raises a worker's error (a bad setting, say)
    for notice in report.notices:
        log.warning("%s", notice)
    return report


@dataclass
class _Work:
    """One publish run's shared state; `run` is one worker's loop: claim a few, deliver them, repeat."""

    settings: Settings
    factory: sessionmaker[Session]
    tick: Callable[[], datetime]
    profile: str | None
    report: Published
    lock: threading.Lock
    on_sent: Callable[[Published], None] | None

    def run(self, worker: str, channels: Mapping[str, Channel]) -> None:
        lease = timedelta(seconds=self.settings.delivery_lease_seconds)
        rendered: dict[tuple[int, str], Rendered] = {}
        while True:
            with session_scope(self.factory) as session:
                claimed = delivery.claim_due(
                    session,
                    self.tick(),
                    worker=worker,
                    lease=lease,
                    limit=CLAIM,
                    channels=list(channels),
                    profile=self.profile,
                )
            if not claimed:  # what failed in this run is due later, so the loop ends
                return
            for job in claimed:
                outcome, notice = _deliver_one(
                    self.settings, self.factory, job, channels, rendered, self.tick
                )
                with self.lock:
                    setattr(self.report, outcome, getattr(self.report, outcome) + 1)
                    if notice:
                        self.report.notices.append(notice)
                    if self.on_sent is not None:
                        self.on_sent(self.report)


def _deliver_one(
    settings: Settings,
    factory: sessionmaker[Session],
    job: delivery.Claimed,
    channels: Mapping[str, Channel],
    rendered: dict[tuple[int, str], Rendered],
    tick: Callable[[], datetime],
) -> tuple[str, str]:
    """Send one claimed delivery and record what happened; returns (report field, notice)."""
    retry = timedelta(seconds=settings.delivery_retry_seconds)
    channel = channels[job.recipient.channel]
    key = (job.digest_id, job.recipient.channel)
    if key not in rendered:
        with session_scope(factory) as session:
            row = session.get(DigestRow, job.digest_id)
            digest = queries.load_digest(session, row)
        rendered[key] = render_for(job.recipient.channel, digest, settings)

    def progress(parts: int, external_id: str) -> None:
        with session_scope(factory) as session:
            delivery.record_progress(session, job.id, parts, external_id)

    where = f"{job.recipient.channel} {job.recipient.address}"
    try:
        external_id = channel.send(rendered[key], job.recipient, start=job.progress, on_part=progress)
    except DeliveryError as e:
        with session_scope(factory) as session:
            if e.gone:
                delivery.mark_failed(
                    session, job.id, f"recipient gone: {e}", tick(), max_attempts=0, retry=retry
                )
                delivery.deactivate_recipient(session, job.recipient.id, str(e), tick())
                return "gone", f"{where}: deactivated ({e})"
            status = delivery.mark_failed(
                session,
                job.id,
                str(e),
                tick(),
                max_attempts=settings.delivery_max_attempts,
                retry=retry,
                retry_after=e.retry_after,
                progress=e.sent_parts or None,
            )
        if status == "gave_up":
            return "gave_up", f"{where}: given up after {settings.delivery_max_attempts} attempts: {e}"
        return "retrying", ""
    except Exception as e:  # a bug in one channel must not stop the others: record it, retry later
        log.exception("delivery %s failed unexpectedly", job.id)
        with session_scope(factory) as session:
            delivery.mark_failed(
                session,
                job.id,
                f"unexpected {type(e).__name__}: {e}",
                tick(),
                max_attempts=settings.delivery_max_attempts,
                retry=retry,
            )
        return "retrying", ""
    with session_scope(factory) as session:
        delivery.mark_sent(session, job.id, external_id, tick())
    return "sent", ""


# --- confirmation mails of email subscriptions ---------------------------------------------------------


def send_confirmations(
    settings: Settings,
    factory: sessionmaker[Session],
    email: EmailChannel,
    tick: Callable[[], datetime],
    worker: str,
) -> int:
    """Send the due confirmation mails through `email`, retried and given up as deliveries are (a notice
    is logged for each one given up); a mail whose subscription was confirmed or expired meanwhile is
    cancelled. Finished requests older than KEEP_CONFIRMATIONS are forgotten first. Returns how many
    were sent."""
    secret = signing_secret(settings, "email subscription")
    lease = timedelta(seconds=settings.delivery_lease_seconds)
    with session_scope(factory) as session:
        delivery.prune_confirmations(session, tick() - KEEP_CONFIRMATIONS)
    sent = 0
    while True:
        with session_scope(factory) as session:
            claimed = delivery.claim_confirmations(session, tick(), worker=worker, lease=lease, limit=CLAIM)
        if not claimed:  # what failed is due later, so the loop ends
            return sent
        for job in claimed:
            sent += _confirm_one(settings, factory, email, job, secret, tick)


def _confirm_one(
    settings: Settings,
    factory: sessionmaker[Session],
    email: EmailChannel,
    job: delivery.ConfirmationJob,
    secret: str,
    tick: Callable[[], datetime],
) -> bool:
    """Send one claimed confirmation mail and record what happened; whether it was sent."""
    from feedsvc.deliver.email import confirmation_message

    if not job.live:
        with session_scope(factory) as session:
            delivery.mark_confirmation(session, job.id, "cancelled", tick(), "confirmed or expired first")
        return False
    code = signing.confirmation_code(secret, job.subscription_id)
    url = signing.link(settings.base_url, secret, "confirm", {"c": code})
    retry = timedelta(seconds=settings.delivery_retry_seconds)
    try:
        message = confirmation_message(job.address, job.profile, url, sender=settings.mail_from, now=tick())
        email.send_message(message)
    except Exception as e:  # DeliveryError, or a bug: recorded and retried, the run goes on
        if not isinstance(e, DeliveryError):
            log.exception("confirmation mail %s failed unexpectedly", job.id)
        gone = isinstance(e, DeliveryError) and e.gone
        with session_scope(factory) as session:
            status = delivery.mark_confirmation_failed(
                session,
                job.id,
                str(e),
                tick(),
                max_attempts=0 if gone else settings.delivery_max_attempts,
                retry=retry,
                retry_after=e.retry_after if isinstance(e, DeliveryError) else None,
            )
        if status == "gave_up":
            log.warning("confirmation mail to %s: given up: %s", job.address, e)
        return False
    with session_scope(factory) as session:
        delivery.mark_confirmation(session, job.id, "sent", tick())
    return True
