"""The scheduler: when the pipeline's runs happen. It holds the APScheduler jobs that call the pipeline,
and what it takes to run them safely: taking the single-runner locks, the liveness heartbeat, the signal
handling of `run_forever`, and a patch of APScheduler's sleep (`_WallClockWakeups`, so a machine that
was suspended still finds the 07:30 digest due). What a job does lives in `feedsvc.pipeline`.

Jobs: `fetch` on `fetch_cron` (UTC) collects the sources, then reads up to `library_reads_per_run` papers
of the readers' study lists (`feedsvc.pipeline.study`); `digest:<profile>` at the profile's `send_at` in
its time zone builds that day's digest and publishes it; `cadence` every minute sends each recipient with
a cadence of their own (daily or weekly, at their time in their zone) what they are owed
(`feedsvc.pipeline.cadence`); `publish` every `publish_interval_seconds` delivers whatever is due
(retries included). Every job is coalesced, runs one instance at a time and is
run late only within `misfire_grace_seconds`: a machine that slept through three 07:30s sends once on
waking, and a miss beyond the grace is skipped with a log line. Each run first takes the job's
single-runner lock (`feedsvc.store.locks`: a PostgreSQL advisory lock, else a file lock), so two
instances never run the same job; the one that finds it taken skips with a log line. After each run the
job's outcome goes to the store's heartbeats under the job's name, and every minute the `scheduler`
heartbeat says this scheduler is alive (the one /healthz judges). `run_forever` stops on SIGTERM/SIGINT
and waits for the running jobs (the outbox's leases cover a process that dies instead).

An edge: imports the config, the models, the store and (when a job runs) `feedsvc.pipeline`'s collect,
study, digest and publish; nothing but the CLI imports it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.models import ConfigError, Profile
from feedsvc.store.db import session_scope
from feedsvc.store.locks import job_lock

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Factory = sessionmaker[Session]

FETCH = "fetch"
PUBLISH = "publish"
CADENCE = "cadence"  # recipients with a cadence of their own, sent at their time
CADENCE_SECONDS = 60
ALIVE = "scheduler"  # the heartbeat /healthz judges the scheduler by
ALIVE_SECONDS = 60
WORKERS = 4  # threads running jobs: a fetch, a publish and digests at once
MAX_SLEEP_SECONDS = 60.0
FETCH_WAIT_SECONDS = 3600.0  # how long a digest waits for a fetch under way before building anyway


def digest_job_id(profile: str) -> str:
    return f"digest:{profile}"


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- what the jobs do ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jobs:
    """The work behind the scheduled jobs; each returns its outcome in one line (logged, and the heartbeat).

    `collect(settings, factory, profiles, now)`, `build(settings, factory, profile, day, now)`,
    `publish(settings, factory, profile or None for all, worker id or None, clock)`,
    `heartbeat(factory, job name, now, detail)` and `cadence(settings, factory, profiles, now, before_build)`
    (None: no `cadence` job). Tests pass their own to count calls. `export(settings, factory)`, given by the
    command line (the static site, `feedsvc export-site`), runs after a day's digest is built and published
    when FEEDSVC_EXPORT_DIR is set.
    """

    collect: Callable[[Settings, Factory, Sequence[Profile], datetime], str]
    build: Callable[[Settings, Factory, Profile, date, datetime], str]
    publish: Callable[[Settings, Factory, str | None, str | None, Clock], str]
    heartbeat: Callable[[Factory, str, datetime, str], None]
    cadence: Callable[[Settings, Factory, Sequence[Profile], datetime, Callable[[], None]], str] | None = None
    export: Callable[[Settings, Factory], str] | None = None


def pipeline_collect(settings: Settings, factory: Factory, profiles: Sequence[Profile], now: datetime) -> str:
    from feedsvc.pipeline.collect import collect  # imported when a job runs: tests with own Jobs skip it
    from feedsvc.pipeline.study import read_library_papers

    fresh_for = timedelta(seconds=settings.fetch_min_interval_seconds)  # a late digest's fetch, then ours
    outcomes = collect(settings, factory, profiles, now=now, fresh_for=fresh_for)
    detail = ", ".join(f"{o.source} {o.status}" + (f" ({o.new} new)" if o.new else "") for o in outcomes)
    if settings.library_reads_per_run:  # then a few of the study lists' papers, read in the background
        reading = read_library_papers(settings, factory, profiles, now=now)
        detail += f"; {reading.summary()}" if reading.read else ""
    return detail


def pipeline_build(settings: Settings, factory: Factory, profile: Profile, day: date, now: datetime) -> str:
    from feedsvc.pipeline.digest import build_digests

    built = build_digests(settings, factory, [profile], day=day, now=now)
    return "; ".join(
        f"digest {b.day.isoformat()} "
        + ("already built" if b.existed else f"built ({len(b.digest.cards)} cards)")
        for b in built
    )


def outbox_publish(
    settings: Settings, factory: Factory, profile: str | None, worker: str | None, clock: Clock
) -> str:
    from feedsvc.pipeline.publish import publish

    # the clock, not a frozen `now`: a long publish claims each batch with a lease from the time it claims
    report: Any = publish(settings, factory, worker=worker, profile=profile, clock=clock)
    summary = getattr(report, "summary", None)
    return summary() if callable(summary) else str(report)


def store_heartbeat(factory: Factory, name: str, now: datetime, detail: str) -> None:
    """Record `name`'s outcome with `feedsvc.store.archive.heartbeat`; a store without it records nothing."""
    try:
        from feedsvc.store import archive
    except ImportError:
        log.debug("no feedsvc.store.archive: the %s heartbeat is not recorded", name)
        return
    beat = getattr(archive, "heartbeat", None)
    if beat is None:
        log.debug("feedsvc.store.archive has no heartbeat(): the %s heartbeat is not recorded", name)
        return
    with session_scope(factory) as session:
        beat(session, name, now, detail=detail)


