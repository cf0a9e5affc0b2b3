"""The outbox on both databases: each digest reaches each recipient once, failures are retried with
back-off and given up with a notice, claims are exclusive, a dead worker's lease runs out, and one-time
subscription codes work once. The channel here is the real Markdown files channel; email and Telegram
have their own end-to-end tests."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from demo_day import demo_day

from feedsvc import outbox
from feedsvc.deliver.files import MarkdownFiles
from feedsvc.models import Profile
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)


def with_dirs(profile: Profile, *dirs: Path) -> list[Profile]:
    """The profile once per directory: sync_profiles makes one markdown recipient per distinct dir."""
    return [replace(profile, channels={"markdown": {"dir": str(d)}}) for d in dirs]


@pytest.fixture
def built(tmp_path, factory):
    """The demo day's digest built into the store, with its settings and profile."""
    with demo_day(factory, tmp_path / "data", delivery_retry_seconds=60, delivery_max_attempts=3) as day:
        yield day.settings, day.profile


def add_recipients(factory, profile: Profile, *dirs: Path) -> None:
    with session_scope(factory) as session:
        for p in with_dirs(profile, *dirs):
            queries.sync_profiles(session, [p], NOW)


def test_each_recipient_gets_the_digest_exactly_once(built, factory, tmp_path) -> None:
    settings, profile = built
    a, b = tmp_path / "reader-a", tmp_path / "reader-b"
    add_recipients(factory, profile, a, b)
    channels = {"markdown": MarkdownFiles()}
    first = outbox.publish(settings, factory, now=NOW, channels=channels)
    assert (first.enqueued, first.sent, first.retrying) == (2, 2, 0)
    for d in (a, b):
        text = (d / profile.name / "2024-11-28.md").read_text()
        with session_scope(factory) as session:
            stored = queries.find_digest(session, profile.name, DAY).markdown
        assert text == stored
    again = outbox.publish(settings, factory, now=NOW + timedelta(hours=1), channels=channels)
    assert (again.enqueued, again.sent) == (0, 0)
    with session_scope(factory) as session:
        rows = delivery.deliveries(session)
    assert sorted((r.address, r.status, r.attempts) for r in rows) == [
        (str(a), "sent", 1),
        (str(b), "sent", 1),
    ]


def test_a_failing_recipient_is_retried_with_backoff_then_given_up_and_the_others_still_get_theirs(
    built, factory, tmp_path
) -> None:
    settings, profile = built
    good = tmp_path / "good"
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")  # a real OSError on every attempt
    add_recipients(factory, profile, good, blocked)
    channels = {"markdown": MarkdownFiles()}

    first = outbox.publish(settings, factory, now=NOW, channels=channels)
    assert (first.sent, first.retrying, first.gave_up) == (1, 1, 0)
    with session_scope(factory) as session:
        [failed] = delivery.deliveries(session, status="failed")
    assert failed.address == str(blocked) and "cannot write" in failed.last_error
    assert failed.due == NOW + timedelta(seconds=60)

    early = outbox.publish(settings, factory, now=NOW + timedelta(seconds=30), channels=channels)
    assert (early.sent, early.retrying) == (0, 0)  # not due yet: nothing is tried
    second = outbox.publish(settings, factory, now=NOW + timedelta(seconds=60), channels=channels)
    assert second.retrying == 1
    with session_scope(factory) as session:
        [failed] = delivery.deliveries(session, status="failed")
    assert failed.attempts == 2 and failed.due == NOW + timedelta(seconds=60 + 120)  # doubled

    last = outbox.publish(settings, factory, now=NOW + timedelta(seconds=180), channels=channels)
    assert last.gave_up == 1 and "given up after 3 attempts" in last.notices[0]
    with session_scope(factory) as session:
        [gave_up] = delivery.deliveries(session, status="gave_up")
        assert gave_up.attempts == 3 and gave_up.last_error  # still visible, with its error
        assert delivery.delivery_counts(session) == {"sent": 1, "gave_up": 1}


def test_deliveries_of_an_unconfigured_channel_wait_visibly(built, factory) -> None:
    settings, profile = built
    with session_scope(factory) as session:
        queries.sync_profiles(session, [replace(profile, channels={"email": {"to": "r@example.org"}})], NOW)
    report = outbox.publish(settings, factory, now=NOW, channels={"markdown": MarkdownFiles()})
    assert report.waiting == {"email": 1} and "email is not configured" in report.summary()
    with session_scope(factory) as session:
        [row] = delivery.deliveries(session)
    assert (row.channel, row.status, row.attempts) == ("email", "pending", 0)


