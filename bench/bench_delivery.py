"""Benchmark: publishing one digest to 10,000 email recipients through a local SMTP server and to 1,000
Telegram chats through the local Bot API test double, with `feedsvc.pipeline.publish` and the real channels.

Run: `.venv/bin/python bench/bench_delivery.py [--emails 10000] [--chats 1000] [--database-url URL]`.
The SMTP server (aiosmtpd, counting what arrives) and the Bot API double run in subprocesses, so they do
not share this process's interpreter. Telegram is sent with the production rate limits (one message per
second per chat, 25 per second overall), so its throughput is the limit's, as it must be; `--no-limits`
measures the machinery without them. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from feedsvc.config import example_profiles_path, load_profiles
from feedsvc.demo import SNAPSHOT_DAY, SNAPSHOT_NOW, replay_settings, snapshot_routes
from feedsvc.pipeline.collect import collect
from feedsvc.pipeline.digest import build_digests
from feedsvc.pipeline.publish import publish
from feedsvc.replay import ReplayServer
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.store.tables import ProfileRow, RecipientRow

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-for-signing-links"

SMTP_SERVER = textwrap.dedent(
    """
    import socket, sys
    from aiosmtpd.controller import Controller
    class Count:
        n = 0
        async def handle_DATA(self, server, session, envelope):
            Count.n += 1
            return "250 OK"
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = Controller(Count(), hostname="127.0.0.1", port=port)
    c.start()
    print(port, flush=True)
    sys.stdin.read()
    print(Count.n, flush=True)
    c.stop()
    """
)

TELEGRAM_SERVER = textwrap.dedent(
    f"""
    import sys
    sys.path.insert(0, {str(ROOT / "tests")!r})
    from telegram_double import TelegramDouble
    with TelegramDouble() as tg:
        print(tg.api_url, tg.token, flush=True)
        sys.stdin.read()
        print(len(tg.messages()), sum(1 for c in tg.calls if not c.ok), flush=True)
    """
)


def start(script: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()


def finish(proc: subprocess.Popen[str]) -> list[str]:
    out, _ = proc.communicate("", timeout=60)
    return out.split()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--no-limits", action="store_true", help="Telegram without its rate limits")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="feedsvc-bench-delivery-"))
    [profile] = load_profiles(example_profiles_path())
    profile = replace(profile, channels={})
    smtp, (smtp_port,) = start(SMTP_SERVER)
    tg, (tg_url, tg_token) = start(TELEGRAM_SERVER)
    with ReplayServer(snapshot_routes()) as replay:
        settings = replay_settings(
            replay.url,
            tmp,
            database_url=args.database_url,
            secret_key=SECRET,
            base_url="https://digest.example.org",
        )
        engine = make_engine(settings.resolved_database_url())
        upgrade(engine)
        factory = session_factory(engine)
        collect(settings, factory, [profile], now=SNAPSHOT_NOW)
        build_digests(settings, factory, [profile], day=SNAPSHOT_DAY, now=SNAPSHOT_NOW)
    now = datetime.now(UTC)
    with session_scope(factory) as session:
        pid = session.query(ProfileRow.id).filter_by(name=profile.name).scalar()
        session.add_all(
            RecipientRow(profile_id=pid, channel="email", address=f"reader{i:05d}@example.org", created=now)
            for i in range(args.emails)
        )
        session.add_all(
            RecipientRow(profile_id=pid, channel="telegram", address=str(10_000_000 + i), created=now)
            for i in range(args.chats)
        )
    rows = []
    base_rss = rss_mib()

    # the real path: `publish` opens settings.delivery_threads workers, each with its own channels
    email_only = settings.model_copy(
        update=dict(smtp_host="127.0.0.1", smtp_port=int(smtp_port), smtp_security="none")
    )
    t0 = time.perf_counter()
    report = publish(email_only, factory)
    t1 = time.perf_counter()
    [arrived] = finish(smtp)
    rows.append(("email", args.emails, report.sent, int(arrived), t1 - t0, rss_mib()))

    limits = dict(telegram_chat_interval=0.0, telegram_global_rate=1e9) if args.no_limits else {}
    telegram_only = settings.model_copy(
        update=dict(telegram_bot_token=SecretStr(tg_token), telegram_api_url=tg_url, **limits)
    )
    t0 = time.perf_counter()
    report = publish(telegram_only, factory)
    t1 = time.perf_counter()
    arrived_messages, refused = finish(tg)
    rows.append(("telegram", args.chats, report.sent, int(arrived_messages), t1 - t0, rss_mib()))
    engine.dispose()

    backend = make_engine(settings.resolved_database_url()).dialect.name
    print(
        f"\nstore: {backend}; Telegram limits: {'off' if args.no_limits else '1/s per chat, 25/s overall'}; "
        f"peak RSS before publishing {base_rss:.0f} MiB; Bot API calls refused: {refused}\n"
    )
    print(
        "| channel | recipients | deliveries sent | messages arrived | wall time | deliveries/s "
        "| messages/s | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for channel, n, sent, arrived, secs, rss in rows:
        print(
            f"| {channel} | {n:,} | {sent:,} | {arrived:,} | {secs:.1f} s | {sent / secs:,.0f} | "
            f"{arrived / secs:,.0f} | {rss:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
