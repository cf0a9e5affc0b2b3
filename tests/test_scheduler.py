"""The scheduler with a controllable clock: send times in the profile's zone across DST changes, a machine
asleep through three send times (once on waking), a miss beyond the grace (skipped, logged), the
single-runner lock held by another process (SQLite file lock, PostgreSQL advisory lock) and a graceful
stop that finishes the running job.

The clock: APScheduler 3 reads `datetime.now` in two modules (the scheduler's loop and the executor's
misfire check) and has no clock to inject, so `clock` below replaces the `datetime` those two modules
see with one whose `now()` reads a `Clock` the test moves; the jobs get the same `Clock` through
`build_scheduler(clock=...)`. Everything else runs for real: the scheduler thread, its thread pool, the
locks, subprocesses, SQLite and PostgreSQL. The work itself (collect, build, publish) is counted by a
`Recorder`, so the tests see exactly how often and with what each job ran.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_SHUTDOWN,
)
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, text

from feedsvc.config import Settings
from feedsvc.models import ConfigError, Profile, Thread
from feedsvc.scheduler import (
    ALIVE,
    FETCH,
    PUBLISH,
    DailyTrigger,
    Jobs,
    build_scheduler,
    default_jobs,
    digest_job_id,
    run_forever,
    store_heartbeat,
)
from feedsvc.store.db import make_engine, session_factory
from feedsvc.store.locks import job_lock, lock_path

BERLIN = ZoneInfo("Europe/Berlin")
REPO = Path(__file__).parent.parent
WAIT = 30.0  # the longest any test waits for a thread or a process (never reached when things work)


def profile(name: str = "alice", tz: str = "Europe/Berlin", send_at: str = "07:30") -> Profile:
    return Profile(name=name, threads=(Thread(name="diffusion"),), timezone=tz, send_at=send_at)


def make_settings(tmp_path: Path, url: str | None = None, **values: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        database_url=url or f"sqlite:///{tmp_path / 'feedsvc.db'}",
        **values,
    )


class Clock:
    """The time the jobs (and, through the `clock` fixture, APScheduler) see; moved by the test."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    the_clock = Clock(datetime(2024, 3, 28, 8, 0, tzinfo=BERLIN))

    class ClockedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return the_clock().astimezone(tz or UTC)

    for module in (apscheduler.schedulers.base, apscheduler.executors.base):
        monkeypatch.setattr(module, "datetime", ClockedDatetime)
    return the_clock


class Recorder:
    """Jobs that record their calls (in order) instead of running the pipeline."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.collects: list[datetime] = []
        self.builds: list[tuple[str, date, datetime]] = []
        self.publishes: list[str | None] = []
        self.beats: list[tuple[str, str]] = []
        self.on_publish: Callable[[], None] | None = None
        self.fail_collect = False
        self._lock = threading.Lock()

    def collect(self, settings: Settings, factory: Any, profiles: Sequence[Profile], now: datetime) -> str:
        if self.fail_collect:
            raise RuntimeError("the sources are down")
        with self._lock:
            self.collects.append(now)
            self.log.append("collect")
        return f"{len(profiles)} profiles"

    def build(self, settings: Settings, factory: Any, p: Profile, day: date, now: datetime) -> str:
        with self._lock:
            self.builds.append((p.name, day, now))
            self.log.append(f"build {p.name} {day}")
        return f"digest {day}"

    def publish(
        self, settings: Settings, factory: Any, name: str | None, worker: str | None, clock: Callable
    ) -> str:
        if self.on_publish is not None:
            self.on_publish()
        with self._lock:
            self.publishes.append(name)
            self.log.append(f"publish {name or 'all'}")
        return "0 sent"

    def heartbeat(self, factory: Any, name: str, now: datetime, detail: str) -> None:
        with self._lock:
            self.beats.append((name, detail))

    def jobs(self) -> Jobs:
        return Jobs(self.collect, self.build, self.publish, self.heartbeat)


class Events:
    """The scheduler's job events, waited for by job id."""

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        mask = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        scheduler.add_listener(self._queue.put, mask)

    def wait_for(self, *job_ids: str) -> dict[str, int]:
        got: dict[str, int] = {}
        while not set(job_ids) <= set(got):
            event = self._queue.get(timeout=WAIT)
            got[event.job_id] = event.code
        return {job_id: got[job_id] for job_id in job_ids}


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Iterator[Any]:
    engine = make_engine(f"sqlite:///{tmp_path / 'feedsvc.db'}")
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def started() -> Iterator[list[BaseScheduler]]:
    """Schedulers a test started; shut down (without waiting) if the test did not."""
    running: list[BaseScheduler] = []
    yield running
    for s in running:
        if s.state != STATE_STOPPED:
            s.shutdown(wait=False)


