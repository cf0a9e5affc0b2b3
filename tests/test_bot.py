"""The Telegram bot and the Telegram channel end to end, through python-telegram-bot's real request layer
and long polling against the loopback Bot API test double (tests/telegram_double.py), on both databases:

subscribe with a one-time code, receive the demo bundle exactly once through `publish`, tap 👎 (stored,
answered, the buttons show the vote, and the next ranking changes), /why, /profile, /digest, the equation
image, a forged tap from another chat, /stop; and the outbox's handling of 429 and a blocked bot.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from demo_day import demo_day
from telegram_double import TelegramDouble

from feedsvc.bot import build_application
from feedsvc.deliver.telegram import callback_data
from feedsvc.pipeline.digest import build_digests
from feedsvc.pipeline.publish import publish
from feedsvc.pipeline.subscribe import new_telegram_code
from feedsvc.render.telegram import plain_emphasis
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
CHAT = 4242


@pytest.fixture
def tg() -> Iterator[TelegramDouble]:
    with TelegramDouble(poll_wait=0.05) as double:
        yield double


@pytest.fixture
def world(tmp_path, factory, tg):
    """The demo day's digest built, and settings pointing the bot and the channel at the double."""
    with demo_day(
        factory,
        tmp_path / "data",
        telegram_bot_token=tg.token,
        telegram_api_url=tg.api_url,
        telegram_chat_interval=0.0,
        base_url="https://digest.example.org",
    ) as day:
        yield day.settings, day.profile, day.digest


def converse(
    settings, factory, tg: TelegramDouble, steps: Callable[[], None], done: Callable[[], bool]
) -> None:
    """Run the bot with real long polling while `steps` enqueues updates, until `done()` (or 20 s)."""

    async def main() -> None:
        app = build_application(settings, factory, clock=lambda: NOW)
        await app.initialize()
        if app.post_init:  # what run_polling() does after initialize()
            await app.post_init(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=0)
        try:
            steps()
            deadline = time.monotonic() + 20
            while not done() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    asyncio.run(main())


def answered_more(tg: TelegramDouble) -> Callable[[], bool]:
    """True once the bot has answered one more button tap than now."""
    n = len(tg.answered)
    return lambda: len(tg.answered) > n


def replies(tg: TelegramDouble, chat: int = CHAT) -> list[str]:
    return [c.params["text"] for c in tg.messages(chat)]


