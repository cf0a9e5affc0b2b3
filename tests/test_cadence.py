"""Issue 17 part 2: each recipient's own cadence (daily, or weekly on a day; a send time in their zone),
the weekly bundle built from the week's best without repeating what the reader had, and a quiet day
sending nothing or the one line the reader asked for. Pure due times here; the rest on both databases
with the recorded demo day, the Markdown channel writing real files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from demo_day import demo_day
from sqlalchemy import select

from feedsvc.cadence import describe, last_due, next_due, parse_cadence
from feedsvc.deliver.files import MarkdownFiles
from feedsvc.models import Cadence
from feedsvc.pipeline.cadence import send_due
from feedsvc.pipeline.publish import publish
from feedsvc.store import cadence as store
from feedsvc.store import queries
from feedsvc.store.db import session_scope
from feedsvc.store.tables import DeliveryRow, ProfileRow, RecipientRow

BERLIN = ZoneInfo("Europe/Berlin")


# --- due times -------------------------------------------------------------------------------------------


def test_words_make_a_cadence_and_bad_words_say_what_is_wrong() -> None:
    c = parse_cadence(["weekly", "fri", "08:15", "Asia/Tokyo", "note"], Cadence())
    assert c == Cadence("weekly", 4, "08:15", "Asia/Tokyo", True)
    assert parse_cadence(["daily", "no-note"], c) == Cadence("daily", 4, "08:15", "Asia/Tokyo", False)
    assert parse_cadence(["sunday"], Cadence()).every == "weekly"
    assert describe(c) == "weekly on Friday at 08:15 (Asia/Tokyo); a quiet week sends one line saying so"
    for bad, said in [("25:00", "not understood"), ("Mars/Base", "IANA"), ("fortnightly", "not understood")]:
        with pytest.raises(ValueError, match=said):
            parse_cadence([bad], Cadence())


def test_daily_and_weekly_due_times_follow_the_zone_across_summer_time() -> None:
    daily = Cadence("daily", 0, "07:30", "Europe/Berlin")
    now = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 CEST, the day the clocks went forward
    assert last_due(daily, now) == datetime(2026, 3, 28, 7, 30, tzinfo=BERLIN)
    assert last_due(daily, now).astimezone(UTC).hour == 6  # 07:30 CET
    assert next_due(daily, now).astimezone(UTC) == datetime(2026, 3, 29, 5, 30, tzinfo=UTC)  # 07:30 CEST
    gap = Cadence("daily", 0, "02:30", "Europe/Berlin")  # a time the spring change skips: an hour later
    assert next_due(gap, datetime(2026, 3, 29, 0, 0, tzinfo=UTC)).astimezone(UTC).hour == 1
    weekly = Cadence("weekly", 0, "09:00", "America/New_York")  # Mondays
    due = last_due(weekly, datetime(2026, 6, 4, 12, tzinfo=UTC))  # a Thursday
    assert due.weekday() == 0 and due.astimezone(UTC) == datetime(2026, 6, 1, 13, tzinfo=UTC)


# --- sending each at their time, on both databases -------------------------------------------------------


def _recipient(factory, profile: str, address: Path) -> int:
    with session_scope(factory) as s:
        pid = s.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))
        row = RecipientRow(profile_id=pid, channel="markdown", address=str(address), created=NOW0)
        s.add(row)
        s.commit()
        return row.id


def _set(factory, rid: int, cadence: Cadence, at: datetime) -> None:
    with session_scope(factory) as s:
        store.set_cadence(s, rid, cadence, at)
        s.commit()


NOW0 = datetime(2024, 11, 27, 12, tzinfo=UTC)
DAY = date(2024, 11, 28)  # the demo day, a Thursday


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.md"))


def test_each_recipient_gets_their_bundle_at_their_time(tmp_path, factory) -> None:
    with demo_day(factory, tmp_path / "data") as day:
        settings, profile = day.settings, day.profile
        out = tmp_path / "out"
        weekly = _recipient(factory, profile.name, out / "weekly")
        channels = {"markdown": MarkdownFiles()}
        # the weekly reader was a daily one until now: they already had the demo day's digest
        with session_scope(factory) as s:
            assert queries.find_digest(s, profile.name, DAY) is not None
        publish(settings, factory, now=datetime(2024, 11, 28, 7, tzinfo=UTC), channels=channels)
        assert _files(out) == ["2024-11-28.md"]
        daily = _recipient(factory, profile.name, out / "daily")
        _set(
            factory,
            daily,
            Cadence("daily", 0, "19:00", "Europe/London"),
            datetime(2024, 11, 28, 8, tzinfo=UTC),
        )
        _set(
            factory,
            weekly,
            Cadence("weekly", 3, "19:00", "Europe/Berlin"),
            datetime(2024, 11, 28, 8, tzinfo=UTC),
        )
        assert send_due(
            settings, factory, [profile], datetime(2024, 11, 28, 17, 30, tzinfo=UTC)
        ).summary() == ("nothing due")

        at_six = datetime(2024, 11, 28, 18, 5, tzinfo=UTC)  # 19:05 in Berlin: the weekly reader's time
        run = send_due(settings, factory, [profile], at_six)
        assert run.built == ["seed-reader week 2024-11-28"] and run.enqueued == 1
        publish(settings, factory, now=at_six, channels=channels)
        week_file = out / "weekly" / profile.name / "2024-11-28.week.md"
        assert week_file.exists() and "Weekly Feed - week to 2024-11-28" in week_file.read_text()
        with session_scope(factory) as s:
            weekly_digest = queries.load_digest(s, queries.find_digest(s, profile.name, DAY, "week"))
        daily_keys = {c.key for c in day.digest.cards}
        week_keys = {c.key for c in weekly_digest.cards}
        assert week_keys and not week_keys & daily_keys  # never twice: the reader had the daily picks
        assert (
            send_due(settings, factory, [profile], at_six + timedelta(minutes=1)).summary() == "nothing due"
        )

        # the daily reader: 19:00 in London; the profile's digest of the day, at their time, once
        at_seven = datetime(2024, 11, 28, 19, 1, tzinfo=UTC)
        run = send_due(settings, factory, [profile], at_seven)
        assert run.enqueued == 1 and run.built == ["seed-reader day 2024-11-28"]
        with session_scope(factory) as s:
            assert store.has_bundle(s, daily, "day", DAY)


def test_a_quiet_period_sends_nothing_or_the_one_line_asked_for(tmp_path, factory) -> None:
    with demo_day(factory, tmp_path / "data") as day:
        settings, profile = day.settings, day.profile
        out = tmp_path / "out"
        quiet = _recipient(factory, profile.name, out / "quiet")
        note = _recipient(factory, profile.name, out / "note")
        set_at = datetime(2025, 1, 6, tzinfo=UTC)
        _set(factory, quiet, Cadence("weekly", 3, "09:00", "Europe/Berlin"), set_at)
        _set(factory, note, Cadence("weekly", 3, "09:00", "Europe/Berlin", empty_note=True), set_at)
        later = datetime(2025, 1, 9, 9, tzinfo=UTC)  # six weeks after the recorded day: nothing new
        run = send_due(settings, factory, [profile], later)
        assert (run.enqueued, run.quiet) == (1, 1)
        publish(settings, factory, now=later, channels={"markdown": MarkdownFiles()})
        assert _files(out / "quiet") == []
        [sent] = (out / "note").rglob("*.md")
        assert sent.name == "2025-01-09.week.md"
        assert "Nothing cleared the bar this week for seed-reader." in sent.read_text()
        with session_scope(factory) as s:
            statuses = dict(s.execute(select(DeliveryRow.recipient_id, DeliveryRow.status)).all())
        assert statuses == {quiet: "quiet", note: "sent"}
        assert send_due(settings, factory, [profile], later + timedelta(hours=1)).summary() == "nothing due"


# --- the migration keeps what was there -------------------------------------------------------------------


def test_migration_0009_keeps_digests_entries_deliveries_and_search(db_url) -> None:
    from sqlalchemy import text

    from feedsvc.store import archive
    from feedsvc.store.db import make_engine, session_factory, upgrade

    eng = make_engine(db_url)
    try:
        upgrade(eng, "0008")
        with eng.begin() as c:
            c.execute(
                text("INSERT INTO profiles (id, name, config, updated) VALUES (1, 'p', '{}', :t)"),
                {"t": NOW0},
            )
            c.execute(
                text(
                    "INSERT INTO items (id, key, kind, title, text, authors, categories, url, meta,"
                    " first_seen, last_seen) VALUES (1, 'arxiv:1', 'paper', 'Quokka dynamics', '',"
                    " '[]', '[]', 'u', '{}', :t, :t)"
                ),
                {"t": NOW0},
            )
            c.execute(
                text(
                    "INSERT INTO digests (id, profile_id, day, title, summary, markdown, data, created)"
                    " VALUES (1, 1, '2024-11-28', 'Daily', '', '', '{}', :t)"
                ),
                {"t": NOW0},
            )
            card = '{"title": "Quokka dynamics", "intuition": "", "why": ""}'
            c.execute(
                text(
                    "INSERT INTO digest_entries (id, digest_id, item_id, position, thread, score, card)"
                    " VALUES (1, 1, 1, 1, 't', 0.5, :card)"
                ),
                {"card": card},
            )
            c.execute(
                text(
                    "INSERT INTO recipients (id, profile_id, channel, address, active, created, note)"
                    " VALUES (1, 1, 'markdown', 'd', :yes, :t, '')"
                ),
                {"t": NOW0, "yes": True},
            )
            c.execute(
                text(
                    "INSERT INTO deliveries (id, digest_id, recipient_id, channel, status, attempts, created,"
                    " due, progress) VALUES (1, 1, 1, 'markdown', 'sent', 1, :t, :t, 0)"
                ),
                {"t": NOW0},
            )
        upgrade(eng)
        with eng.connect() as c:
            assert c.execute(text("SELECT span FROM digests")).scalar_one() == "day"
            assert c.execute(text("SELECT count(*) FROM digest_entries")).scalar_one() == 1
            assert c.execute(text("SELECT status FROM deliveries")).scalar_one() == "sent"
        with session_scope(session_factory(eng)) as s:
            assert archive.search(s, "quokka").total >= 1
            s.execute(  # a weekly bundle of the same day now fits beside the daily one
                text(
                    "INSERT INTO digests (id, profile_id, day, span, title, summary, markdown, data, created)"
                    " VALUES (2, 1, '2024-11-28', 'week', 'Weekly', '', '', '{}', :t)"
                ),
                {"t": NOW0},
            )
            s.commit()
    finally:
        eng.dispose()


# --- the command line -------------------------------------------------------------------------------------


def test_the_cli_shows_and_changes_a_recipients_cadence(tmp_path, db_url) -> None:
    from test_cli import feedsvc

    env = {"FEEDSVC_DATA_DIR": str(tmp_path), "FEEDSVC_DATABASE_URL": db_url}
    assert feedsvc("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    r = feedsvc("cadence", "--profile", "seed-reader", "--to", "digests", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "daily at 07:30 (Europe/Berlin); a quiet day sends nothing" in r.stdout
    r = feedsvc(
        "cadence", "--profile", "seed-reader", "--to", "digests", "weekly", "fri", "06:45", "note", env=env
    )
    assert r.returncode == 0, r.stderr
    assert "weekly on Friday at 06:45 (Europe/Berlin); a quiet week sends one line saying so" in r.stdout
    assert "next: Fri" in r.stdout
    r = feedsvc("cadence", "--profile", "seed-reader", "--to", "digests", "Asia/Tokyo", env=env)
    assert "weekly on Friday at 06:45 (Asia/Tokyo)" in r.stdout  # a change keeps the rest
    bad = feedsvc("cadence", "--profile", "seed-reader", "--to", "digests", "25:99", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not understood" in bad.stderr
    nobody = feedsvc("cadence", "--profile", "seed-reader", "--to", "nobody@example.org", env=env)
    assert nobody.returncode == 2 and "no active recipient" in nobody.stderr


# --- the scheduler's job ----------------------------------------------------------------------------------


def test_the_scheduler_runs_the_cadence_job_every_minute_and_publishes_what_it_queued(
    tmp_path, db_url, factory
) -> None:
    import dataclasses

    from test_scheduler import Recorder, make_settings

    from feedsvc.scheduler import CADENCE, build_scheduler

    rec = Recorder()
    answers = ["nothing due", "1 deliveries due, 0 quiet; bundles: p week 2024-11-28"]
    fresh: list[datetime] = []

    def cadence(settings, factory, profiles, now, before_build) -> str:
        answer = answers.pop(0)
        if answer != "nothing due":
            before_build()  # what the pipeline does when something is owed: a fresh store first
            fresh.append(now)
        return answer

    jobs = dataclasses.replace(rec.jobs(), cadence=cadence)
    clock = lambda: datetime(2024, 11, 28, 18, 31, tzinfo=UTC)  # noqa: E731
    scheduler = build_scheduler(make_settings(tmp_path, db_url), factory, [], jobs=jobs, clock=clock)
    job = scheduler.get_job(CADENCE)
    assert job.trigger.interval == timedelta(minutes=1)
    assert job.func() == "nothing due" and rec.publishes == []
    assert job.func().endswith("; 0 sent") and rec.publishes == [None] and len(fresh) == 1
    assert rec.collects  # the fetch schedule's latest time had passed with no fetch: fetched first
    assert (CADENCE, "ok: nothing due") in rec.beats
    no_cadence = build_scheduler(make_settings(tmp_path, db_url), factory, [], jobs=rec.jobs(), clock=clock)
    assert no_cadence.get_job(CADENCE) is None
