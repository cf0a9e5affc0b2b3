"""The CLI's error contract, as a user meets it: one line on stderr naming what is wrong, no traceback, no
secret; a real process each time (issue 12, item 7 and item 5)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from telegram_double import TelegramDouble
from test_cli import feedsvc

PROFILE = """
[[profile]]
name = "me"
arxiv_categories = ["cs.LG"]
  [[profile.thread]]
  name = "RL"
  about = "reinforcement learning"
"""


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The single non-empty stderr line, asserting there is exactly one and no traceback."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def env_for(tmp_path: Path, profiles: str = PROFILE, **extra: str) -> dict[str, str]:
    path = tmp_path / "profiles.toml"
    path.write_text(profiles, encoding="utf-8")
    return {"FEEDSVC_DATA_DIR": str(tmp_path / "data"), "FEEDSVC_PROFILES_PATH": str(path), **extra}


def test_rich_markup_in_an_argument_is_printed_not_parsed(tmp_path: Path) -> None:
    r = feedsvc("digest", "--profile", "[/i]", env=env_for(tmp_path))
    assert r.returncode == 2
    assert "no profile named '[/i]'" in one_error_line(r)


@pytest.mark.parametrize(
    ("profiles", "needle"),
    [
        ("", "defines no profile (expected at least one [[profile]] table)"),
        (PROFILE.replace('name = "me"', 'name = "me"\nmax_age_days = 3000000'), "field 'max_age_days'"),
        (PROFILE.replace('name = "RL"', 'name = "RL"\nshare = inf'), "field 'thread.0.share'"),
        (PROFILE.replace('name = "me"', 'name = "me"\nexplore = "yes"'), "field 'explore'"),
        (PROFILE + "  [profile.channels]\n  pigeon = { to = 'x' }\n", "field 'channels.pigeon'"),
    ],
)
def test_a_bad_profile_file_is_one_line_naming_the_field(tmp_path: Path, profiles: str, needle: str) -> None:
    r = feedsvc("digest", env=env_for(tmp_path, profiles))
    assert r.returncode == 2
    assert needle in one_error_line(r)


def test_a_locked_sqlite_database_is_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, FEEDSVC_DISABLED_SOURCES='["arxiv","hn","lobsters","youtube"]')
    assert feedsvc("db", "upgrade", env=env).returncode == 0
    holder = sqlite3.connect(tmp_path / "data" / "feedsvc.db")
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process mid-write, for longer than the busy timeout
        r = feedsvc("feedback", "arxiv:1801.01290", "--profile", "me", "--vote", "up", env=env)
    finally:
        holder.rollback()
        holder.close()
    assert r.returncode == 1
    assert "the database is locked by another process" in one_error_line(r)


def test_a_full_disk_is_one_line(tmp_path: Path, full_disk: Path) -> None:
    filler = full_disk / "filler"
    with filler.open("wb") as f, pytest.raises(OSError):
        f.write(b"\0" * (2 << 20))  # the tmpfs is now full
    env = env_for(tmp_path, FEEDSVC_DATA_DIR=str(full_disk / "data"))
    r = feedsvc("db", "upgrade", env=env)
    assert r.returncode == 1
    line = one_error_line(r)
    assert "full" in line or "No space left" in line or "no space left" in line


@pytest.mark.parametrize("command", ["bot", "run"])
def test_a_rejected_telegram_token_is_never_printed(tmp_path: Path, command: str) -> None:
    token = "987654:AAFakeTokenThatTelegramRejects0123456789"
    env = env_for(tmp_path, FEEDSVC_TELEGRAM_BOT_TOKEN=token, FEEDSVC_SECRET_KEY="k" * 40)
    assert feedsvc("db", "upgrade", env=env).returncode == 0
    with TelegramDouble() as telegram:  # answers 401 to any token but its own
        r = feedsvc(command, env={**env, "FEEDSVC_TELEGRAM_API_URL": telegram.api_url})
    assert r.returncode != 0
    assert token not in r.stderr + r.stdout
    assert token.split(":")[1] not in r.stderr + r.stdout
    one_error_line(r)
