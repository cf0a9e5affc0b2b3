"""`feedsvc export-site`: the demo's archive as static files. Every relative link and fragment resolves on
disk, links to what only the app serves are absolute to the base URL, headless Chromium draws a page from
disk with its stylesheet, a second export writes nothing, a new digest adds only its own files (and the
pages that list it), and the scheduler exports after a digest when FEEDSVC_EXPORT_DIR is set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from feedsvc.config import Settings, load_profiles
from feedsvc.demo import SNAPSHOT_DAY, SNAPSHOT_NOW, demo_profiles_path, run_demo
from feedsvc.pipeline.digest import build_digests
from feedsvc.scheduler import Jobs, build_scheduler, digest_job_id
from feedsvc.store.db import make_engine, session_factory
from feedsvc.web.export import MANIFEST, export_site, item_file, relative

BASE = "https://archive.example.org/feeds"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Links(HTMLParser):
    """Every href/src/action of a page, and every id in it."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.feed(source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.links.append(value)
            if name == "id" and value:
                self.ids.add(value)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("export") / "demo"
    run_demo(data, semantic="off")
    return data


@pytest.fixture
def store(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo's store."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo_dir / "feedsvc.db", data / "feedsvc.db")
    return data


def settings_for(data: Path, **kw: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data, database_url="", base_url=BASE, semantic="off", **kw)  # type: ignore[call-arg]


def export(data: Path, out: Path) -> Any:
    settings = settings_for(data)
    engine = make_engine(settings.resolved_database_url())
    try:
        return export_site(settings, session_factory(engine), out)
    finally:
        engine.dispose()


def files(out: Path) -> dict[str, int]:
    return {
        p.relative_to(out).as_posix(): p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def check_links(out: Path) -> int:
    """Assert every local link of every exported page resolves to a file (and its fragment to an id)."""
    checked = 0
    pages = {p.relative_to(out).as_posix(): Links(p.read_text(encoding="utf-8")) for p in out.rglob("*.html")}
    for name, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                if link.startswith(BASE):
                    path = link.removeprefix(BASE)
                    assert path.startswith(("/search", "/subscribe", "/api/", "/item/", "/library/")), (
                        name,
                        link,
                    )
                continue
            if parts.scheme == "data" or link.startswith("#"):
                continue
            assert not parts.scheme and not link.startswith("/"), f"{name}: {link} is not relative"
            target = (out / Path(name).parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{name}: {link} does not resolve"
            if parts.fragment:
                other = pages[target.relative_to(out.resolve()).as_posix()]
                assert parts.fragment in other.ids, f"{name}: {link}: no such anchor"
            checked += 1
    return checked


def test_the_export_s_links_resolve_on_disk_and_app_links_are_absolute(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = export(store, out)
    got = set(files(out))
    assert {
        "index.html",
        "static/style.css",
        f"d/seed-reader/{SNAPSHOT_DAY}.html",
        f"d/graph-learning/{SNAPSHOT_DAY}.html",
        "d/seed-reader.html",
        "d/seed-reader/atom.xml",
        "item/arxiv:2310.03240.html",
    } <= got
    assert set(report.written) == got and not report.removed
    assert check_links(out) > 30
    page = (out / f"d/seed-reader/{SNAPSHOT_DAY}.html").read_text(encoding="utf-8")
    assert "Robust Offline Reinforcement Learning" in page
    assert f'action="{BASE}/search"' in page and 'href="../../static/style.css"' in page
    feed = (out / "d/seed-reader/atom.xml").read_text(encoding="utf-8")
    assert f'<link rel="alternate" type="text/html" href="{BASE}/d/seed-reader/{SNAPSHOT_DAY}"/>' in feed


def test_a_second_export_writes_nothing_and_a_new_digest_adds_only_its_files(
    store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    export(store, out)
    before = files(out)
    again = export(store, out)
    assert again.written == [] and again.removed == [] and files(out) == before

    dead = "http://127.0.0.1:9"  # no full text for the new day's picks: nothing leaves the machine
    settings = settings_for(
        store, profiles_path=demo_profiles_path(), arxiv_html_url=dead, arxiv_eprint_url=dead, http_retries=1
    )
    [profile] = [p for p in load_profiles(demo_profiles_path()) if p.name == "seed-reader"]
    engine = make_engine(settings.resolved_database_url())
    try:
        day = SNAPSHOT_DAY + timedelta(days=1)
        [built] = build_digests(
            settings, session_factory(engine), [profile], day=day, now=SNAPSHOT_NOW + timedelta(days=1)
        )
    finally:
        engine.dispose()
    assert built.digest.cards and not built.existed
    new = export(store, out)
    expected = {"index.html", "d/seed-reader.html", "d/seed-reader/atom.xml", f"d/seed-reader/{day}.html"}
    expected |= {item_file(c.key) for c in built.digest.cards}
    assert set(new.written) == expected and not new.removed
    after = files(out)
    assert {k: v for k, v in after.items() if k not in expected} == {
        k: v for k, v in before.items() if k not in expected
    }
    assert check_links(out) > 30


def test_a_file_the_archive_no_longer_has_is_removed(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export(store, out)
    manifest = (out / MANIFEST).read_text()
    (out / "item/gone.html").write_text("old")
    (out / MANIFEST).write_text(manifest.replace('"files": {', '"files": {\n"item/gone.html": "x",', 1))
    report = export(store, out)
    assert report.removed == ["item/gone.html"] and not (out / "item/gone.html").exists()


def test_relative_links_never_read_as_a_scheme() -> None:
    assert relative("item/arxiv:1.html", "item/arxiv:2.html") == "./arxiv:1.html"
    assert relative("item/arxiv:1.html", "d/p/2024-11-28.html") == "../../item/arxiv:1.html"
    assert relative("index.html", "index.html") == "index.html"
    assert item_file("arxiv:2310.03240") == "item/arxiv:2310.03240.html"
    odd = item_file("url:https://example.org/a b?c")
    assert odd.startswith("item/url:https:__example.org_a_b_c-") and "/" not in odd.removeprefix("item/")
    assert item_file("../../etc") != item_file("_.._etc") and item_file("../../etc").count("/") == 1


def test_the_command_line_exports(store: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FEEDSVC_DATA_DIR": str(store), "FEEDSVC_BASE_URL": BASE}
    done = subprocess.run(
        [sys.executable, "-m", "feedsvc", "export-site", str(tmp_path / "site")],
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert " written, 0 unchanged, 0 removed: " in done.stdout and (tmp_path / "site/index.html").is_file()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (the Debian package `chromium`)")
def test_chromium_draws_an_exported_page_from_disk_with_its_stylesheet(store: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    out = tmp_path / "site"
    export(store, out)
    page = (out / f"d/graph-learning/{SNAPSHOT_DAY}.html").as_uri()

    def shot(name: str) -> Any:
        png = tmp_path / name
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", "--hide-scrollbars", f"--screenshot={png}",
             "--window-size=1000,1600", page],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        with Image.open(png) as im:
            return np.asarray(im.convert("RGB"), dtype=np.int32)

    styled = shot("styled.png")
    inked = float((np.abs(styled - styled[2, 2]).sum(axis=2) > 60).mean())
    assert 0.02 < inked < 0.6  # a page was drawn, not a blank or an error screen
    (out / "static/style.css").unlink()
    plain = shot("plain.png")
    assert float((np.abs(styled - plain).sum(axis=2) > 60).mean()) > 0.05  # the relative stylesheet applied


def test_the_scheduler_exports_after_a_digest_when_configured(tmp_path: Path) -> None:
    calls: list[str] = []
    jobs = Jobs(
        lambda *a: "",
        lambda *a: "built",
        lambda *a: "0 sent",
        lambda *a: None,
        export=lambda settings, factory: calls.append(settings.export_dir) or "3 written",
    )
    [profile] = [p for p in load_profiles(demo_profiles_path()) if p.name == "seed-reader"]
    engine = make_engine(f"sqlite:///{tmp_path / 'feedsvc.db'}")
    try:
        for export_dir in ("", str(tmp_path / "site")):
            settings = settings_for(tmp_path, export_dir=export_dir, fetch_cron="0 0 1 1 *")
            scheduler = build_scheduler(
                settings, session_factory(engine), [profile], jobs=jobs, clock=lambda: SNAPSHOT_NOW
            )
            job = scheduler.get_job(digest_job_id(profile.name))
            detail = job.func(*job.args)
            assert ("site export: 3 written" in detail) == bool(export_dir)
    finally:
        engine.dispose()
    assert calls == [str(tmp_path / "site")]


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEPLOY_CONF = Path(__file__).parent.parent / "deploy" / "nginx.conf"


def front_conf(root: Path, run_dir: Path, port: int, app_url: str) -> str:
    """deploy/nginx.conf as it is, but for loopback and this test's directories."""
    conf = DEPLOY_CONF.read_text(encoding="utf-8")
    for old, new in [
        ("pid /run/nginx.pid;", f"pid {run_dir}/nginx.pid;\ndaemon off;\nuser root;"),
        ("error_log stderr warn;", f"error_log {run_dir}/error.log warn;"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("root /srv/site;", f"root {root};"),
        ("server app:8000;", f"server {app_url.removeprefix('http://')};"),
    ]:
        assert old in conf, old
        conf = conf.replace(old, new)
    return conf


@pytest.mark.skipif(not Path(NGINX).exists(), reason="needs nginx (the Debian package `nginx`)")
def test_the_front_server_serves_the_export_and_passes_the_rest_to_the_app(
    store: Path, tmp_path: Path
) -> None:
    import httpx
    from test_web import serving

    from feedsvc.web.app import create_app

    out = tmp_path / "site"
    export(store, out)
    settings = settings_for(store)
    engine = make_engine(settings.resolved_database_url())
    port = free_port()
    with serving(create_app(settings, session_factory(engine))) as app_url:
        run_dir = tmp_path / "nginx"
        run_dir.mkdir()
        (run_dir / "nginx.conf").write_text(front_conf(out, run_dir, port, app_url))
        nginx = subprocess.Popen([NGINX, "-c", str(run_dir / "nginx.conf"), "-p", str(run_dir)])
        try:
            front = f"http://127.0.0.1:{port}"
            page = wait_ok(front + f"/d/seed-reader/{SNAPSHOT_DAY}")
            assert page.content == (out / f"d/seed-reader/{SNAPSHOT_DAY}.html").read_bytes()  # the file
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "public, max-age=86400"
            item = httpx.get(front + "/item/arxiv:2310.03240")
            assert item.content == (out / "item/arxiv:2310.03240.html").read_bytes()
            feed = httpx.get(front + "/d/seed-reader/atom.xml")
            assert (
                feed.headers["content-type"].startswith("application/atom+xml") and b"<feed" in feed.content
            )
            search = httpx.get(front + "/search", params={"q": "spectral filtering"})  # from the app
            assert search.status_code == 200 and "arxiv:1606.09375" in search.text
            assert httpx.get(front + "/healthz").json()["database"]["ok"] is True
            assert httpx.get(front + "/d/seed-reader/2024-11-27").status_code == 404  # the app's answer
            assert httpx.get(front + f"/{MANIFEST}").status_code == 404
        finally:
            nginx.terminate()
            nginx.wait(20)
    engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, timeout: float = 20) -> Any:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
