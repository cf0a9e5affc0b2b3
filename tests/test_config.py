"""Settings and profiles: the example loads; a bad file names the file, the profile and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedsvc.config import Settings, example_profiles_path, load_profiles, profiles_for
from feedsvc.models import ConfigError

GOOD = """
[[profile]]
name = "me"
arxiv_categories = ["cs.LG"]
  [[profile.thread]]
  name = "RL"
  seed_papers = ["1801.01290v2", "https://arxiv.org/abs/2006.04779"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "profiles.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_example_profile_is_the_seed_reader() -> None:
    [p] = load_profiles(example_profiles_path())
    assert [t.name for t in p.threads] == [
        "RL theory",
        "Generative modelling",
        "Market microstructure and control",
    ]
    assert (p.papers, p.videos, p.max_age_days) == (3, 2, 365)
    assert "1801.01290" in p.threads[0].seed_papers


def test_defaults_and_seed_ids_are_normalised(tmp_path: Path) -> None:
    [p] = load_profiles(write(tmp_path, GOOD))
    assert (p.timezone, p.send_at, p.papers, p.videos) == ("UTC", "07:30", 3, 2)
    assert p.threads[0].seed_papers == ("1801.01290", "2006.04779")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace('name = "me"', 'name = "me"\nsend_at = "7.30"'), "profile 'me': field 'send_at'"),
        (
            GOOD.replace('name = "me"', 'name = "me"\ntimezone = "Mars/Olympus"'),
            "unknown time zone 'Mars/Olympus'",
        ),
        (GOOD.replace('name = "me"', 'name = "me"\npapers = -1'), "profile 'me': field 'papers'"),
        (
            GOOD.replace('seed_papers = ["1801.01290v2"', 'seed_papers = ["soft actor critic"'),
            "field 'thread.0.seed_papers'",
        ),
        (
            GOOD.replace('name = "me"', 'name = "me"\npaper = 3'),
            "field 'paper': Extra inputs are not permitted",
        ),
        (GOOD.replace('name = "RL"', 'about = "no name"'), "field 'thread.0.name': Field required"),
        ('[[profile]]\nname = "me"\n', "profile 'me': field 'thread': Field required"),
        (GOOD.replace('name = "me"', 'name = "Me Too"'), "profile 'Me Too': field 'name'"),
        (GOOD + GOOD, "profile 'me': field 'name': defined twice"),
        ("title = 'x'", "defines no profile (expected at least one [[profile]] table)"),
        ("", "defines no profile"),
        (GOOD.replace('name = "me"', 'name = "me"\nmax_age_days = 3000000'), "field 'max_age_days'"),
        (GOOD.replace('name = "RL"', 'name = "RL"\nshare = inf'), "field 'thread.0.share'"),
        (GOOD.replace('name = "RL"', 'name = "RL"\nshare = nan'), "field 'thread.0.share'"),
        (GOOD.replace('name = "me"', 'name = "me"\nexplore = "yes"'), "field 'explore'"),
        (GOOD + "  [profile.channels]\n  telegarm = { chat_id = 1 }\n", "field 'channels.telegarm'"),
        (GOOD + '  [profile.channels]\n  email = { to = "nobody" }\n', "field 'channels.email.to'"),
        (
            GOOD + '  [profile.channels]\n  telegram = { chat_id = "x" }\n',
            "field 'channels.telegram.chat_id'",
        ),
        ("[[profile]\nname=", "not valid TOML"),
    ],
)
def test_bad_profiles_name_the_file_the_profile_and_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_profiles(path)
    assert str(e.value).startswith(str(path))
    assert expected in str(e.value)


def test_a_missing_explicit_profile_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile file not found"):
        profiles_for(Settings(profiles_path=tmp_path / "nope.toml"))


def test_settings_come_from_the_environment_with_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FEEDSVC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEEDSVC_ARXIV_DELAY_SECONDS", "5")
    s = Settings()
    assert s.arxiv_delay_seconds == 5.0
    assert s.resolved_database_url() == f"sqlite:///{tmp_path.as_posix()}/feedsvc.db"
    monkeypatch.setenv("FEEDSVC_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert Settings().resolved_database_url() == "postgresql+psycopg://u@h/db"