def test_subscribe_receive_once_vote_and_the_vote_changes_the_next_ranking(world, factory, tg) -> None:
    settings, profile, digest = world
    code = new_telegram_code(factory, profile.name, NOW)
    converse(settings, factory, tg, lambda: tg.enqueue_message(CHAT, f"/start {code}"), lambda: replies(tg))
    assert "Subscribed to <b>seed-reader</b>" in replies(tg)[0]
    assert {c["command"] for c in tg.commands} >= {"start", "stop", "digest", "profile", "why"}

    first = publish(settings, factory, now=NOW)
    assert (first.enqueued, first.sent) == (1, 1)
    parts = replies(tg)[1:]
    assert len(parts) >= 2 + len(digest.cards)  # header, the cards, the source note
    for card in digest.cards:
        assert any(card.title.split(":")[0][:30] in p for p in parts)
    keyboards = [c.params.get("reply_markup") for c in tg.messages(CHAT)[1:] if c.params.get("reply_markup")]
    assert len(keyboards) == len(digest.cards)
    again = publish(settings, factory, now=NOW + timedelta(hours=1))
    assert again.sent == 0 and len(replies(tg)) == 1 + len(parts)  # exactly once

    # 👎 on the first card: stored, answered, buttons show the vote
    with session_scope(factory) as session:
        [recipient] = delivery.recipients_at(session, "telegram", str(CHAT))
    target = digest.cards[0]
    [card_message] = [
        c
        for c in tg.messages(CHAT)
        if c.params.get("reply_markup") and callback_data(recipient.id, "down", target.key) in str(c.params)
    ]
    message_id = card_message.answer["result"]["message_id"]
    next_day = DAY + timedelta(days=1)
    [before] = build_digests(settings, factory, [profile], day=next_day, now=NOW, dry_run=True)
    for card in digest.cards:  # the reader turns down every card of the first card's thread
        if card.thread != target.thread:
            continue
        converse(
            settings,
            factory,
            tg,
            lambda card=card: tg.enqueue_callback(CHAT, callback_data(recipient.id, "down", card.key)),
            answered_more(tg),
        )
    assert tg.answered[-1]["text"].startswith("Noted: 👎")
    with session_scope(factory) as session:
        votes = {f.candidate.key: f.vote for f in queries.feedback_for(session, profile.name)}
    assert votes[target.key] == "down"
    converse(
        settings,
        factory,
        tg,
        lambda: tg.enqueue_callback(
            CHAT, callback_data(recipient.id, "down", target.key), message_id=message_id
        ),
        answered_more(tg),
    )
    buttons = [
        b["text"] for row in tg.message(CHAT, message_id)["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert "👎 ✓" in buttons
    [after] = build_digests(settings, factory, [profile], day=next_day, now=NOW, dry_run=True)
    assert [c.key for c in before.digest.cards] != [c.key for c in after.digest.cards]


def test_commands_equation_image_forged_taps_and_stop(world, factory, tg) -> None:
    settings, profile, digest = world
    code = new_telegram_code(factory, profile.name, NOW)
    with session_scope(factory) as session:
        recipient = delivery.redeem_subscription(session, "telegram", code, NOW, address=str(CHAT)).recipient

    def steps() -> None:
        tg.enqueue_message(CHAT, "/why 1")
        tg.enqueue_message(CHAT, "/why 99")
        tg.enqueue_message(CHAT, "/profile")
        tg.enqueue_message(CHAT, "/digest")

    converse(settings, factory, tg, steps, lambda: len(replies(tg)) >= 3 + 2 + len(digest.cards))
    texts = replies(tg)
    first = digest.cards[0]
    assert texts[0].startswith("<b>1. ") and first.thread in texts[0]
    # /why holds the ranker's numbers; the cards the bundle sends hold the sentence only
    assert f"score {first.score:.3f}" in texts[0] and first.evidence
    assert all(html.escape(plain_emphasis(e)) in texts[0] for e in first.evidence)
    assert html.escape(plain_emphasis(first.why)) in texts[0]
    sent = "\n".join(texts[3:])
    assert not any(html.escape(plain_emphasis(e)) in sent for c in digest.cards for e in c.evidence)
    assert "blend of" not in sent and "score 0." not in sent
    assert "with N from 1 to 3" in texts[1]
    assert "RL theory" in texts[2] and "Your votes so far" in texts[2]
    assert any("Daily Feed" in t or "paper pick" in t for t in texts[3:])

    with_math = next((c for c in digest.cards if any(q.is_math for q in c.punch)), None)
    if with_math is not None:
        converse(
            settings,
            factory,
            tg,
            lambda: tg.enqueue_callback(CHAT, callback_data(recipient.id, "equation", with_math.key)),
            lambda: tg.calls_to("sendPhoto"),
        )
        [photo] = tg.calls_to("sendPhoto")
        assert photo.ok and photo.files["photo"][:8] == b"\x89PNG\r\n\x1a\n"

    # a tap forged by another chat with this chat's recipient id records nothing
    converse(
        settings,
        factory,
        tg,
        lambda: tg.enqueue_callback(999, callback_data(recipient.id, "up", first.key), message_id=1),
        answered_more(tg),
    )
    assert "not valid for this chat" in tg.answered[-1]["text"]
    with session_scope(factory) as session:
        assert queries.feedback_for(session, profile.name) == []

    n = len(replies(tg))
    converse(settings, factory, tg, lambda: tg.enqueue_message(CHAT, "/stop"), lambda: len(replies(tg)) > n)
    assert "Unsubscribed from seed-reader" in replies(tg)[-1]
    with session_scope(factory) as session:
        assert delivery.recipients_at(session, "telegram", str(CHAT)) == []


def test_the_outbox_waits_out_429_and_deactivates_a_chat_that_blocked_the_bot(world, factory, tg) -> None:
    settings, profile, digest = world
    settings = settings.model_copy(update={"http_max_wait": 0.0})  # a 429 is handed back to the outbox
    for chat in (1001, 1002):
        code = new_telegram_code(factory, profile.name, NOW)
        with session_scope(factory) as session:
            delivery.redeem_subscription(session, "telegram", code, NOW, address=str(chat))
    tg.fail_next(1, "flood", chat_id=1001, retry_after=120)
    tg.block(1002)
    report = publish(settings, factory, now=NOW)
    assert (report.sent, report.retrying, report.gone) == (0, 1, 1)
    with session_scope(factory) as session:
        [flooded] = delivery.deliveries(session, status="failed")
        assert flooded.due >= NOW + timedelta(seconds=120)
        assert [r.address for r in delivery.active_recipients(session)] == ["1001"]
    later = publish(settings, factory, now=NOW + timedelta(seconds=120))
    assert later.sent == 1
    assert len(tg.messages(1001)) == 2 + len(digest.cards)  # each part once, after the wait
