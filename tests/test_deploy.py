"""The deployment files, checked without a Docker engine (none runs on this project's machines): the compose
file's structure, that every FEEDSVC_ variable it or .env.example sets is a real setting, that it fails
fast on the required secrets, and that the image runs migrations before `feedsvc run`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from feedsvc.config import Settings

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
FIELDS = {f"FEEDSVC_{name.upper()}" for name in Settings.model_fields}
NOT_SETTINGS = {"FEEDSVC_DB_PASSWORD", "FEEDSVC_PUBLISH_PORT"}  # compose's own variables


def test_postgres_is_healthy_before_feedsvc_starts() -> None:
    db, app = COMPOSE["services"]["db"], COMPOSE["services"]["feedsvc"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pgdata" in COMPOSE["volumes"] and "feedsvc-data" in COMPOSE["volumes"]
    assert any(v.startswith("feedsvc-data:") for v in app["volumes"])
    assert app["command"] == ["run"] and app["ports"][0].endswith(":8000")


def test_required_secrets_fail_fast() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("FEEDSVC_DB_PASSWORD", "FEEDSVC_SECRET_KEY"):
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must use ${{VAR:?message}}"
    env_file = COMPOSE["services"]["feedsvc"]["env_file"]
    assert env_file == [{"path": ".env", "required": True}]


def test_every_variable_set_is_a_real_setting() -> None:
    app = COMPOSE["services"]["feedsvc"]
    names = set(app["environment"])
    names |= {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    names |= set(re.findall(r"FEEDSVC_[A-Z_]+", (ROOT / "Dockerfile").read_text()))
    unknown = {n for n in names if n.startswith("FEEDSVC_")} - FIELDS - NOT_SETTINGS
    assert not unknown, f"not settings of feedsvc: {sorted(unknown)}"
    url = app["environment"]["FEEDSVC_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url


def test_the_image_migrates_then_runs_the_service() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M)
    assert entrypoint and "feedsvc db upgrade && exec feedsvc" in entrypoint.group(1)
    assert re.search(r'^CMD \["run"\]$', dockerfile, re.M)
    assert "/healthz" in dockerfile and "EXPOSE 8000" in dockerfile
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), f"the Dockerfile copies {copied}, which does not exist"
