"""The web archive on the demo's real digests: pages with the seed digest's anatomy and MathML, immutable
digests served from memory with ETag/304, protective headers, escaping of hostile scraped data, the
JSON API, /healthz, the signed one-click endpoints (GET shows, POST acts, RFC 8058), the subscription
form over a real SMTP server, a real uvicorn on loopback read by httpx and feedparser, and headless
Chromium screenshots. Set FEEDSVC_WRITE_DOCS_IMAGES=1 to refresh docs/img/web-*.png from the last test.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings, load_profiles
from feedsvc.demo import FULLTEXT_PAPERS, SNAPSHOT_DAY, SNAPSHOT_NOW, demo_profiles_path, replay_settings
from feedsvc.demo import snapshot_routes as demo_routes
from feedsvc.models import Candidate, Card, Digest, Discussion, Quote, SourceReport
from feedsvc.pipeline.collect import SOURCE_NAMES, collect
from feedsvc.pipeline.digest import Built, build_digests
from feedsvc.pipeline.library import fetch_papers
from feedsvc.pipeline.publish import publish
from feedsvc.replay import ReplayServer
from feedsvc.signing import make_token
from feedsvc.store import archive, delivery, queries
from feedsvc.store.db import make_engine, session_factory, session_scope, upgrade
from feedsvc.store.tables import (
    DeliveryRow,
    DigestRow,
    EntryRow,
    FeedbackRow,
    FullTextRow,
    RecipientRow,
    SubscriptionRow,
)
from feedsvc.web.app import CSP, create_app

SECRET = "test-secret-0123456789-abcdefghij"
BASE = "https://archive.example.org"
NOW = SNAPSHOT_NOW + timedelta(days=1)
DAY = SNAPSHOT_DAY.isoformat()
PROFILE = "graph-learning"  # the demo profile whose picks were read in full (key equations, breakdowns)
DOCS_IMG = Path(__file__).parent.parent / "docs" / "img"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# --- the demo store, built once per module; each test gets its own copy -----------------------------


def build_demo(data_dir: Path, database_url: str = "") -> list[Built]:
    """The offline demo (recorded arXiv, HN, Lobsters, YouTube answers over loopback) into `database_url`."""
    profiles = load_profiles(demo_profiles_path())
    with ReplayServer(demo_routes()) as server:
        settings = replay_settings(server.url, data_dir, database_url=database_url)
        engine = make_engine(settings.resolved_database_url())
        try:
            upgrade(engine)
            factory = session_factory(engine)
            collect(settings, factory, profiles, now=SNAPSHOT_NOW)
            fetch_papers(settings, factory, FULLTEXT_PAPERS, now=SNAPSHOT_NOW)
            return build_digests(settings, factory, profiles, day=SNAPSHOT_DAY, now=SNAPSHOT_NOW)
        finally:
            engine.dispose()


@dataclasses.dataclass(frozen=True)
class Demo:
    data_dir: Path
    built: dict[str, Built]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    data_dir = tmp_path_factory.mktemp("demo")
    built = build_demo(data_dir)
    return Demo(data_dir, {b.profile: b for b in built})


@pytest.fixture
def db(demo: Demo, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a private copy of the demo store."""
    shutil.copy(demo.data_dir / "feedsvc.db", tmp_path / "feedsvc.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'feedsvc.db'}")
    yield session_factory(engine)
    engine.dispose()


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'feedsvc.db'}",
        secret_key=SECRET,
        base_url=BASE,
    )
    values.update(kw)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def app(db: sessionmaker[Session], tmp_path: Path) -> FastAPI:
    return create_app(settings_for(tmp_path), db, clock=lambda: NOW)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as c:
        yield c


# --- reading HTML -------------------------------------------------------------------------------------


def squashed(text: str) -> str:
    """`text` without whitespace or `*emphasis*` marks: card prose as a page's text shows it."""
    return "".join(text.replace("*", "").split())