def pipeline_cadence(
    settings: Settings,
    factory: Factory,
    profiles: Sequence[Profile],
    now: datetime,
    before_build: Callable[[], None],
) -> str:
    from feedsvc.pipeline.cadence import send_due

    return send_due(settings, factory, profiles, now, before_build=before_build).summary()


def default_jobs() -> Jobs:
    return Jobs(pipeline_collect, pipeline_build, outbox_publish, store_heartbeat, pipeline_cadence)


# --- triggers ------------------------------------------------------------------------------------------


class DailyTrigger(CronTrigger):
    """`send_at` ("HH:MM") every day in `timezone`, at most once per local day.

    CronTrigger follows the zone's offsets (07:30 Berlin is 06:30 UTC in winter and 05:30 in summer); a time
    in the hour the spring change skips fires an hour later that day; a time in the hour the autumn change
    repeats would fire twice, and this trigger keeps only the first.
    """

    def __init__(self, send_at: str, timezone: str) -> None:
        hour, minute = (int(part) for part in send_at.split(":"))
        super().__init__(hour=hour, minute=minute, timezone=ZoneInfo(timezone))

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire = super().get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is not None:
            done = previous_fire_time.astimezone(self.timezone).date()
            while fire is not None and fire.astimezone(self.timezone).date() == done:
                fire = super().get_next_fire_time(fire, fire)
        return fire


def fetch_trigger(settings: Settings) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(settings.fetch_cron, timezone=UTC)
    except ValueError as e:
        raise ConfigError(f"FEEDSVC_FETCH_CRON {settings.fetch_cron!r} is not a crontab line: {e}") from None


def latest_fire(
    trigger: BaseTrigger, now: datetime, horizon: timedelta = timedelta(days=8)
) -> datetime | None:
    """The trigger's last fire time at or before `now`, looking back at most `horizon`."""
    for back in (timedelta(days=1), horizon):
        last = None
        fire = trigger.get_next_fire_time(None, now - back)
        while fire is not None and fire <= now:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire)
        if last is not None:
            return last
    return None