def fires(trigger: Any, after: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    fire = trigger.get_next_fire_time(None, after)
    while fire is not None and len(out) < n:
        out.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire)
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- triggers ------------------------------------------------------------------------------------------


def test_send_at_follows_the_profiles_time_zone_across_dst_changes(
    tmp_path: Path, sqlite_factory: Any
) -> None:
    profiles = [profile("alice", "Europe/Berlin", "07:30"), profile("bob", "America/New_York", "18:05")]
    scheduler = build_scheduler(make_settings(tmp_path), sqlite_factory, profiles, jobs=Recorder().jobs())
    alice = scheduler.get_job(digest_job_id("alice")).trigger
    bob = scheduler.get_job(digest_job_id("bob")).trigger
    # Berlin: CET (UTC+1) until 2024-03-31 02:00, then CEST (UTC+2), back to CET on 2024-10-27 03:00
    assert fires(alice, utc(2024, 3, 29, 12), 3) == [
        utc(2024, 3, 30, 6, 30),
        utc(2024, 3, 31, 5, 30),
        utc(2024, 4, 1, 5, 30),
    ]
    assert fires(alice, utc(2024, 10, 25, 12), 3) == [
        utc(2024, 10, 26, 5, 30),
        utc(2024, 10, 27, 6, 30),
        utc(2024, 10, 28, 6, 30),
    ]
    # New York: EST (UTC-5) until 2024-03-10, then EDT (UTC-4)
    assert fires(bob, utc(2024, 3, 8, 12), 3) == [
        utc(2024, 3, 8, 23, 5),
        utc(2024, 3, 9, 23, 5),
        utc(2024, 3, 10, 22, 5),
    ]


def test_a_send_time_in_the_repeated_autumn_hour_fires_once_that_day() -> None:
    # 02:30 exists twice in Berlin on 2024-10-27 (CEST, then CET): CronTrigger fires at both
    plain = CronTrigger(hour=2, minute=30, timezone=BERLIN)
    assert fires(plain, utc(2024, 10, 26, 12), 3) == [
        utc(2024, 10, 27, 0, 30),
        utc(2024, 10, 27, 1, 30),
        utc(2024, 10, 28, 1, 30),
    ]
    daily = DailyTrigger("02:30", "Europe/Berlin")
    assert fires(daily, utc(2024, 10, 26, 12), 3) == [
        utc(2024, 10, 27, 0, 30),
        utc(2024, 10, 28, 1, 30),
        utc(2024, 10, 29, 1, 30),
    ]
    # the skipped spring hour: 02:30 does not exist on 2024-03-31; it fires once, at 03:30 CEST
    assert fires(daily, utc(2024, 3, 30, 12), 2) == [utc(2024, 3, 31, 1, 30), utc(2024, 4, 1, 0, 30)]


