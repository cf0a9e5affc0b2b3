"""`feedsvc run` as a real process on the demo's store: it serves the demo's digests over HTTP, reports a
running scheduler on /healthz, publishes at start (the seed reader's Markdown recipient gets its digest
through the outbox), and stops cleanly on SIGTERM. It refuses to start without FEEDSVC_SECRET_KEY."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from feedsvc.demo import demo_profiles_path, run_demo
from feedsvc.store.db import make_engine, session_factory, session_scope
from feedsvc.store.delivery import deliveries


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("service") / "demo"
    run_demo(data, semantic="off")
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env.update(
        FEEDSVC_DATA_DIR=str(data),
        FEEDSVC_PROFILES_PATH=str(demo_profiles_path()),
        FEEDSVC_WEB_PORT=str(port),
        FEEDSVC_DISABLED_SOURCES='["arxiv", "youtube", "hn", "lobsters"]',  # no network here
        **extra,
    )
    return env


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_run_serves_the_demo_publishes_and_stops_cleanly(demo_dir: Path) -> None:
    port = free_port()
    env = env_for(demo_dir, port, FEEDSVC_SECRET_KEY="service-test-secret-key-0123456789")
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedsvc", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health: dict = {}
        while time.monotonic() < deadline:
            try:
                status, body = get(f"{base}/healthz")
                health = json.loads(body)
                if health.get("scheduler", {}).get("status") == "running":
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert health.get("scheduler", {}).get("status") == "running", health
        status, page = get(f"{base}/d/seed-reader/2024-11-28")
        assert status == 200 and b"Robust Offline Reinforcement Learning" in page
        status, home = get(f"{base}/")
        assert status == 200 and b"graph-learning" in home
        # the archive links each demo reader's study list: their imported papers, with breakdowns where the
        # demo bundles the full text
        assert b'href="/library/graph-learning"' in home and b'href="/library/seed-reader"' in home
        status, shelf = get(f"{base}/library/graph-learning")
        assert status == 200 and shelf.count(b'<li id="paper-') == 3
        assert shelf.count("Read the breakdown →".encode()) == 3
        status, shelf = get(f"{base}/library/seed-reader")
        assert status == 200 and shelf.count(b'<li id="paper-') == 7 and b"Soft Actor-Critic" in shelf
        # the publish job ran at start: the seed reader's Markdown recipient got its digest
        engine = make_engine(f"sqlite:///{demo_dir / 'feedsvc.db'}")
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with session_scope(session_factory(engine)) as session:
                    rows = deliveries(session)
                if rows and all(r.status == "sent" for r in rows):
                    break
                time.sleep(0.3)
        finally:
            engine.dispose()
        # (graph-learning has no channel configured)
        assert [(r.profile, r.channel, r.status) for r in rows] == [("seed-reader", "markdown", "sent")]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]


def test_run_fails_fast_without_a_secret(demo_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "run"],
        env=env_for(demo_dir, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "FEEDSVC_SECRET_KEY is not set" in result.stderr
