"""/healthz: is the database answering, is the scheduler alive, how are the sources and the outbox.

200 whenever the database answers (`status` "ok", or "degraded" with the reasons), 503 when it does not.
The scheduler is judged by its heartbeat (`feedsvc.store.archive.heartbeat(session, "scheduler", now)`,
written at least every minute by `feedsvc run` / `feedsvc worker`): "running" when the last beat is at
most `STALE_AFTER` old, "stale" when older, "not running" when there is none. Imports the pipeline (for
source health) and the store: an edge module.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from feedsvc.pipeline.collect import source_health
from feedsvc.store import archive, delivery
from feedsvc.web.cache import PRIVATE
from feedsvc.web.deps import NowDep, StateDep
from feedsvc.web.feeds import json_page

log = logging.getLogger(__name__)
router = APIRouter()

STALE_AFTER = timedelta(minutes=5)
SCHEDULER = "scheduler"


def _answer(data: dict[str, Any], status: int) -> Response:
    page = json_page(data, PRIVATE)
    return Response(
        page.body, status_code=status, media_type=page.media_type, headers={"Cache-Control": PRIVATE}
    )


@router.api_route("/healthz", methods=["GET", "HEAD"])
def healthz(request: Request, st: StateDep, now: NowDep) -> Response:
    """Database, scheduler, sources and outbox, as JSON."""
    problems: list[str] = []
    report: dict[str, Any] = {"status": "ok", "time": now, "problems": problems}
    try:
        with st.factory() as session:
            archive.ping(session)
    except Exception as e:  # any driver error means the same thing here: no database
        log.error("healthz: the database did not answer: %s", e)
        report.update(status="down", database={"ok": False, "error": f"{type(e).__name__}: no answer"})
        problems.append("the database does not answer")
        return _answer(report, 503)
    report["database"] = {"ok": True, "dialect": st.factory.kw["bind"].dialect.name}

    beats: dict[str, archive.Heartbeat] = {}
    try:
        with st.factory() as session:
            beats = archive.heartbeats(session)
            report["outbox"] = delivery.delivery_counts(session)
    except Exception as e:  # a database not migrated to 0006 has no heartbeats table
        log.error("healthz: %s", e)
        problems.append("heartbeats and outbox unreadable (is the database migrated?)")
    report["heartbeats"] = {
        name: {"beat": b.beat, "age_seconds": round((now - b.beat).total_seconds()), "detail": b.detail}
        for name, b in beats.items()
    }
    beat = beats.get(SCHEDULER)
    if beat is None:
        report["scheduler"] = {"status": "not running", "detail": "no heartbeat has been recorded"}
        problems.append("the scheduler is not running")
    else:
        age = now - beat.beat
        state = "running" if age <= STALE_AFTER else "stale"
        report["scheduler"] = {
            "status": state,
            "last_beat": beat.beat,
            "age_seconds": round(age.total_seconds()),
            "detail": beat.detail,
        }
        if state != "running":
            problems.append(f"the scheduler's last heartbeat is {round(age.total_seconds())} s old")

    try:
        sources = source_health(st.settings, st.factory, now)
    except Exception as e:
        log.error("healthz: source health: %s", e)
        sources = []
        problems.append("source health unreadable")
    report["sources"] = [dataclasses.asdict(h) for h in sources]
    problems += [
        f"{h.source} is failing ({h.failures} runs in a row)" for h in sources if h.enabled and h.failures
    ]
    if problems:
        report["status"] = "degraded"
    return _answer(report, 200)