# --- the jobs ------------------------------------------------------------------------------------------


@dataclass
class _Runner:
    settings: Settings
    factory: Factory
    profiles: Sequence[Profile]
    jobs: Jobs
    clock: Clock
    worker_id: str | None
    fetch_trigger: BaseTrigger
    scheduler: BaseScheduler | None = None
    triggers: dict[str, BaseTrigger] = field(default_factory=dict)  # fetch and digests, by job id
    # when the latest fetch began here (or was found under way in another instance)
    _fetched: datetime | None = field(default=None, init=False)
    _checking: int = field(default=0, init=False)  # digests here checking freshness under the fetch lock
    _fetched_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def stopping(self) -> bool:
        return self.scheduler is not None and self.scheduler.state == STATE_STOPPED

    def _beat(self, name: str, detail: str) -> None:
        try:
            self.jobs.heartbeat(self.factory, name, self.clock(), detail)
        except Exception:
            log.exception("%s: recording the heartbeat failed", name)

    def _mark_fetch(self, now: datetime) -> None:
        with self._fetched_lock:
            self._fetched = max(self._fetched or now, now)

    def _fetched_since(self, now: datetime) -> bool:
        """Has a fetch begun since the fetch schedule's latest time at or before `now`?"""
        due = latest_fire(self.fetch_trigger, now)
        with self._fetched_lock:
            fetched = self._fetched
        return due is None or (fetched is not None and fetched >= due)

    def _fetch_elsewhere(self, now: datetime) -> None:
        with self._fetched_lock:
            if not self._checking:  # the fetch lock is not ours: another instance is fetching
                self._fetched = max(self._fetched or now, now)

    def _run(
        self, name: str, work: Callable[[datetime], str], on_busy: Callable[[datetime], None] | None = None
    ) -> str:
        now = self.clock()
        with job_lock(self.settings, self.factory, name) as held:
            if not held:
                log.info("%s: skipped, another feedsvc instance is running it", name)
                if on_busy is not None:
                    on_busy(now)
                return "skipped: running elsewhere"
            try:
                detail = work(now)
            except Exception as e:
                self._beat(name, f"failed: {type(e).__name__}: {e}")
                raise  # APScheduler logs it with the traceback
            log.info("%s: %s", name, detail)
            self._beat(name, f"ok: {detail}")
            return detail

    def _collect(self, now: datetime) -> str:
        self._mark_fetch(now)
        return self.jobs.collect(self.settings, self.factory, self.profiles, now)

    def fetch(self) -> str:
        def work(now: datetime) -> str:
            if self._fetched_since(now):  # a digest that ran late fetched first
                return "already fetched since its time"
            return self._collect(now)

        return self._run(FETCH, work, on_busy=self._fetch_elsewhere)

    def alive(self) -> str:
        """The `scheduler` heartbeat: no lock (every instance may say it is alive), and the next fetch or
        digest. From the triggers, not the scheduler: a job asking the scheduler for its jobs can deadlock
        with `shutdown(wait=True)`, which holds the job store lock while it waits for the running jobs."""
        now = self.clock()
        upcoming = [(t.get_next_fire_time(None, now), name) for name, t in self.triggers.items()]
        detail = f"{socket.gethostname()} pid {os.getpid()}"
        if due := min(((f, n) for f, n in upcoming if f is not None), default=None):
            detail += f"; next: {due[1]} at {due[0].astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        self._beat(ALIVE, detail)
        return detail

    def publish(self) -> str:
        return self._run(
            PUBLISH,
            lambda _now: self.jobs.publish(self.settings, self.factory, None, self.worker_id, self.clock),
        )

    def cadence(self) -> str:
        """Queue what recipients with their own cadence are owed now (building it if need be), then send."""
        assert self.jobs.cadence is not None

        def work(now: datetime) -> str:
            detail = self.jobs.cadence(
                self.settings, self.factory, self.profiles, now, lambda: self._fresh_store(CADENCE, now)
            )
            if detail == "nothing due":
                return detail
            sent = self.jobs.publish(self.settings, self.factory, None, self.worker_id, self.clock)
            return f"{detail}; {sent}"

        return self._run(CADENCE, work)

    def digest(self, profile: Profile, trigger: BaseTrigger) -> str:
        name = digest_job_id(profile.name)

        def work(now: datetime) -> str:
            self._fresh_store(name, now)
            due = latest_fire(trigger, now, horizon=timedelta(days=2))
            day = (due or now).astimezone(ZoneInfo(profile.timezone)).date()
            built = self.jobs.build(self.settings, self.factory, profile, day, now)
            sent = self.jobs.publish(self.settings, self.factory, profile.name, self.worker_id, self.clock)
            return f"{built}; {sent}{self._export()}"

        return self._run(name, work)

    def _export(self) -> str:
        """The static site refreshed after a digest, when configured; its failure is logged and reported in
        the job's line, and never undoes the digest or its deliveries."""
        if self.jobs.export is None or not self.settings.export_dir:
            return ""
        try:
            return f"; site export: {self.jobs.export(self.settings, self.factory)}"
        except Exception as e:
            log.exception("the static site export to %s failed", self.settings.export_dir)
            return f"; site export failed: {type(e).__name__}: {e}"

    def _fresh_store(self, name: str, now: datetime) -> None:
        """Wait for a fetch under way (here or in another instance); if the fetch schedule's latest time
        passed with no fetch begun since (the machine slept, or this process just started), fetch first."""
        with self._fetched_lock:
            self._checking += 1
        try:
            self._fetch_if_stale(name, now)
        finally:
            with self._fetched_lock:
                self._checking -= 1

    def _fetch_if_stale(self, name: str, now: datetime) -> None:
        with job_lock(
            self.settings, self.factory, FETCH, wait=FETCH_WAIT_SECONDS, stop=self.stopping
        ) as held:
            if not held:
                log.warning("%s: the fetch is still running; building from the store as it is", name)
                return
            if self._fetched_since(now):
                return
            log.info("%s: the fetch schedule's latest time passed without a fetch: fetching first", name)
            try:
                detail = self._collect(now)
            except Exception as e:
                log.exception(
                    "%s: the fetch before the digest failed; building from the store as it is", name
                )
                self._beat(FETCH, f"failed: {type(e).__name__}: {e}")
            else:
                self._beat(FETCH, f"ok: {detail} (before {name})")


