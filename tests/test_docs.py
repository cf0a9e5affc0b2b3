"""The docs stay honest: every setting is in the README's table with its real default."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from feedsvc.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_default() -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2].strip()
        for line in README.splitlines()
        if line.startswith("| `FEEDSVC_")
    }
    for name, field in Settings.model_fields.items():
        var = f"FEEDSVC_{name.upper()}"
        assert var in rows, f"{var} is missing from the README's settings table"
        value = field.default.get_secret_value() if isinstance(field.default, SecretStr) else field.default
        if isinstance(value, list):
            value = json.dumps(value)
        default = "(empty)" if value == "" else f"`{value}`"
        assert rows[var] == default, f"{var}: README says {rows[var]}, the code says {default}"
    assert set(rows) == {f"FEEDSVC_{n.upper()}" for n in Settings.model_fields}, (
        "README documents a setting that does not exist"
    )


def test_the_readme_commands_exist() -> None:
    from typer.main import get_command

    from feedsvc.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ("fetch", "digest", "demo", "db", "sources"):
        assert name in commands and f"feedsvc {name}" in README
