"""Issue 17 part 2 from every channel that sets a cadence, on both databases: the email footer's signed
settings link (mail through a real SMTP server, the page through the web app) followed by the weekly
bundle and a quiet week's one line arriving by mail; the bot's /settings against the Telegram double;
and the settings page under uvicorn, opened in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from demo_day import demo_day
from fastapi.testclient import TestClient
from smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401  (the smtp_server fixture)
from sqlalchemy import select
from telegram_double import TelegramDouble

from feedsvc.models import Cadence
from feedsvc.pipeline.cadence import send_due
from feedsvc.pipeline.publish import publish
from feedsvc.pipeline.subscribe import new_telegram_code
from feedsvc.signing import make_token
from feedsvc.store import cadence as store
from feedsvc.store.db import session_scope
from feedsvc.store.tables import ProfileRow, RecipientRow
from feedsvc.web.app import create_app

DAY = date(2024, 11, 28)  # the demo day, a Thursday
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
SECRET = "test-secret-key-for-signing-links"
BASE = "http://testserver"
READER = "reader@example.org"


def _email_recipient(factory, profile: str) -> int:
    with session_scope(factory) as s:
        pid = s.scalar(select(ProfileRow.id).where(ProfileRow.name == profile))
        row = RecipientRow(profile_id=pid, channel="email", address=READER, created=NOW)
        s.add(row)
        s.flush()
        return row.id


def _plain(mail) -> str:
    return mail.message().get_body(preferencelist=("plain",)).get_content()


def test_the_email_footer_links_to_settings_and_the_weekly_bundle_follows(
    tmp_path, factory, smtp_server: SmtpServer
) -> None:
    with demo_day(
        factory,
        tmp_path / "data",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        secret_key=SECRET,
        base_url=BASE,
        mail_from="Daily Feed <digest@feedsvc.example>",
    ) as day:
        settings, profile = day.settings, day.profile
        rid = _email_recipient(factory, profile.name)
        client = TestClient(create_app(settings, factory, clock=lambda: NOW))
        assert publish(settings, factory, now=NOW).sent == 1
        [daily_mail] = smtp_server.received
        [url] = re.findall(rf"{re.escape(BASE)}/s/[A-Za-z0-9_.\-]+", _plain(daily_mail))
        assert "Delivery settings" in daily_mail.message().get_body(preferencelist=("html",)).get_content()
        page = client.get(urlsplit(url).path)
        assert page.status_code == 200 and "daily at 07:30 (Europe/Berlin)" in page.text
        with session_scope(factory) as s:
            assert store.cadence_of(s, rid) is None  # a GET (a mail scanner) changes nothing
        bad = client.post(
            urlsplit(url).path,
            data={"every": "weekly", "day": "thursday", "send_at": "19:30", "timezone": "Mars/Olympus"},
        )
        assert bad.status_code == 400 and "Nothing was changed" in bad.text
        form = {
            "every": "weekly",
            "day": "thursday",
            "send_at": "19:30",
            "timezone": "Europe/Berlin",
            "note": "on",
        }
        saved = client.post(urlsplit(url).path, data=form)
        assert saved.status_code == 200 and "weekly on Thursday at 19:30 (Europe/Berlin)" in saved.text
        with session_scope(factory) as s:
            assert store.cadence_of(s, rid) == Cadence("weekly", 3, "19:30", "Europe/Berlin", True)

        # 19:30 in Berlin: the week's own bundle, none of the daily picks the reader already had
        at = datetime(2024, 11, 28, 18, 31, tzinfo=UTC)
        assert send_due(settings, factory, [profile], at).enqueued == 1
        assert publish(settings, factory, now=at).sent == 1
        weekly_mail = smtp_server.received[-1]
        assert weekly_mail.message()["Subject"].startswith("Weekly Feed - week to 2024-11-28")
        text = _plain(weekly_mail)
        assert not any(c.url in text for c in day.digest.cards)
        # a week later nothing new was fetched: the one line the reader asked for, with the links
        later = datetime(2024, 12, 5, 18, 31, tzinfo=UTC)
        assert send_due(settings, factory, [profile], later).enqueued == 1
        assert publish(settings, factory, now=later).sent == 1
        quiet = smtp_server.received[-1]
        assert "Nothing cleared the bar this week for seed-reader." in _plain(quiet)
        assert re.search(rf"{re.escape(BASE)}/s/", _plain(quiet)) and len(smtp_server.received) == 3


def test_forged_and_wrong_purpose_settings_links_change_nothing(tmp_path, factory) -> None:
    with demo_day(factory, tmp_path / "data", secret_key=SECRET, base_url=BASE) as day:
        rid = _email_recipient(factory, day.profile.name)
        client = TestClient(create_app(day.settings, factory, clock=lambda: NOW))
        forged = make_token("another-secret-0123456789-abcdef", "settings", {"r": rid})
        wrong = make_token(SECRET, "unsubscribe", {"r": rid})
        form = {"every": "weekly", "day": "monday", "send_at": "08:00", "timezone": "UTC"}
        for token in (forged, wrong, "garbage"):
            assert client.get(f"/s/{token}").status_code == 400
            assert client.post(f"/s/{token}", data=form).status_code == 400
        with session_scope(factory) as s:
            assert store.cadence_of(s, rid) is None


# --- the bot ----------------------------------------------------------------------------------------------

CHAT = 4242


def test_the_bot_shows_and_changes_the_cadence_with_settings(tmp_path, factory) -> None:
    from test_bot import converse

    with (
        TelegramDouble(poll_wait=0.05) as tg,
        demo_day(
            factory,
            tmp_path / "data",
            telegram_bot_token=tg.token,
            telegram_api_url=tg.api_url,
            telegram_chat_interval=0.0,
        ) as day,
    ):
        settings = day.settings
        replies = lambda: [c.params["text"] for c in tg.messages(CHAT)]  # noqa: E731
        code = new_telegram_code(factory, day.profile.name, NOW)
        converse(settings, factory, tg, lambda: tg.enqueue_message(CHAT, f"/start {code}"), replies)
        assert {c["command"] for c in tg.commands} >= {"settings"}
        steps = ["/settings", "/settings weekly mon 08:00 America/New_York note", "/settings fortnightly"]
        for n, step in enumerate(steps, start=2):
            converse(
                settings,
                factory,
                tg,
                lambda step=step: tg.enqueue_message(CHAT, step),
                lambda n=n: len(replies()) >= n,
            )
        shown, saved, refused = replies()[1:4]
        assert "daily at 07:30 (Europe/Berlin)" in shown and "/settings weekly mon" in shown
        assert saved.startswith("Saved.") and "weekly on Monday at 08:00 (America/New_York)" in saved
        assert refused.startswith("Nothing changed:") and "fortnightly" in refused
        with session_scope(factory) as s:
            [rid] = s.scalars(select(RecipientRow.id).where(RecipientRow.channel == "telegram")).all()
            assert store.cadence_of(s, rid) == Cadence("weekly", 0, "08:00", "America/New_York", True)


# --- the page in a browser --------------------------------------------------------------------------------


@pytest.fixture
def sqlite_factory(tmp_path):
    from feedsvc.store.db import make_engine, session_factory, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'browser.db'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def test_the_settings_page_in_headless_chromium(tmp_path, sqlite_factory) -> None:
    from test_web import CHROMIUM, inked, screenshot, serving

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Chromium (the Debian package `chromium`)")
    with demo_day(sqlite_factory, tmp_path / "data", secret_key=SECRET, base_url=BASE) as day:
        rid = _email_recipient(sqlite_factory, day.profile.name)
        with session_scope(sqlite_factory) as s:
            store.set_cadence(s, rid, Cadence("weekly", 4, "06:45", "Asia/Tokyo", True), NOW)
        token = make_token(SECRET, "settings", {"r": rid})
        with serving(create_app(day.settings, sqlite_factory)) as url:
            screenshot(f"{url}/s/{token}", tmp_path / "settings.png", (900, 1000), tmp_path / "chromium")
            dom = subprocess.run(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    f"--user-data-dir={tmp_path / 'c2'}",
                    "--dump-dom",
                    f"{url}/s/{token}",
                ],
                capture_output=True,
                text=True,
                timeout=180,
                check=True,
            ).stdout
    assert 0.02 < inked(tmp_path / "settings.png") < 0.6  # a page was drawn, not a blank or error screen
    assert "weekly on Friday at 06:45 (Asia/Tokyo)" in dom
    assert re.search(r'<option value="friday" selected="">', dom) and 'value="06:45"' in dom
    assert re.search(r'name="note" value="on" checked=""', dom)
