"""The deployment files, the checks that need no container engine: the compose file's dependencies that
podman 4.3 does not enforce (the tier below cannot see them), the required secrets failing fast, every
FEEDSVC_ variable set being a real setting, and the shell scripts parsing. The image and the stack
themselves are built and run by the container tier, tests/test_container.py."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from feedsvc.config import Settings

ROOT = Path(__file__).parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
FIELDS = {f"FEEDSVC_{name.upper()}" for name in Settings.model_fields}
# compose's own variables: secrets it hands on, ports, the images and files it uses
NOT_SETTINGS = {
    "FEEDSVC_DB_PASSWORD",
    "FEEDSVC_PUBLISH_PORT",
    "FEEDSVC_FRONT_PORT",
    "FEEDSVC_BASE_IMAGE",
    "FEEDSVC_POSTGRES_IMAGE",
    "FEEDSVC_PROFILES_FILE",
    "FEEDSVC_ENV_FILE",
}


def test_postgres_is_healthy_before_feedsvc_starts() -> None:
    db, app = COMPOSE["services"]["db"], COMPOSE["services"]["feedsvc"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert any(v.startswith("feedsvc-data:") for v in app["volumes"])


def test_required_secrets_fail_fast() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("FEEDSVC_DB_PASSWORD", "FEEDSVC_SECRET_KEY"):
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must use ${{VAR:?message}}"


def test_every_variable_set_is_a_real_setting() -> None:
    app = COMPOSE["services"]["feedsvc"]
    names = set(app["environment"])
    names |= {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    names |= set(re.findall(r"FEEDSVC_[A-Z_]+", (ROOT / "Dockerfile").read_text()))
    names |= set(re.findall(r"FEEDSVC_[A-Z_]+", (ROOT / "docker-compose.yml").read_text()))
    unknown = {n for n in names if n.startswith("FEEDSVC_")} - FIELDS - NOT_SETTINGS
    assert not unknown, f"not settings of feedsvc: {sorted(unknown)}"
    url = app["environment"]["FEEDSVC_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url


@pytest.mark.parametrize(
    "script", ["deploy/podman-setup.sh", "deploy/postgres-entrypoint.sh", "deploy/front-entrypoint.sh"]
)
def test_the_deploy_scripts_parse(script: str) -> None:
    checked = subprocess.run(["bash", "-n", ROOT / script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_package_list_names_every_subpackage() -> None:
    """A plain `pip install .` (the image's) ships only the listed packages: a missing one installs fine
    and fails at the first import in the container (feedsvc.pipeline once did)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "feedsvc").rglob("__init__.py")
        if not init.parent.is_symlink() and "migrations" not in init.parts and "templates" not in init.parts
    }
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