class Doc(HTMLParser):
    """The tags (with attributes), the text, and the text inside each element of interest."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.annotations: list[str] = []
        self.headings: list[str] = []
        self.chunks: list[str] = []
        self._capture: list[str] | None = None
        self._capture_tag = ""
        self.feed(source)
        self.text = " ".join(" ".join(self.chunks).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("annotation", "h1", "h2", "h3"):
            self._capture, self._capture_tag = [], tag

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and tag == self._capture_tag:
            text = "".join(self._capture)
            (self.annotations if tag == "annotation" else self.headings).append(text.strip())
            self._capture = None

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)
        if self._capture is not None:
            self._capture.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag]


def hrefs(doc: Doc) -> list[str]:
    return [a["href"] for a in doc.all("a") if "href" in a]


def assert_safe_markup(source: str) -> None:
    """No script, no event handler, no javascript: or data: link, every link http(s) or on this site."""
    doc = Doc(source)
    assert not doc.all("script") and "<script" not in source.lower()
    for tag, attrs in doc.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)  # the CSP allows no inline style
        for name in ("href", "src", "action"):
            value = attrs.get(name)
            if value is None or (tag == "link" and value == "data:,"):
                continue
            assert value.startswith(("https://", "http://", "/", "#")), (tag, name, value)


# --- pages ---------------------------------------------------------------------------------------------


def test_a_digest_page_has_the_seed_anatomy_every_card_and_its_equations_as_mathml(client, demo) -> None:
    digest = demo.built[PROFILE].digest
    r = client.get(f"/d/{PROFILE}/{DAY}")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    doc = Doc(r.text)
    assert doc.headings[0] == digest.title
    papers = sum(c.kind == "paper" for c in digest.cards)
    assert f"{papers} paper picks + 0 video picks" in doc.text
    assert "Author-talk check:" in doc.text and "Source-discovery note" in doc.headings
    cards = [a for a in doc.all("article") if a.get("class") == "card"]
    assert len(cards) == len(digest.cards) == 3
    links = hrefs(doc)
    for card in digest.cards:
        assert card.url in links  # each card's title links to its paper
        assert html.unescape(card.title) in doc.headings
        assert f"/item/{card.key}" in links  # and to its item page
        assert card.intuition[:60] in doc.text
    for label in ("Domain:", "Time cost:", "Intuition:", "Concrete punch:", "Why it matches:", "Deeper:"):
        assert doc.text.count(label) == 3, label
    for card in digest.cards:  # the sentence, not the ranker's numbers (those are on the item page)
        assert squashed(card.why) in squashed(doc.text) and card.evidence
        assert not any(squashed(e) in squashed(doc.text) for e in card.evidence)
    assert "How it was ranked" not in doc.text and "blend of" not in doc.text
    math = [q.text.strip() for c in digest.cards for q in c.punch if q.is_math]
    assert math and doc.annotations == math  # every key equation rendered, its LaTeX annotated
    assert len(doc.all("math")) >= len(math)
    assert not any("could not be typeset" in doc.text for _ in math)
    for report in digest.sources:
        assert report.note[:40] in doc.text
    assert_safe_markup(r.text)


def test_a_published_digest_is_rendered_once_and_revalidated_with_its_etag(client, app, db) -> None:
    first = client.get(f"/d/{PROFILE}/{DAY}")
    etag, cache = first.headers["etag"], first.headers["cache-control"]
    assert etag.startswith('"') and cache.startswith("public") and "max-age=" in cache
    assert client.get(f"/d/{PROFILE}/{DAY}", headers={"If-None-Match": etag}).status_code == 304
    not_modified = client.get(f"/d/{PROFILE}/{DAY}", headers={"If-None-Match": f'"other", W/{etag}'})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    with session_scope(db) as s:  # behind the app's back: the published page does not change
        s.execute(update(DigestRow).values(title="Changed afterwards"))
    again = client.get(f"/d/{PROFILE}/{DAY}")
    assert again.content == first.content and again.headers["etag"] == etag
    assert app.state.web.pages.get(("digest.html", PROFILE, DAY)) is not None
    other = client.get(f"/d/{PROFILE}/{DAY}", headers={"If-None-Match": '"something else"'})
    assert other.status_code == 200 and other.content == first.content


def test_protective_headers_on_every_response(client) -> None:
    paths = [
        "/",
        f"/d/{PROFILE}",
        f"/d/{PROFILE}/{DAY}",
        f"/d/{PROFILE}/atom.xml",
        "/api/digests/" + PROFILE,
        "/item/arxiv:2310.03240",
        "/search?q=graph",
        "/healthz",
        "/static/style.css",
        "/no/such/page",
        "/f/not-a-token",
        "/subscribe",
    ]
    for path in paths:
        r = client.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["strict-transport-security"].startswith("max-age="), path
    assert "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP and "script-src" not in CSP
    css = client.get("/static/style.css")
    assert css.headers["content-type"].startswith("text/css") and "immutable" in css.headers["cache-control"]
    home = Doc(client.get("/").text)
    [sheet] = [link for link in home.all("link") if link.get("rel") == "stylesheet"]
    assert client.get(sheet["href"]).content == css.content  # same-origin CSS, as the CSP wants


def test_the_home_page_shows_each_profiles_latest_bundle_and_the_archive_pages(client, db, demo) -> None:
    home = Doc(client.get("/").text)
    for built in demo.built.values():
        assert f"/d/{built.profile}/{DAY}" in hrefs(home)
        for card in built.digest.cards:
            assert card.title.split("$")[0][:40] in home.text
    # thirty-five days of digests: the archive pages by thirty, newest first
    base = demo.built[PROFILE].digest
    with session_scope(db) as s:
        for n in range(1, 35):
            queries.save_digest(s, dataclasses.replace(base, day=SNAPSHOT_DAY - timedelta(days=n)), "", NOW)
    page1 = Doc(client.get(f"/d/{PROFILE}").text)
    days = [h.rsplit("/", 1)[1] for h in hrefs(page1) if re.fullmatch(rf"/d/{PROFILE}/\d{{4}}-\d\d-\d\d", h)]
    assert len(days) == 30 and days == sorted(days, reverse=True) and days[0] == DAY
    assert "Page 1 of 2" in page1.text and f"/d/{PROFILE}?page=2" in hrefs(page1)
    page2 = Doc(client.get(f"/d/{PROFILE}?page=2").text)
    rest = [h for h in hrefs(page2) if re.fullmatch(rf"/d/{PROFILE}/\d{{4}}-\d\d-\d\d", h)]
    assert len(rest) == 5 and not set(rest) & {f"/d/{PROFILE}/{d}" for d in days}
    assert client.get(f"/d/{PROFILE}?page=3").status_code == 404
    assert client.get(f"/d/{PROFILE}?page=0").status_code == 400
    assert client.get("/d/nobody").status_code == 404
    assert client.get(f"/d/{PROFILE}/2024-02-30").status_code == 404
    assert client.get(f"/d/{PROFILE}/20241128").status_code == 404  # one address per digest
    assert client.get(f"/d/{PROFILE}/2001-01-01").status_code == 404


def test_the_item_page_shows_the_page_stored_with_the_digest_not_one_rebuilt(client, db, demo) -> None:
    key = "arxiv:2310.03240"
    before = client.get(f"/item/{key}").text
    assert "Formula notes" in before
    with session_scope(db) as s:  # the full text gone: the page is the digest's, not derived from it
        s.execute(delete(FullTextRow))
    assert client.get(f"/item/{key}").text == before
    with session_scope(db) as s:  # a digest from before pages were stored: the card, no breakdown
        s.execute(update(EntryRow).values(page=None))
    doc = Doc(client.get(f"/item/{key}").text)
    assert "Breakdown" not in doc.headings and "Formula notes" not in doc.headings
    assert doc.headings[0] == next(c.title for c in demo.built[PROFILE].digest.cards if c.key == key)


def test_an_item_page_has_its_card_breakdown_formula_notes_discussions_and_talks(client, db, demo) -> None:
    key = "arxiv:2310.03240"
    card = next(c for c in demo.built[PROFILE].digest.cards if c.key == key)
    page = demo.data_dir / "digests" / PROFILE / card.details  # the Markdown page the pipeline wrote
    notes_on_disk = re.findall(r"^### (.+)$", page.read_text(encoding="utf-8"), re.M)
    display_latex = re.findall(r"^\$\$\n(.+?)\n\$\$$", page.read_text(encoding="utf-8"), re.M | re.S)
    r = client.get(f"/item/{key}")
    assert r.status_code == 200
    doc = Doc(r.text)
    assert doc.headings[0] == card.title
    for section in (
        "Abstract",
        "Breakdown",
        "Overview",
        "Key contributions",
        "Methodology",
        "Formula notes",
        "Discussions",
        "Talks",
    ):
        assert section in doc.headings, section
    assert f"/d/{PROFILE}/{DAY}#card-1" in hrefs(doc)
    # the card's sentence, then the ranker's evidence with its numbers, a line each
    assert squashed(card.why) in squashed(doc.text) and card.evidence
    assert f"How it was ranked: score {card.score:.3f} in the {card.thread} thread:" in doc.text
    assert all(squashed(e) in squashed(doc.text) for e in card.evidence)
    note_headings = [h for h in doc.headings if h.startswith(("Eq. (", "Unnumbered display"))]
    assert len(note_headings) == len(notes_on_disk) > 3
    # every display of the Markdown page (key equation and notes, card's punch too) is MathML here
    assert set(display_latex) <= {html.unescape(a) for a in doc.annotations}
    assert "https://arxiv.org/pdf/" in " ".join(hrefs(doc))
    assert "No thread about it" in doc.text and "No talk about this paper" in doc.text

    # an HN thread about it, and a talk picked for it in a later digest
    story = Candidate(
        key="url:https://news.ycombinator.com/item?id=1",
        kind="link",
        title="Relational convs",
        text="",
        url="https://example.org/post",
        source="hn",
        meta={
            "about": key,
            "points": 412,
            "comments": 97,
            "discussion_url": "https://news.ycombinator.com/item?id=1",
        },
    )
    video = Candidate(
        key="youtube:abcdefghijk",
        kind="video",
        title="Relational convolutions explained",
        text="A talk.",
        url="https://www.youtube.com/watch?v=abcdefghijk",
        source="youtube",
    )
    talk = dataclasses.replace(
        card,
        key=video.key,
        kind="video",
        title=video.title,
        url=video.url,
        punch=(),
        talk_for=card.title,
        details="",
        time_cost="42 min",
    )
    later = dataclasses.replace(
        demo.built[PROFILE].digest, day=SNAPSHOT_DAY + timedelta(days=1), cards=(talk,)
    )
    with session_scope(db) as s:
        queries.upsert_candidates(s, [story, video], run_id=None, now=NOW)
        queries.save_digest(s, later, "", NOW)
    doc = Doc(client.get(f"/item/{key}").text)
    assert "https://news.ycombinator.com/item?id=1" in hrefs(doc)
    assert "412 points, 97 comments" in doc.text and "Hacker News" in doc.text
    assert "https://www.youtube.com/watch?v=abcdefghijk" in hrefs(doc) and f"/item/{video.key}" in hrefs(doc)
    talk_page = Doc(client.get(f"/item/{video.key}").text)
    assert f"/item/{key}" in hrefs(talk_page) and "A talk about" in talk_page.text
    assert client.get("/item/arxiv:0000.00000").status_code == 404


def test_an_old_style_arxiv_key_with_a_slash_has_a_page(client, db) -> None:
    c = Candidate(
        key="arxiv:math/0601001",
        kind="paper",
        title="An old paper",
        text="Old text.",
        url="https://arxiv.org/abs/math/0601001",
        source="arxiv",
    )
    with session_scope(db) as s:
        queries.upsert_candidates(s, [c], run_id=None, now=NOW)
    assert "An old paper" in client.get("/item/arxiv:math%2F0601001").text
    assert "An old paper" in client.get("/item/arxiv:math/0601001").text


def test_a_card_without_a_why_has_no_why_heading_on_its_pages(client, db, demo) -> None:
    c = Candidate(
        key="arxiv:2401.00001",
        kind="paper",
        title="A card that stands alone",
        text="Constructed text.",
        url="https://arxiv.org/abs/2401.00001",
        source="arxiv",
    )
    alone = dataclasses.replace(
        demo.built[PROFILE].digest.cards[0], key=c.key, title=c.title, url=c.url, why="", details=""
    )
    later = dataclasses.replace(demo.built[PROFILE].digest, day=date(2030, 1, 2), cards=(alone,))
    with session_scope(db) as s:
        queries.upsert_candidates(s, [c], run_id=None, now=NOW)
        queries.save_digest(s, later, "", NOW)
    for path in (f"/d/{PROFILE}/2030-01-02", f"/item/{c.key}"):
        r = client.get(path)
        assert r.status_code == 200 and "Intuition:" in r.text, path
        assert "Why it matches" not in r.text, path
    assert "Why it matches:" in client.get(f"/d/{PROFILE}/{DAY}").text  # the cards with a why keep it


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_scraped_strings_are_escaped_and_only_http_links_survive(client, db, demo) -> None:
    evil = Candidate(
        key="url:https://evil.example/x",
        kind="link",
        title=HOSTILE,
        text=HOSTILE + " $x<y$",
        url="javascript:alert(1)",
        source="lobsters",
        authors=(HOSTILE,),
    )
    card = Card(
        key=evil.key,
        kind="link",
        title=HOSTILE,
        url="javascript:alert(1)",
        domain=HOSTILE,
        time_cost=HOSTILE,
        intuition=HOSTILE,
        punch_intro=HOSTILE,
        punch=(
            Quote(r"\href{javascript:alert(1)}{x} + \style{color:red}{y}", HOSTILE, True),
            Quote(r"\frac{1}{2} \unknownmacro{</math><script>}", "x", True),
            Quote(HOSTILE, "x"),
        ),
        significance=HOSTILE,
        why=f"*{HOSTILE}*",
        thread=HOSTILE,
        score=1.0,
        discussions=(Discussion(site=HOSTILE, url="data:text/html,x", title=HOSTILE),),
    )
    digest = Digest(
        profile=PROFILE,
        day=date(2030, 1, 1),
        title=HOSTILE,
        summary=HOSTILE,
        cards=(card,),
        papers_wanted=1,
        videos_wanted=0,
        talk_check=HOSTILE,
        sources=(SourceReport("lobsters", "ok", 1, 1, 1, HOSTILE),),
        shortfall=HOSTILE,
    )
    with session_scope(db) as s:
        queries.upsert_candidates(s, [evil], run_id=None, now=NOW)
        queries.save_digest(s, digest, "", NOW)
    pages = [f"/d/{PROFILE}/2030-01-01", f"/item/{evil.key}", "/", f"/search?q={HOSTILE}", "/search?q=alert"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        assert_safe_markup(r.text)
        assert "&lt;script&gt;" in r.text or path.startswith("/search?q=alert"), path
    digest_page = client.get(f"/d/{PROFILE}/2030-01-01").text
    assert not re.search(r"<a\s[^>]*href=\"(?!https?://|/|#)", digest_page)
    assert not re.search(r"<m[a-z]+\s[^>]*(href|style)=", digest_page)  # \href, \style made no attribute
    assert "could not be typeset" in digest_page  # the unknown macro: shown as LaTeX, not broken math
    feed = client.get(f"/d/{PROFILE}/atom.xml")
    ET.fromstring(feed.content)  # still well-formed XML
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.get("bozo_exception")


# --- Atom and JSON -------------------------------------------------------------------------------------


def test_the_atom_feed_is_valid_atom_with_each_digest_as_html(client, demo) -> None:
    r = client.get(f"/d/{PROFILE}/atom.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    feed = ET.fromstring(r.content)
    assert feed.tag == f"{atom}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{atom}{required}") is not None, required
    assert {link.get("rel") for link in feed.findall(f"{atom}link")} == {"self", "alternate"}
    [entry] = feed.findall(f"{atom}entry")
    for required in ("id", "title", "updated", "content", "link"):
        assert entry.find(f"{atom}{required}") is not None, required
    assert entry.find(f"{atom}content").get("type") == "html"  # type: ignore[union-attr]
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo and parsed.version == "atom10"
    [e] = parsed.entries
    digest = demo.built[PROFILE].digest
    assert e.link == e.id == f"{BASE}/d/{PROFILE}/{DAY}"
    assert e.title == digest.title and e.updated_parsed[:3] == SNAPSHOT_NOW.timetuple()[:3]
    assert e.content[0].type == "text/html"
    body = Doc(e.content[0].value)
    for card in digest.cards:
        assert card.url in hrefs(body) and f"{BASE}/item/{card.key}" in hrefs(body)
    assert client.get("/d/nobody/atom.xml").status_code == 404


def test_the_json_api_serves_digests_and_items(client, demo) -> None:
    listing = client.get(f"/api/digests/{PROFILE}").json()
    assert listing["total"] == 1 and listing["digests"][0]["day"] == DAY
    assert listing["digests"][0]["url"] == f"{BASE}/d/{PROFILE}/{DAY}"
    r = client.get(listing["digests"][0]["api"].removeprefix(BASE))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    digest = demo.built[PROFILE].digest
    assert data["title"] == digest.title and data["day"] == DAY and data["profile"] == PROFILE
    assert [c["key"] for c in data["cards"]] == [c.key for c in digest.cards]
    assert [c["punch"][0]["text"] for c in data["cards"]] == [c.punch[0].text for c in digest.cards]
    assert client.get(r.request.url.path, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    item = client.get(data["cards"][0]["api"].removeprefix(BASE)).json()
    assert item["key"] == digest.cards[0].key and item["appearances"][0]["day"] == DAY
    assert item["breakdown"]["title"] == digest.cards[0].title and item["formula_notes"]
    missing = client.get("/api/items/arxiv:0000.00000")
    assert missing.status_code == 404 and missing.json() == {"error": "This item is not in the archive."}
    assert client.get("/api/digests/nobody").status_code == 404


def test_search_page_finds_titles_and_survives_hostile_queries(client) -> None:
    doc = Doc(client.get("/search?q=spectral filtering").text)
    assert "/item/arxiv:1606.09375" in hrefs(doc)
    assert "titles count more" in doc.text
    for q in [
        '"',
        "AND OR",
        "*",
        "'); drop table items; --",
        "NEAR(",
        "title:x",
        "^",
        "-",
        "\x00",
        "é" * 500,
    ]:
        r = client.get("/search", params={"q": q})
        assert r.status_code == 200, q
        assert_safe_markup(r.text)
    assert "Nothing to search for" in client.get("/search", params={"q": "*"}).text


# --- /healthz ------------------------------------------------------------------------------------------


def test_healthz_reports_database_scheduler_sources_and_outbox(client, db) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    h = r.json()
    assert h["database"]["ok"] is True and h["database"]["dialect"] == "sqlite"
    assert h["scheduler"]["status"] == "not running" and h["status"] == "degraded"
    assert [s["source"] for s in h["sources"]] == list(SOURCE_NAMES)
    assert {s["last_status"] for s in h["sources"]} <= {"ok", "empty", "failed", "never run"}
    assert h["outbox"] == {}
    with session_scope(db) as s:
        queries.sync_profiles(
            s,
            [
                dataclasses.replace(p, channels={"markdown": {"dir": "x"}})
                for p in load_profiles(demo_profiles_path())
            ],
            NOW,
        )
        delivery.enqueue_latest(s, NOW)
        archive.heartbeat(s, "scheduler", NOW - timedelta(seconds=30), "next: fetch at 19:00Z")
    h = client.get("/healthz").json()
    assert h["scheduler"]["status"] == "running" and h["scheduler"]["age_seconds"] == 30
    assert h["scheduler"]["detail"] == "next: fetch at 19:00Z"
    assert h["outbox"]["pending"] >= 2
    with session_scope(db) as s:
        archive.heartbeat(s, "scheduler", NOW - timedelta(hours=2))
    assert client.get("/healthz").json()["scheduler"]["status"] == "stale"


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    app = create_app(settings_for(tmp_path), session_factory(engine))
    with TestClient(app) as c:
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["database"]["ok"] is False and r.json()["status"] == "down"
        assert c.get("/static/style.css").status_code == 200


# --- the signed endpoints ------------------------------------------------------------------------------


def add_email_recipient(db: sessionmaker[Session], address: str = "reader@example.org") -> int:
    with session_scope(db) as s:
        delivery.create_subscription(s, PROFILE, "email", "code-" + address, NOW, timedelta(days=1), address)
        return delivery.redeem_subscription(s, "email", "code-" + address, NOW).recipient.id


def counts(db: sessionmaker[Session]) -> tuple[int, ...]:
    """What any state change would touch: votes, active recipients, used codes, cancelled deliveries."""
    with db() as s:
        queries_ = [
            select(func.count()).select_from(FeedbackRow),
            select(func.count()).select_from(RecipientRow).where(RecipientRow.active.is_(True)),
            select(func.count()).select_from(SubscriptionRow).where(SubscriptionRow.used.is_not(None)),
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "cancelled"),
        ]
        return tuple(s.scalar(q) or 0 for q in queries_)


def test_feedback_get_shows_post_records_and_bad_tokens_change_nothing(client, db, demo) -> None:
    rid = add_email_recipient(db)
    key = demo.built[PROFILE].digest.cards[1].key
    token = make_token(SECRET, "feedback", {"r": rid, "k": key, "v": "less"})
    before = counts(db)
    page = client.get(f"/f/{token}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    doc = Doc(page.text)
    [form] = doc.all("form")[-1:]
    assert form["method"] == "post" and form["action"] == f"/f/{token}"
    assert "less like this" in doc.text and demo.built[PROFILE].digest.cards[1].title in doc.text
    assert counts(db) == before  # GET changed nothing
    forged = make_token("another-secret-0123456789-abcdef", "feedback", {"r": rid, "k": key, "v": "up"})
    wrong_purpose = make_token(SECRET, "unsubscribe", {"r": rid})
    no_such_item = make_token(SECRET, "feedback", {"r": rid, "k": "arxiv:0000.00000", "v": "up"})
    bad_vote = make_token(SECRET, "feedback", {"r": rid, "k": key, "v": "love"})
    for bad in (forged, wrong_purpose, token[:-3] + "AAA", "garbage", no_such_item, bad_vote):
        for method in ("GET", "POST"):
            r = client.request(method, f"/f/{bad}")
            assert r.status_code == 400 and "Nothing was changed" in r.text, (method, bad)
    assert counts(db) == before
    done = client.post(f"/f/{token}")
    assert done.status_code == 200 and "Recorded" in done.text
    with db() as s:
        [vote] = queries.feedback_for(s, PROFILE)
        assert (vote.candidate.key, vote.vote) == (key, "less")
        assert s.scalar(select(FeedbackRow.recipient_id)) == rid
        assert s.scalar(select(FeedbackRow.channel)) == "email"


def test_unsubscribe_get_shows_and_a_one_click_post_acts(client, db) -> None:
    rid = add_email_recipient(db)
    with session_scope(db) as s:
        assert delivery.enqueue_latest(s, NOW, PROFILE) == 1
    token = make_token(SECRET, "unsubscribe", {"r": rid})
    before = counts(db)
    page = client.get(f"/u/{token}")
    assert (
        page.status_code == 200 and "r…r@example.org" in page.text and "reader@example.org" not in page.text
    )
    assert counts(db) == before
    # RFC 8058: the mail client POSTs this body to the List-Unsubscribe URL, no cookie, no other token
    r = client.post(
        f"/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "Unsubscribed" in r.text
    with db() as s:
        assert delivery.recipient_by_id(s, rid)[1] is False  # type: ignore[index]
        assert s.scalar(select(DeliveryRow.status).where(DeliveryRow.recipient_id == rid)) == "cancelled"
    assert client.post(f"/u/{token}").status_code == 200  # clicked twice: still fine
    assert "Already unsubscribed" in client.get(f"/u/{token}").text
    feedback_token = make_token(SECRET, "feedback", {"r": rid, "k": "arxiv:x", "v": "up"})
    assert client.post(f"/u/{feedback_token}").status_code == 400
    assert client.post(f"/u/{make_token(SECRET, 'unsubscribe', {'r': 99999})}").status_code == 400


def test_confirm_link_get_shows_post_subscribes_once(client, db) -> None:
    with session_scope(db) as s:
        delivery.create_subscription(s, PROFILE, "email", "abc123", NOW, timedelta(days=7), "new@example.org")
        delivery.create_subscription(
            s, PROFILE, "email", "old", NOW - timedelta(days=8), timedelta(days=7), "o@x.org"
        )
    token = make_token(SECRET, "confirm", {"c": "abc123"})
    before = counts(db)
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200 and "new@example.org" in page.text and PROFILE in page.text
    assert counts(db) == before
    done = client.post(f"/confirm/{token}")
    assert done.status_code == 200 and "Subscribed" in done.text
    with db() as s:
        assert [r.address for r in delivery.recipients_at(s, "email", "new@example.org")] == [
            "new@example.org"
        ]
    assert client.get(f"/confirm/{token}").status_code == 400  # used
    assert client.post(f"/confirm/{token}").status_code == 400
    expired = make_token(SECRET, "confirm", {"c": "old"})
    assert "expired" in client.get(f"/confirm/{expired}").text
    assert client.post(f"/confirm/{expired}").status_code == 400
    assert client.get(f"/confirm/{make_token(SECRET, 'confirm', {'c': 'nope'})}").status_code == 400


def test_without_a_secret_the_write_endpoints_are_503_and_the_archive_works(db, tmp_path) -> None:
    app = create_app(settings_for(tmp_path, secret_key=""), db)
    token = make_token(SECRET, "unsubscribe", {"r": 1})
    with TestClient(app) as c:
        for method, path in [
            ("GET", f"/u/{token}"),
            ("POST", f"/u/{token}"),
            ("GET", f"/f/{token}"),
            ("POST", f"/confirm/{token}"),
            ("GET", "/subscribe"),
            ("POST", "/subscribe"),
        ]:
            r = c.request(method, path)
            assert r.status_code == 503 and "not configured" in r.text, path
        assert c.get(f"/d/{PROFILE}/{DAY}").status_code == 200


def test_the_subscription_form_explains_what_went_wrong(client, db) -> None:
    form = Doc(client.get(f"/subscribe?profile={PROFILE}").text)
    assert [o.get("selected") for o in form.all("option") if o["value"] == PROFILE] == [""]
    before = counts(db)
    bad = client.post("/subscribe", data={"address": "not an address", "profile": PROFILE})
    assert bad.status_code == 400 and "does not look like an email address" in bad.text
    assert 'value="not an address"' in bad.text
    unknown = client.post("/subscribe", data={"address": "a@example.org", "profile": "nobody"})
    assert unknown.status_code == 400 and "Choose one of the profiles" in unknown.text
    no_mail = client.post("/subscribe", data={"address": "a@example.org", "profile": PROFILE})
    assert no_mail.status_code == 503 and "not configured" in no_mail.text  # no FEEDSVC_SMTP_HOST here
    assert counts(db) == before


def test_double_opt_in_over_real_smtp(db, tmp_path) -> None:
    pytest.importorskip("aiosmtpd")
    from smtp_server import running_smtp

    with running_smtp() as smtp:
        settings = settings_for(
            tmp_path,
            smtp_host=smtp.host,
            smtp_port=smtp.port,
            smtp_security="none",
            mail_from="feedsvc <feedsvc@example.org>",
        )
        with TestClient(create_app(settings, db, clock=lambda: NOW), base_url=BASE) as c:
            r = c.post("/subscribe", data={"address": "Reader@Example.org", "profile": PROFILE})
            assert r.status_code == 200 and "Check your inbox" in r.text
        assert smtp.received == []  # the request only records it: the publish run's outbox mails it
        assert publish(settings, db, now=NOW).confirmations == 1
        [mail] = smtp.received
    assert mail.rcpt_tos == ("Reader@Example.org",)
    text = mail.message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [url] = re.findall(rf"{re.escape(BASE)}/confirm/\S+", text)
    with db() as s:
        assert delivery.recipients_at(s, "email", "Reader@Example.org") == []  # not before the click
    with TestClient(create_app(settings, db, clock=lambda: NOW), base_url=BASE) as c:
        assert "Reader@Example.org" in c.get(url.removeprefix(BASE)).text
        assert c.post(url.removeprefix(BASE)).status_code == 200
    with db() as s:
        [recipient] = delivery.recipients_at(s, "email", "Reader@Example.org")
        assert recipient.profile == PROFILE


# --- a real server on loopback, a real feed reader, a real browser -------------------------------------


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def test_a_real_uvicorn_serves_pages_feed_and_one_click_unsubscribe(db, tmp_path, demo) -> None:
    rid = add_email_recipient(db)
    with serving(create_app(settings_for(tmp_path), db)) as url, httpx.Client(base_url=url) as http:
        page = http.get(f"/d/{PROFILE}/{DAY}")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        assert (
            http.get(f"/d/{PROFILE}/{DAY}", headers={"If-None-Match": page.headers["etag"]}).status_code
            == 304
        )
        head = http.head(f"/d/{PROFILE}/{DAY}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == page.headers["etag"]
        parsed = feedparser.parse(f"{url}/d/{PROFILE}/atom.xml")  # feedparser's own HTTP client
        assert parsed.status == 200 and not parsed.bozo and len(parsed.entries) == 1
        assert parsed.entries[0].title == demo.built[PROFILE].digest.title
        one_click = http.post(
            f"/u/{make_token(SECRET, 'unsubscribe', {'r': rid})}", data={"List-Unsubscribe": "One-Click"}
        )
        assert one_click.status_code == 200
        assert http.get("/healthz").json()["database"]["ok"] is True
    with db() as s:
        assert delivery.recipient_by_id(s, rid)[1] is False  # type: ignore[index]


def screenshot(url: str, out: Path, size: tuple[int, int], profile_dir: Path) -> None:
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--hide-scrollbars",
            f"--screenshot={out}",
            f"--window-size={size[0]},{size[1]}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def inked(png: Path, box: tuple[int, int, int, int] | None = None) -> float:
    """The share of pixels (in `box`) that differ clearly from the page's background colour."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB").crop(box) if box else im.convert("RGB"), dtype=np.int32)
    difference = np.abs(rgb - rgb[2, 2]).sum(axis=2)
    return float((difference > 60).mean())


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (the Debian package `chromium`)")
def test_chromium_screenshots_of_a_digest_and_an_item_page_with_equations(db, tmp_path) -> None:
    shots = {
        "web-digest.png": (f"/d/{PROFILE}/{DAY}", (1000, 2400)),
        "web-item.png": ("/item/arxiv:2310.03240", (1000, 3200)),
        "web-digest-phone.png": (f"/d/{PROFILE}/{DAY}", (400, 1800)),
        "web-search.png": ("/search?q=graph%20neural", (1000, 1400)),
    }
    with serving(create_app(settings_for(tmp_path), db)) as url:
        for name, (path, size) in shots.items():
            screenshot(url + path, tmp_path / name, size, tmp_path / "chromium")
    from PIL import Image

    for name, (_, size) in shots.items():
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size == size, name
        assert 0.02 < inked(tmp_path / name) < 0.6, name  # a page was drawn, not a blank or error screen
    if os.environ.get("FEEDSVC_WRITE_DOCS_IMAGES"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copy(tmp_path / name, DOCS_IMG / name)


def test_mathml_is_sanitised_and_unreadable_latex_falls_back_to_code() -> None:
    from feedsvc.web.mathml import to_mathml
    from feedsvc.web.templating import prose

    out = to_mathml(r"\href{javascript:alert(1)}{x} + \style{color:red}{y} + \color{red}{z}")
    assert out is not None and not re.search(r"\s(href|style)=", out) and 'mathcolor="red"' in out
    assert '<annotation encoding="application/x-tex">' in out
    assert to_mathml(r"\frac{a}{") is None  # cannot be parsed
    assert to_mathml(r"\unknownmacro{x}") is None  # would show a raw command
    assert to_mathml("a</math><script>") is not None and "<script>" not in to_mathml("a</math><script>")  # type: ignore[operator]
    assert "<math" in prose("Let $x_{1}$ be given.") and "$5 and $10" in prose("It costs $5 and $10.")
    assert "<code>$\\nope{x}$</code>" in prose(r"Then $\nope{x}$ holds.")
    assert "&lt;b&gt;" in prose("<b>bold</b> $y$")
