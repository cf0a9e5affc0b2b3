"""The demo day built into a test's store: the recorded snapshot of 2024-11-28 replayed on loopback,
fetched and ranked for the example profile (without its channels: each test adds its own recipients)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.demo import replay_settings, snapshot_routes
from feedsvc.models import Digest, Profile
from feedsvc.pipeline.collect import collect
from feedsvc.pipeline.digest import build_digests
from feedsvc.replay import ReplayServer

DAY = date(2024, 11, 28)
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)


@dataclass(frozen=True)
class DemoDay:
    settings: Settings
    profile: Profile
    digest: Digest


@contextmanager
def demo_day(factory: sessionmaker[Session], data_dir: Path, **overrides: object) -> Iterator[DemoDay]:
    """The day's digest built into the store; the replay (and so `settings`' source URLs) runs while the
    block does, so later digests in the block can be built too. `overrides` are settings."""
    [profile] = load_profiles(example_profiles_path())
    profile = replace(profile, channels={})
    with ReplayServer(snapshot_routes()) as replay:
        settings = replay_settings(replay.url, data_dir, **overrides)
        collect(settings, factory, [profile], now=NOW)
        [built] = build_digests(settings, factory, [profile], day=DAY, now=NOW)
        yield DemoDay(settings, profile, built.digest)