class _WallClockWakeups:
    """Re-read the wall clock at least every `max_sleep` seconds.

    APScheduler 3 sleeps until the next run time on `threading.Event.wait`, a monotonic timer that stands
    still while the machine is suspended (agronholm/apscheduler#794): after a night asleep it would wake
    hours late and skip the 07:30 digest as missed beyond the grace. Capping each sleep finds it due within
    `max_sleep` of waking. Mixed into the scheduler class `build_scheduler` is given.
    """

    max_sleep: float = MAX_SLEEP_SECONDS

    def _process_jobs(self) -> float | None:
        wait = super()._process_jobs()  # type: ignore[misc]
        return wait if wait is None else min(wait, self.max_sleep)


def _log_missed(event: JobExecutionEvent) -> None:
    log.warning(
        "%s: the run due at %s was missed by more than the grace time: skipped until its next time",
        event.job_id,
        f"{event.scheduled_run_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
    )


def build_scheduler(
    settings: Settings,
    factory: Factory,
    profiles: Sequence[Profile],
    *,
    jobs: Jobs | None = None,
    scheduler_cls: type[BaseScheduler] = BackgroundScheduler,
    worker_id: str | None = None,
    clock: Clock = utc_now,
    max_sleep_seconds: float = MAX_SLEEP_SECONDS,
) -> BaseScheduler:
    """A scheduler (not started) with the jobs `fetch`, `publish`, `digest:<profile>` for each profile, and
    `scheduler` (the liveness heartbeat, every minute).

    Every job: coalesce, one instance at a time, `misfire_grace_seconds` of grace. `publish` and `scheduler`
    first run when the scheduler starts. `worker_id` names this instance on the deliveries it claims (None:
    the outbox's host:pid). `clock` is what the jobs take for now (tests); APScheduler itself reads the
    system clock. Raises ConfigError for a bad `fetch_cron`.
    """
    runner = _Runner(
        settings,
        factory,
        list(profiles),
        jobs or default_jobs(),
        clock,
        worker_id,
        fetch_trigger(settings),
    )
    cls = type(
        f"Feedsvc{scheduler_cls.__name__}",
        (_WallClockWakeups, scheduler_cls),
        {"max_sleep": max_sleep_seconds},
    )
    scheduler: BaseScheduler = cls(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(WORKERS)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.misfire_grace_seconds,
        },
    )
    runner.scheduler = scheduler
    runner.triggers[FETCH] = runner.fetch_trigger
    scheduler.add_listener(_log_missed, EVENT_JOB_MISSED)
    scheduler.add_job(runner.fetch, runner.fetch_trigger, id=FETCH, name=FETCH)
    start = clock()
    scheduler.add_job(
        runner.publish,
        IntervalTrigger(seconds=settings.publish_interval_seconds, start_date=start, timezone=UTC),
        id=PUBLISH,
        name=PUBLISH,
        next_run_time=start,
    )
    scheduler.add_job(
        runner.alive,
        IntervalTrigger(seconds=ALIVE_SECONDS, start_date=start, timezone=UTC),
        id=ALIVE,
        name=ALIVE,
        next_run_time=start,
    )
    if runner.jobs.cadence is not None:
        scheduler.add_job(
            runner.cadence,
            IntervalTrigger(seconds=CADENCE_SECONDS, start_date=start, timezone=UTC),
            id=CADENCE,
            name=CADENCE,
            next_run_time=start,
        )
    for profile in profiles:
        trigger = DailyTrigger(profile.send_at, profile.timezone)
        name = digest_job_id(profile.name)
        runner.triggers[name] = trigger
        scheduler.add_job(runner.digest, trigger, args=(profile, trigger), id=name, name=name)
    return scheduler


