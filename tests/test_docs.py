"""The docs stay honest: every setting is in the README's table with its real default."""

from __future__ import annotations

from pathlib import Path

from feedsvc.config import Settings, settings_table

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_default() -> None:
    """The README holds exactly the table generated from Settings (regenerate it with
    `python -c "from feedsvc.config import settings_table; print(settings_table())"`)."""
    assert settings_table() in README, "the README's settings table is out of date"
    assert README.count("| `FEEDSVC_") == len(Settings.model_fields)
    for name in Settings.model_fields:
        assert f"`FEEDSVC_{name.upper()}`" in README


def test_the_readme_commands_exist() -> None:
    from typer.main import get_command

    from feedsvc.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in (
        "fetch",
        "digest",
        "demo",
        "db",
        "sources",
        "rank",
        "card",
        "profile",
        "feedback",
        "eval",
        "publish",
        "deliveries",
        "subscribe",
        "bot",
        "run",
        "worker",
        "serve",
    ):
        assert name in commands and f"feedsvc {name}" in README


def test_the_readme_layout_names_every_module() -> None:
    layout = README.split("## Layout", 1)[1].split("```", 2)[1]
    package = Path(__file__).parent.parent / "feedsvc"
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent.name == "sources"]
    missing = [
        str(p.relative_to(package)) for p in modules if f" {p.name} " not in f" {' '.join(layout.split())} "
    ]
    assert not missing, f"README's layout does not name: {missing}"
