"""The container tier: the image and the compose stack, really built and run (podman + podman-compose).

Builds the app image and the PostgreSQL image on the local Debian base (deploy/podman-setup.sh makes it:
no registry is reachable here), brings `docker-compose.yml` up under its own project name and a free
port, waits for both health checks, runs `feedsvc demo --into-store` inside the app container, reads the
demo's digest page, its Atom feed and the digest API from the published port, restarts the app container
and checks that all of it is still served the same, then tears the stack and its volumes down.
Skipped, with one line, where no engine runs. `.ci/run` runs it apart, under `timeout`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape

pytestmark = pytest.mark.container

ROOT = Path(__file__).parent.parent
BASE = os.environ.get("FEEDSVC_BASE_IMAGE", "localhost/debian:bookworm-slim")
POSTGRES = "localhost/feedsvc-postgres:latest"
APP = "localhost/feedsvc:latest"
FRONT = "localhost/feedsvc-front:latest"
PROJECT = "feedsvc-ctest"
DEMO_PAGE = "/d/seed-reader/2024-11-28"
ATOM = "http://www.w3.org/2005/Atom"
BUILD_TIMEOUT = 1200  # a first build downloads the wheels; later ones reuse the cached layers
HEALTHY_TIMEOUT = 180


def _run(args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def _engine_missing() -> str | None:
    """Why the tier cannot run here, or None."""
    if not shutil.which("podman"):
        return "no podman (deploy/podman-setup.sh installs it)"
    if _run(["podman", "image", "exists", BASE]).returncode != 0:
        return f"no base image {BASE} (deploy/podman-setup.sh imports it)"
    if not _compose_command():
        return "no podman-compose (the test extra installs it)"
    return None


def _compose_command() -> str | None:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("podman-compose", path=path)


WHY_NOT = _engine_missing()  # cheap (no `podman info`): decided once, at collection
if WHY_NOT:
    pytest.skip(f"container tier: {WHY_NOT}", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_ca() -> list[str]:
    """The host's CA bundle for pip in the build (a TLS-inspecting proxy's CA may be in it)."""
    bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    return ["--secret", f"id=cacert,src={bundle}"] if bundle.is_file() else []


def _image_id(tag: str) -> str:
    return _run(["podman", "image", "inspect", "--format", "{{.Id}}", tag]).stdout.strip()


def _build(tag: str, *args: str) -> float:
    """`podman build --network=host` on the local base; returns the seconds it took. The image the tag
    named before is removed when the build replaced it (each code change would leave one behind)."""
    before, start = _image_id(tag), time.monotonic()
    build = ["podman", "build", "-q", "--format=docker", "--network=host", *_host_ca()]
    made = _run(
        [*build, "--build-arg", f"BASE={BASE}", "-t", tag, *args],
        timeout=BUILD_TIMEOUT,
        cwd=ROOT,
    )
    assert made.returncode == 0, f"podman build {tag} failed:\n{made.stderr[-3000:]}"
    took = time.monotonic() - start
    if before and before != _image_id(tag):
        _run(["podman", "rmi", before])  # fails harmlessly when a container still uses it
    return took


@dataclass
class Stack:
    compose: list[str]
    env: dict[str, str]
    port: int
    timings: dict[str, float]  # seconds, printed at the end (`-s`): docs/benchmarks.md

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = _run([*self.compose, *args], timeout=timeout, env=self.env, cwd=ROOT)
        assert done.returncode == 0, f"podman-compose {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        return done

    def container(self, service: str) -> str:
        found = _run(
            [
                "podman", "ps", "-a", "--format", "{{.Names}}",
                "--filter", f"label=io.podman.compose.project={PROJECT}",
                "--filter", f"label=com.docker.compose.service={service}",
            ]
        ).stdout.split()  # fmt: skip
        assert len(found) == 1, f"expected one {service} container, found {found}"
        return found[0]

    def wait_healthy(self, service: str) -> float:
        """Run the service's health check until it passes (podman has no timer without systemd); returns
        the seconds waited."""
        name, start = self.container(service), time.monotonic()
        while True:
            if _run(["podman", "healthcheck", "run", name], timeout=60).returncode == 0:
                return time.monotonic() - start
            if time.monotonic() - start > HEALTHY_TIMEOUT:
                logs = _run(["podman", "logs", "--tail", "30", name]).stderr
                pytest.fail(f"{service} not healthy after {HEALTHY_TIMEOUT}s; its log ends:\n{logs}")
            time.sleep(1)

    def get(self, path: str, port: int | None = None, timeout: float = 30) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    timings = {
        "front image": _build(FRONT, "-f", "deploy/front.Dockerfile", "deploy"),
        "app image": _build(APP, "."),
        "postgres image": _build(POSTGRES, "-f", "deploy/postgres.Dockerfile", "deploy"),
    }
    env_file = tmp_path_factory.mktemp("stack") / ".env"  # the service's own settings, as a deployer's .env
    env_file.write_text('FEEDSVC_DISABLED_SOURCES=["arxiv","youtube","hn","lobsters"]\n')  # nothing goes out
    env = {
        **os.environ,
        "FEEDSVC_ENV_FILE": str(env_file),
        "FEEDSVC_DB_PASSWORD": secrets.token_urlsafe(16),
        "FEEDSVC_SECRET_KEY": secrets.token_urlsafe(32),
        "FEEDSVC_PUBLISH_PORT": str(_free_port()),
        "FEEDSVC_FRONT_PORT": str(_free_port()),
        "FEEDSVC_BASE_IMAGE": BASE,
        "FEEDSVC_POSTGRES_IMAGE": POSTGRES,
        "FEEDSVC_PROFILES_FILE": str(ROOT / "feedsvc/sample/profiles.demo.toml"),
    }
    s = Stack(
        [_compose_command() or "", "-p", PROJECT, "--profile", "front"],
        env,
        int(env["FEEDSVC_PUBLISH_PORT"]),
        timings,
    )
    s("down", "-v", timeout=180)  # what an interrupted run left
    try:
        start = time.monotonic()
        s("up", "-d")
        s.wait_healthy("db")
        s.wait_healthy("feedsvc")
        s.wait_healthy("front")
        timings["stack up to healthy"] = time.monotonic() - start
        yield s
    finally:
        start = time.monotonic()
        _run([*s.compose, "down", "-v", "-t", "30"], timeout=300, env=env, cwd=ROOT)
        timings["stack down"] = time.monotonic() - start
        print("\ncontainer tier timings (s):", {k: round(v, 1) for k, v in timings.items()})


def _served(s: Stack) -> dict[str, object]:
    """What the stack serves of the demo: the digest page's item links, the Atom entries, the API's JSON."""
    status, page = s.get(DEMO_PAGE)
    assert status == 200, page[:300]
    status, atom = s.get("/d/seed-reader/atom.xml")
    assert status == 200, atom[:300]
    entries = ET.fromstring(atom).findall(f"{{{ATOM}}}entry")
    status, api = s.get("/api/digests/seed-reader/2024-11-28")
    assert status == 200, api[:300]
    return {
        "page": page.decode(),
        "atom": [(e.findtext(f"{{{ATOM}}}title"), e.findtext(f"{{{ATOM}}}id")) for e in entries],
        "api": json.loads(api),
    }


def test_the_demo_runs_in_the_stack_and_survives_a_restart(stack: Stack) -> None:
    assert stack.get(DEMO_PAGE)[0] == 404, "a fresh stack already has the demo's digest"
    app = stack.container("feedsvc")
    start = time.monotonic()
    demo = _run(["podman", "exec", app, "feedsvc", "demo", "--into-store"], timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    stack.timings["demo in the app container"] = time.monotonic() - start
    markdown = _run(["podman", "exec", app, "cat", "/data/digests/seed-reader/2024-11-28.md"])
    assert markdown.returncode == 0, markdown.stderr

    before = _served(stack)
    titles = [card["title"] for card in before["api"]["cards"]]  # type: ignore[index]
    assert titles and any(t in markdown.stdout for t in titles)
    assert any((eid or "").endswith(DEMO_PAGE) for _, eid in before["atom"])  # type: ignore[union-attr]
    assert all(str(escape(t)) in before["page"] for t in titles)  # type: ignore[operator]

    start = time.monotonic()
    restarted = _run(["podman", "restart", "-t", "30", app], timeout=180)
    assert restarted.returncode == 0, restarted.stderr
    stack.wait_healthy("feedsvc")
    stack.timings["app restart to healthy"] = time.monotonic() - start
    after = _served(stack)
    assert after["api"] == before["api"] and after["atom"] == before["atom"]
    assert after["page"] == before["page"]
    again = _run(["podman", "exec", app, "cat", "/data/digests/seed-reader/2024-11-28.md"])
    assert again.stdout == markdown.stdout, "the digest's Markdown copy in the data volume was lost"


def test_healthz_reports_postgres_through_the_published_port(stack: Stack) -> None:
    status, body = stack.get("/healthz")
    report = json.loads(body)
    assert status == 200 and report["database"] == {"ok": True, "dialect": "postgresql"}


def _front_log(stack: Stack) -> str:
    address = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    app = _run(["podman", "inspect", "--format", address, stack.container("feedsvc")]).stdout.strip()
    log = _run(["podman", "logs", "--tail", "20", stack.container("front")])
    return f"the app is at {app}; the front's log ends:\n{log.stdout}{log.stderr}"


def _through_front(stack: Stack, path: str, seconds: float = 45) -> tuple[int, bytes]:
    """GET `path` from the front server, allowing it `seconds` to find a restarted app: until it has
    reloaded, a request fails (502) or waits on the app's old address."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, body = stack.get(path, int(stack.env["FEEDSVC_FRONT_PORT"]), timeout=5)
        except TimeoutError:
            status, body = 504, b"timed out"
        if status not in (502, 504) or time.monotonic() > deadline:
            return status, body
        time.sleep(1)