def test_claims_are_exclusive_and_a_dead_workers_lease_runs_out(built, factory, tmp_path) -> None:
    _, profile = built
    dirs = [tmp_path / f"r{i}" for i in range(12)]
    add_recipients(factory, profile, *dirs)
    with session_scope(factory) as session:
        assert delivery.enqueue_latest(session, NOW) == 12
    lease = timedelta(minutes=5)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def worker(name: str) -> None:
        barrier.wait()
        ids: list[int] = []
        while True:
            with session_scope(factory) as session:
                claimed = delivery.claim_due(session, NOW, worker=name, lease=lease, limit=2)
            if not claimed:
                break
            ids += [c.id for c in claimed]
        got[name] = ids

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in got.values() for i in ids]
    assert len(every) == 12 and len(set(every)) == 12  # each row claimed by exactly one worker

    # every worker "died" holding its rows: nothing is claimable until the lease runs out
    with session_scope(factory) as session:
        assert delivery.claim_due(session, NOW + lease - timedelta(seconds=1), worker="w9", lease=lease) == []
        again = delivery.claim_due(session, NOW + lease, worker="w9", lease=lease, limit=50)
    assert sorted(c.id for c in again) == sorted(every)


def test_a_new_subscriber_gets_the_latest_digest_once_and_an_unsubscribed_one_nothing(
    built, factory, tmp_path
) -> None:
    settings, profile = built
    add_recipients(factory, profile, tmp_path / "early")
    channels = {"markdown": MarkdownFiles()}
    assert outbox.publish(settings, factory, now=NOW, channels=channels).sent == 1
    add_recipients(factory, profile, tmp_path / "late", tmp_path / "leaving")
    with session_scope(factory) as session:
        [leaving] = [r for r in delivery.active_recipients(session) if r.address.endswith("leaving")]
        assert delivery.deactivate_recipient(session, leaving.id, "unsubscribed by link", NOW) is True
        assert delivery.deactivate_recipient(session, leaving.id, "unsubscribed by link", NOW) is False
    report = outbox.publish(settings, factory, now=NOW, channels=channels)
    assert (report.enqueued, report.sent) == (1, 1)
    assert (tmp_path / "late" / profile.name / "2024-11-28.md").exists()
    assert not (tmp_path / "leaving").exists()


def test_one_time_codes_work_once_and_expire(built, factory) -> None:
    _, profile = built
    code = outbox.new_telegram_code(factory, profile.name, NOW)
    with session_scope(factory) as session:
        with pytest.raises(LookupError, match="not known"):
            delivery.redeem_subscription(session, "telegram", code + "x", NOW, address="42")
        redeemed = delivery.redeem_subscription(session, "telegram", code, NOW, address="42")
        assert (redeemed.recipient.address, redeemed.recipient.profile, redeemed.new) == (
            "42",
            profile.name,
            True,
        )
        with pytest.raises(LookupError, match="already used"):
            delivery.redeem_subscription(session, "telegram", code, NOW, address="43")
    late = outbox.new_telegram_code(factory, profile.name, NOW)
    with session_scope(factory) as session:
        with pytest.raises(LookupError, match="expired"):
            delivery.redeem_subscription(session, "telegram", late, NOW + timedelta(hours=25), address="42")
        # the stored row holds a hash, never the code
        assert code not in str([r for r in session.execute(delivery.select(delivery.SubscriptionRow)).all()])


def _race(factory, step) -> list[BaseException]:
    """Run `step(session)` in two transactions that overlap: the second starts while the first has written
    and not yet committed (as two `feedsvc publish` processes starting together do). Returns the errors."""
    errors: list[BaseException] = []
    first = factory()
    step(first)
    first.flush()

    def second() -> None:
        try:
            with session_scope(factory) as session:
                step(session)
        except BaseException as e:  # the test reports it
            errors.append(e)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)  # the second writer is now waiting on the first (PostgreSQL's index, SQLite's lock)
    first.commit()
    first.close()
    thread.join(30)
    return errors


def test_two_publishers_enqueueing_at_once_neither_crashes_and_each_reader_gets_one(built, factory, tmp_path):
    _, profile = built
    add_recipients(factory, profile, tmp_path / "a", tmp_path / "b")
    assert _race(factory, lambda s: delivery.enqueue_latest(s, NOW)) == []
    with session_scope(factory) as session:
        rows = delivery.deliveries(session)
    assert sorted(r.address for r in rows) == sorted(str(tmp_path / d) for d in ("a", "b"))


def test_two_publishers_syncing_new_recipients_at_once_neither_crashes(built, factory, tmp_path):
    _, profile = built
    profiles = with_dirs(replace(profile, name="newcomer"), tmp_path / "new-reader")  # a new profile row too
    assert _race(factory, lambda s: queries.sync_profiles(s, profiles, NOW)) == []
    with session_scope(factory) as session:
        assert [r.address for r in delivery.active_recipients(session)] == [str(tmp_path / "new-reader")]