def test_fetch_runs_on_its_crontab_in_utc_and_a_bad_crontab_is_a_config_error(
    tmp_path: Path, sqlite_factory: Any
) -> None:
    settings = make_settings(tmp_path, fetch_cron="15 */3 * * *")
    scheduler = build_scheduler(settings, sqlite_factory, [], jobs=Recorder().jobs())
    assert fires(scheduler.get_job(FETCH).trigger, utc(2024, 3, 31, 0, 20), 2) == [
        utc(2024, 3, 31, 3, 15),
        utc(2024, 3, 31, 6, 15),
    ]
    with pytest.raises(ConfigError, match="FEEDSVC_FETCH_CRON"):
        build_scheduler(
            make_settings(tmp_path, fetch_cron="every morning"), sqlite_factory, [], jobs=Recorder().jobs()
        )


# --- misfires ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grace_hours", [6, 72])
def test_a_machine_asleep_through_three_send_times_sends_once_on_waking(
    tmp_path: Path, sqlite_factory: Any, clock: Clock, started: list[BaseScheduler], grace_hours: int
) -> None:
    # with 72 hours of grace all three missed 07:30s are within it: coalescing is what keeps it to one
    rec = Recorder()
    settings = make_settings(tmp_path, misfire_grace_seconds=grace_hours * 3600)
    scheduler = build_scheduler(settings, sqlite_factory, [profile()], jobs=rec.jobs(), clock=clock)
    events = Events(scheduler)
    scheduler.start()
    started.append(scheduler)
    assert events.wait_for(PUBLISH, ALIVE) == {
        PUBLISH: EVENT_JOB_EXECUTED,
        ALIVE: EVENT_JOB_EXECUTED,
    }  # on start
    digest = scheduler.get_job(digest_job_id("alice"))
    assert digest.next_run_time == datetime(2024, 3, 29, 7, 30, tzinfo=BERLIN)

    # asleep from Thursday 08:00 to Sunday 08:00 (across the DST change): 07:30 passed on Fri, Sat, Sun
    woke = datetime(2024, 3, 31, 8, 0, tzinfo=BERLIN)
    clock.set(woke)
    scheduler.wakeup()
    outcome = events.wait_for(FETCH, PUBLISH, digest_job_id("alice"))
    scheduler.shutdown(wait=True)

    assert set(outcome.values()) == {EVENT_JOB_EXECUTED}
    assert rec.builds == [("alice", date(2024, 3, 31), woke)]  # once, for the day it woke up on
    assert rec.publishes.count("alice") == 1
    assert rec.publishes.count(None) == 2  # on start and once on waking, not once per missed minute
    assert len(rec.collects) == 1  # 24 missed fetch times, one fetch, done before the digest
    assert rec.log.index("collect") < rec.log.index("build alice 2024-03-31")
    assert ("digest:alice", "ok: digest 2024-03-31; 0 sent") in rec.beats


