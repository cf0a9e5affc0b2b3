"""`feedsvc demo --serve` as a real process: it builds the demo when it is missing, serves its archive on
loopback with the demo's own settings (no FEEDSVC_ variable set), keeps a generated secret key (mode 0600)
in the demo's directory, and reuses an existing demo without rebuilding it."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from feedsvc.demo import DEMO_PAGE, SECRET_FILE, demo_built, serve_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def clean_env() -> dict[str, str]:
    """The environment without any FEEDSVC_ variable, and one that would be unsafe if it were obeyed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env["FEEDSVC_WEB_HOST"] = "0.0.0.0"  # the demo binds loopback whatever this says
    env["FEEDSVC_SEMANTIC"] = "off"  # a rebuild in the test stays quick
    return env


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float = 240) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "exited"
        try:
            return get(url)
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"nothing answered at {url}")


def serve(data: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "feedsvc", "demo", "--serve", "--port", str(port), "--data-dir", str(data)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=data.parent,
    )


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    output, _ = proc.communicate(timeout=30)
    return output.decode()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`feedsvc demo` run as a newcomer runs it; its last line is the command to browse the result."""
    data = tmp_path_factory.mktemp("demo-serve") / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "feedsvc", "demo", "--data-dir", str(data), "--preview-lines", "1"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.rstrip().splitlines()[-1].endswith(f"browse it: feedsvc demo --serve --data-dir {data}")
    )
    return data


def test_demo_serve_shows_the_archive_at_the_printed_url(demo_dir: Path) -> None:
    port = free_port()
    proc = serve(demo_dir, port)
    try:
        status, page = wait_for_page(f"http://127.0.0.1:{port}{DEMO_PAGE}", proc)
        assert status == 200 and b"Robust Offline Reinforcement Learning" in page
        status, form = get(f"http://127.0.0.1:{port}/subscribe")
        assert status == 200 and b"<form" in form  # the write endpoints have a key (else 503)
        assert get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)
    finally:
        output = stop(proc)
    assert f"http://127.0.0.1:{port}{DEMO_PAGE}" in output
    assert "digest written to" not in output  # the existing demo was served, not built again
    key = demo_dir / SECRET_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) >= 32
    assert key.read_text().strip() not in output


def test_demo_serve_builds_the_demo_when_it_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    assert not demo_built(data)
    port = free_port()
    proc = serve(data, port)
    try:
        status, page = wait_for_page(f"http://127.0.0.1:{port}{DEMO_PAGE}", proc)
        assert status == 200 and b"seed-reader" in page
    finally:
        stop(proc)
    assert demo_built(data)


def test_serve_settings_are_the_demo_s_whatever_the_environment(demo_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("FEEDSVC_DATABASE_URL", "postgresql+psycopg://u:p@elsewhere/db")
    monkeypatch.setenv("FEEDSVC_DISABLED_SOURCES", "[]")
    monkeypatch.setenv("FEEDSVC_WEB_HOST", "0.0.0.0")
    settings = serve_settings(demo_dir, 8123)
    assert settings.resolved_database_url() == f"sqlite:///{demo_dir / 'feedsvc.db'}"
    assert set(settings.disabled_sources) == {"arxiv", "youtube", "hn", "lobsters"}
    assert settings.web_host == "127.0.0.1" and settings.base_url == "http://127.0.0.1:8123"
    first = settings.secret_key.get_secret_value()
    assert serve_settings(demo_dir, 8123).secret_key.get_secret_value() == first  # kept, not regenerated