# --- running -------------------------------------------------------------------------------------------


class _Signalled(BaseException):
    """Raised in the main thread by the first SIGTERM/SIGINT (like KeyboardInterrupt) to stop `main`."""


def run_forever(
    scheduler: BaseScheduler,
    stop: threading.Event | None = None,
    *,
    main: Callable[[], object] | None = None,
    handle_signals: bool = True,
) -> None:
    """Start `scheduler` (a BackgroundScheduler), run until told to stop, then shut it down waiting for the
    running jobs; leases cover whatever a killed process leaves behind.

    Without `main` it waits for SIGTERM/SIGINT or `stop` (`feedsvc worker`). With `main` it runs `main()`
    in this thread and stops when it returns (`feedsvc run`: `uvicorn.Server(config).run`, which handles the
    signals itself and re-raises the one it got once it has shut down: that is caught here, so the jobs
    still finish). A second signal while the jobs finish is not caught (SIGINT raises KeyboardInterrupt,
    SIGTERM ends the process).
    """
    if isinstance(scheduler, BlockingScheduler) and not isinstance(scheduler, BackgroundScheduler):
        raise TypeError(
            "run_forever needs a BackgroundScheduler: a BlockingScheduler's start() never returns"
        )
    stop = stop or threading.Event()
    finishing = False
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        if not finishing:
            raise _Signalled(signum)
        log.info("%s: still finishing the running jobs", signal.Signals(signum).name)

    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            if not scheduler.running:
                scheduler.start()
            if main is not None:
                main()
            else:
                while not stop.wait(0.5):
                    pass
        except _Signalled as e:
            log.info("%s: finishing the running jobs, then stopping", signal.Signals(e.args[0]).name)
        finishing = True
        stop.set()
    finally:
        finishing = True
        try:
            if scheduler.running:
                scheduler.shutdown(wait=True)
                log.info("scheduler stopped")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