def test_a_run_missed_by_more_than_the_grace_is_skipped_with_a_log_line(
    tmp_path: Path,
    sqlite_factory: Any,
    clock: Clock,
    started: list[BaseScheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="feedsvc.scheduler")
    rec = Recorder()
    settings = make_settings(tmp_path, misfire_grace_seconds=6 * 3600)
    scheduler = build_scheduler(settings, sqlite_factory, [profile()], jobs=rec.jobs(), clock=clock)
    events = Events(scheduler)
    scheduler.start()
    started.append(scheduler)
    events.wait_for(PUBLISH, ALIVE)  # the jobs that run on start

    clock.set(datetime(2024, 3, 29, 15, 0, tzinfo=BERLIN))  # 7.5 hours after Friday's 07:30
    scheduler.wakeup()
    outcome = events.wait_for(FETCH, PUBLISH, digest_job_id("alice"))
    next_run = scheduler.get_job(digest_job_id("alice")).next_run_time
    scheduler.shutdown(wait=True)

    assert outcome == {
        FETCH: EVENT_JOB_EXECUTED,  # 12:15 UTC was 1h45 ago: within the grace
        PUBLISH: EVENT_JOB_EXECUTED,
        digest_job_id("alice"): EVENT_JOB_MISSED,
    }
    assert rec.builds == []
    assert "alice" not in rec.publishes
    assert next_run == datetime(2024, 3, 30, 7, 30, tzinfo=BERLIN)
    missed = [
        r.getMessage()
        for r in caplog.records
        if r.name == "feedsvc.scheduler" and r.levelno == logging.WARNING
    ]
    assert missed == [
        "digest:alice: the run due at 2024-03-29 06:30 UTC was missed by more than the grace "
        "time: skipped until its next time"
    ]


def test_the_scheduler_notices_a_jump_of_the_wall_clock_without_being_woken(
    tmp_path: Path, sqlite_factory: Any, clock: Clock, started: list[BaseScheduler]
) -> None:
    # After a suspend APScheduler's monotonic sleep still has hours to go; with an hourly publish it would
    # sleep an hour of real time here. The capped sleep re-reads the clock and finds the digest due.
    rec = Recorder()
    settings = make_settings(tmp_path, publish_interval_seconds=3600)
    scheduler = build_scheduler(
        settings, sqlite_factory, [profile()], jobs=rec.jobs(), clock=clock, max_sleep_seconds=0.05
    )
    events = Events(scheduler)
    scheduler.start()
    started.append(scheduler)
    events.wait_for(PUBLISH, ALIVE)  # the jobs that run on start
    clock.set(datetime(2024, 3, 29, 7, 31, tzinfo=BERLIN))  # no wakeup(): as after a suspend
    assert events.wait_for(digest_job_id("alice"))[digest_job_id("alice")] == EVENT_JOB_EXECUTED
    scheduler.shutdown(wait=True)
    assert [b[:2] for b in rec.builds] == [("alice", date(2024, 3, 29))]


# --- what the digest job builds, and when it fetches first ---------------------------------------------


def test_the_digest_is_for_the_day_whose_send_time_came_and_fetches_only_when_the_fetch_was_missed(
    tmp_path: Path, sqlite_factory: Any
) -> None:
    rec = Recorder()
    now = Clock(utc(2024, 3, 28, 6, 20))
    settings = make_settings(tmp_path, fetch_cron="15 */3 * * *")
    scheduler = build_scheduler(
        settings,
        sqlite_factory,
        [profile(send_at="07:30"), profile("night", send_at="22:00")],
        jobs=rec.jobs(),
        clock=now,
    )
    fetch, alice, night = (
        scheduler.get_job(i) for i in (FETCH, digest_job_id("alice"), digest_job_id("night"))
    )
    fetch.func(*fetch.args)  # the 06:15 UTC fetch
    now.set(utc(2024, 3, 28, 6, 30))  # 07:30 CET
    alice.func(*alice.args)
    assert rec.log == ["collect", "build alice 2024-03-28", "publish alice"]  # on time: no second fetch

    now.set(datetime(2024, 3, 29, 1, 0, tzinfo=BERLIN))  # 3 hours after Thursday's 22:00, fetches missed
    night.func(*night.args)
    assert rec.log[3:] == ["collect", "build night 2024-03-28", "publish night"]  # Thursday's digest


def test_the_default_jobs_run_the_pipeline_and_the_outbox(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    # the real collect (every source disabled: no network), build_digests and publish for a Markdown recipient
    rec = Recorder()
    settings = make_settings(
        tmp_path, db_url, semantic="off", disabled_sources=["arxiv", "youtube", "hn", "lobsters"]
    )
    reader = Profile(
        name="alice",
        threads=(Thread(name="diffusion"),),
        timezone="Europe/Berlin",
        send_at="07:30",
        channels={"markdown": {"dir": str(tmp_path / "inbox")}},
    )
    jobs = dataclasses.replace(default_jobs(), heartbeat=rec.heartbeat)
    now = Clock(utc(2024, 3, 28, 6, 30))  # 07:30 in Berlin
    scheduler = build_scheduler(settings, session_factory(engine), [reader], jobs=jobs, clock=now)
    digest = scheduler.get_job(digest_job_id("alice"))
    detail = digest.func(*digest.args)

    # nothing was fetched, so nothing cleared the bar: the day's digest is built and nothing is sent
    assert detail.startswith("digest 2024-03-28 built (0 cards); 0 sent, 0 to retry")
    assert not (tmp_path / "inbox" / "alice").exists()
    assert (FETCH, "ok: youtube disabled, hn disabled, lobsters disabled (before digest:alice)") in rec.beats
    assert (digest_job_id("alice"), f"ok: {detail}") in rec.beats
    assert digest.func(*digest.args).startswith("digest 2024-03-28 already built; 0 sent")  # once a day


def test_a_failing_job_reports_its_failure_to_the_heartbeat(tmp_path: Path, sqlite_factory: Any) -> None:
    rec = Recorder()
    rec.fail_collect = True
    scheduler = build_scheduler(make_settings(tmp_path), sqlite_factory, [], jobs=rec.jobs())
    fetch = scheduler.get_job(FETCH)
    with pytest.raises(RuntimeError, match="the sources are down"):
        fetch.func(*fetch.args)
    assert rec.beats == [(FETCH, "failed: RuntimeError: the sources are down")]
    with job_lock(make_settings(tmp_path), sqlite_factory, FETCH) as held:
        assert held  # released despite the failure


def test_jobs_and_the_scheduler_beat_into_the_store(tmp_path: Path, db_url: str, engine: Engine) -> None:
    archive = pytest.importorskip("feedsvc.store.archive")  # the web archive's module (/healthz reads it)
    rec = Recorder()
    now = Clock(utc(2024, 3, 28, 6, 20))
    factory = session_factory(engine)
    jobs = Jobs(rec.collect, rec.build, rec.publish, store_heartbeat)
    scheduler = build_scheduler(make_settings(tmp_path, db_url), factory, [profile()], jobs=jobs, clock=now)
    alive, publish = scheduler.get_job(ALIVE), scheduler.get_job(PUBLISH)
    alive.func(*alive.args)
    now.set(utc(2024, 3, 28, 6, 21))
    publish.func(*publish.args)
    with factory() as session:
        beats = archive.heartbeats(session)
    assert beats[ALIVE].beat == utc(2024, 3, 28, 6, 20)
    assert beats[ALIVE].detail.endswith("; next: digest:alice at 2024-03-28 06:30 UTC")  # 07:30 CET
    assert (beats[PUBLISH].beat, beats[PUBLISH].detail) == (utc(2024, 3, 28, 6, 21), "ok: 0 sent")


# --- the single-runner lock across processes -----------------------------------------------------------

HOLDER = """
import sys
from feedsvc.config import Settings
from feedsvc.store.locks import job_lock
from feedsvc.store.db import make_engine

data_dir, url, name = sys.argv[1:4]
settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)
with job_lock(settings, make_engine(url), name) as held:
    print("held" if held else "busy", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def holder(tmp_path: Path, url: str, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), url, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,  # no .env from the repository
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    assert proc.wait(timeout=WAIT) == 0


def test_a_fetch_is_not_repeated_after_a_late_digest_fetched_and_one_under_way_elsewhere_counts(
    tmp_path: Path, sqlite_factory: Any
) -> None:
    settings = make_settings(tmp_path, fetch_cron="15 */3 * * *")
    now = Clock(utc(2024, 3, 31, 6, 0))  # the 03:15 UTC fetch was missed
    rec = Recorder()
    scheduler = build_scheduler(settings, sqlite_factory, [profile()], jobs=rec.jobs(), clock=now)
    fetch, digest = scheduler.get_job(FETCH), scheduler.get_job(digest_job_id("alice"))
    digest.func(*digest.args)
    assert fetch.func(*fetch.args) == "already fetched since its time"
    assert rec.log == ["collect", "build alice 2024-03-31", "publish alice"]

    rec = Recorder()  # a second instance, while another is fetching
    scheduler = build_scheduler(settings, sqlite_factory, [profile()], jobs=rec.jobs(), clock=now)
    fetch, digest = scheduler.get_job(FETCH), scheduler.get_job(digest_job_id("alice"))
    proc = holder(tmp_path, settings.resolved_database_url(), FETCH)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    assert fetch.func(*fetch.args) == "skipped: running elsewhere"
    release(proc)
    digest.func(*digest.args)
    assert rec.log == ["build alice 2024-03-31", "publish alice"]  # it waited for that fetch, not a second


def test_a_job_whose_lock_another_process_holds_is_skipped_then_runs_once_it_is_free(
    tmp_path: Path, db_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feedsvc.scheduler")
    rec = Recorder()
    settings = make_settings(tmp_path, db_url)
    scheduler = build_scheduler(settings, session_factory(engine), [profile()], jobs=rec.jobs())
    publish, digest = scheduler.get_job(PUBLISH), scheduler.get_job(digest_job_id("alice"))

    proc = holder(tmp_path, db_url, PUBLISH)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    assert publish.func(*publish.args) == "skipped: running elsewhere"
    assert rec.publishes == [] and rec.beats == []
    assert "publish: skipped, another feedsvc instance is running it" in caplog.messages
    digest.func(*digest.args)  # other jobs have locks of their own
    assert rec.publishes == ["alice"]
    release(proc)

    publish.func(*publish.args)
    assert rec.publishes == ["alice", None]
    assert (PUBLISH, "ok: 0 sent") in rec.beats


def test_a_lock_this_process_holds_is_busy_for_another_process(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    settings = make_settings(tmp_path, db_url)
    with job_lock(settings, engine, FETCH) as held:
        assert held
        proc = holder(tmp_path, db_url, FETCH)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "busy"
        release(proc)
    proc = holder(tmp_path, db_url, FETCH)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    release(proc)


def test_advisory_locks_of_two_schemas_are_apart(tmp_path: Path, pg_url: str, pg_admin: Engine) -> None:
    other = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{other}"'))
    other_url = pg_url.rsplit("%3D", 1)[0] + f"%3D{other}"
    this, that = make_engine(pg_url), make_engine(other_url)
    try:
        proc = holder(tmp_path, pg_url, PUBLISH)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with job_lock(make_settings(tmp_path, pg_url), this, PUBLISH) as held:
            assert not held
        with job_lock(make_settings(tmp_path, other_url), that, PUBLISH) as held:
            assert held  # another deployment's publish
        release(proc)
    finally:
        this.dispose()
        that.dispose()
        with pg_admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{other}" CASCADE'))


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path, db_url: str, engine: Engine) -> None:
    settings = make_settings(tmp_path, db_url)
    proc = holder(tmp_path, db_url, PUBLISH)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with job_lock(settings, engine, PUBLISH) as held:
        assert not held
    proc.kill()
    proc.wait(timeout=WAIT)
    # the kernel drops the flock at once; PostgreSQL ends the dead client's session when it sees the socket
    # close, so that side is given a moment
    with job_lock(settings, engine, PUBLISH, wait=WAIT) as held:
        assert held


def test_the_sqlite_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db" / "store.db"
    settings = make_settings(tmp_path / "data", f"sqlite:///{elsewhere}")
    engine = make_engine(settings.resolved_database_url())
    assert lock_path(settings, engine, "digest:alice") == tmp_path / "db" / "locks" / "digest_alice.lock"
    with job_lock(settings, engine, "digest:alice") as held:
        assert held
        fd = os.open(lock_path(settings, engine, "digest:alice"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    engine.dispose()


# --- stopping ------------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_stopping_waits_for_the_running_job_and_releases_its_lock(
    tmp_path: Path, sqlite_factory: Any
) -> None:
    rec = Recorder()
    settings = make_settings(tmp_path)
    scheduler = build_scheduler(settings, sqlite_factory, [], jobs=rec.jobs())
    running = threading.Event()
    seen: list[str] = []

    def slow_publish() -> None:  # runs until the scheduler has begun to shut down, then finishes
        with job_lock(settings, sqlite_factory, PUBLISH) as free:
            seen.append(f"lock free during the job: {free}")
        running.set()
        wait_until(lambda: scheduler.state == STATE_STOPPED)
        seen.append("job finished")

    rec.on_publish = slow_publish
    scheduler.add_listener(lambda _e: seen.append("scheduler shut down"), EVENT_SCHEDULER_SHUTDOWN)
    stop = threading.Event()
    worker = threading.Thread(target=run_forever, args=(scheduler, stop), kwargs={"handle_signals": False})
    worker.start()
    assert running.wait(WAIT)
    stop.set()
    worker.join(WAIT)
    assert not worker.is_alive()
    assert seen == ["lock free during the job: False", "job finished", "scheduler shut down"]
    assert [b for b in rec.beats if b[0] == PUBLISH] == [(PUBLISH, "ok: 0 sent")]
    with job_lock(settings, sqlite_factory, PUBLISH) as held:
        assert held


WORKER = """
import sys, time
import uvicorn
from apscheduler.schedulers.base import STATE_STOPPED
from feedsvc.config import Settings
from feedsvc.scheduler import Jobs, build_scheduler, run_forever
from feedsvc.store.db import make_engine, session_factory

data_dir, url, how = sys.argv[1:4]
settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)
scheduler = None

def publish(settings, factory, profile, worker, clock):
    print("job started", flush=True)
    deadline = time.monotonic() + 30
    while scheduler.state != STATE_STOPPED and time.monotonic() < deadline:  # until the signal is handled
        time.sleep(0.01)
    print("job finished", flush=True)
    return "done"

async def app(scope, receive, send):  # an ASGI app that says when it serves
    while scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            print("serving", flush=True)
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return

jobs = Jobs(lambda *a: "", lambda *a: "", publish, lambda *a: None)
scheduler = build_scheduler(settings, session_factory(make_engine(url)), [], jobs=jobs)
if how == "uvicorn":
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    run_forever(scheduler, main=server.run)
else:
    run_forever(scheduler)
print("stopped", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("how", ["worker", "uvicorn"])
def test_a_signal_finishes_the_running_job_before_the_process_exits(
    tmp_path: Path, how: str, signum: int
) -> None:
    # worker: run_forever waits for the signal; uvicorn: the web server runs in the main thread, takes the
    # signal, shuts down and re-raises it, and the scheduler still waits for its job
    url = f"sqlite:///{tmp_path / 'feedsvc.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path), url, how],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    ready = {"job started", "serving"} if how == "uvicorn" else {"job started"}
    assert {proc.stdout.readline().strip() for _ in ready} == ready
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=WAIT)
    assert out.split("\n") == ["job finished", "stopped", ""]
    assert proc.returncode == 0
    settings = make_settings(tmp_path, url)
    engine = make_engine(url)
    with job_lock(settings, engine, PUBLISH) as held:
        assert held
    engine.dispose()


def test_run_forever_restores_the_signal_handlers(tmp_path: Path, sqlite_factory: Any) -> None:
    before = signal.getsignal(signal.SIGTERM)
    scheduler = build_scheduler(make_settings(tmp_path), sqlite_factory, [], jobs=Recorder().jobs())
    stop = threading.Event()
    stop.set()
    run_forever(scheduler, stop)
    assert signal.getsignal(signal.SIGTERM) is before
    assert scheduler.state == STATE_STOPPED