def test_the_front_server_serves_the_site_volume_and_passes_the_rest_to_the_app(stack: Stack) -> None:
    front = int(stack.env["FEEDSVC_FRONT_PORT"])
    status, body = _through_front(stack, "/healthz")  # the app may have just restarted (the test above)
    assert status == 200, _front_log(stack)
    assert json.loads(body)["database"]["dialect"] == "postgresql"
    # the app restarted comes back at another address: the front finds it again
    app = stack.container("feedsvc")
    assert _run(["podman", "restart", "-t", "30", app], timeout=180).returncode == 0
    stack.wait_healthy("feedsvc")
    start = time.monotonic()
    status, body = _through_front(stack, "/healthz")
    assert status == 200, f"the front server lost the restarted app ({status}): {_front_log(stack)}"
    stack.timings["front reaches the restarted app"] = time.monotonic() - start
    # `feedsvc export-site /site` in the app writes the archive as files; nginx serves them itself
    exported = _run(["podman", "exec", app, "feedsvc", "export-site", "/site"], timeout=300)
    assert exported.returncode == 0, exported.stderr
    on_disk = _run(["podman", "exec", app, "cat", f"/site{DEMO_PAGE}.html"])
    assert on_disk.returncode == 0, on_disk.stderr
    status, body = stack.get(DEMO_PAGE, front)
    # byte-equal to the exported file (relative links), not the app's rendering of the same digest
    assert status == 200 and body.decode() == on_disk.stdout
    assert body != stack.get(DEMO_PAGE)[1]
