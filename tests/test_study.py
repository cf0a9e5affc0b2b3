"""The study list (issue 17 part 1): a reader's imported, liked and seed papers, read in bounded runs for
their breakdown and difficulty, shown on the web (page, Atom, JSON), in the bot's `/library` and as
Markdown; on SQLite and PostgreSQL.

The world: the three papers whose arXiv HTML the demo bundles, served over loopback by the demo's replay
server and fetched by id (`fetch --ids`); a profile that seeds a thread with one of them, imports another
from a BibTeX file (tagged canonical there) and votes 👍 on the third.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from telegram_double import TelegramDouble
from test_bot import CHAT, converse, replies
from test_web import CHROMIUM, inked, screenshot, serving

from feedsvc.cards.difficulty import difficulty, prose_grade, syllables
from feedsvc.cards.writer import parse_fulltext
from feedsvc.config import Settings
from feedsvc.demo import FULLTEXT_PAPERS, replay_settings, snapshot_routes
from feedsvc.models import Profile, SourceError, StudyList, Thread
from feedsvc.pipeline.library import fetch_papers, import_library
from feedsvc.pipeline.study import cited_ids, read_library_papers, study_list, summary
from feedsvc.pipeline.subscribe import new_telegram_code
from feedsvc.render.study import study_markdown, study_telegram
from feedsvc.replay import ReplayServer
from feedsvc.sources.library_file import read_library
from feedsvc.store import delivery, queries, study
from feedsvc.store.db import session_scope
from feedsvc.web.app import create_app

NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
CHEB, SPHERE, RELATIONAL = (f"arxiv:{i}" for i in FULLTEXT_PAPERS)
BASE = "https://digest.example.org"
PROFILE = Profile(
    name="graphs",
    threads=(
        Thread(name="Spherical CNNs", about="convolutions on the sphere", seed_papers=("2012.15000",)),
        Thread(name="Relations", about="relational reasoning"),
    ),
)
BIB = """
@article{cheb, eprint={1606.09375}, archivePrefix={arXiv}, keywords={Canonical, spectral}}
@article{lost, title={A Paper arXiv Cannot Be Asked About}, author={Ann Reader}, year={1999},
  eprint={2401.00001}, archivePrefix={arXiv}, abstract={Notes on a machine. It computes.}}
"""


@dataclass(frozen=True)
class World:
    settings: Settings
    factory: sessionmaker[Session]
    server: ReplayServer


@pytest.fixture
def world(tmp_path: Path, factory: sessionmaker[Session]) -> Iterator[World]:
    with ReplayServer(snapshot_routes()) as server:
        settings = replay_settings(server.url, tmp_path, arxiv_delay_seconds=0.0, base_url=BASE)
        fetch_papers(settings, factory, FULLTEXT_PAPERS, now=NOW)
        (tmp_path / "library.bib").write_text(BIB, encoding="utf-8")

        def arxiv_down(ids):
            raise SourceError("arxiv", "HTTP 503")

        got = import_library(
            settings, factory, [PROFILE], "graphs", tmp_path / "library.bib", lookup=arxiv_down, now=NOW
        )
        assert (got.read, got.added, got.problems) == (2, 2, [])  # the second kept as the file gives it
        with session_scope(factory) as session:
            queries.record_feedback(
                session, "graphs", RELATIONAL, "up", channel="cli", now=NOW + timedelta(hours=1)
            )
        yield World(settings, factory, server)


def shelf_of(factory: sessionmaker[Session], **filters: str) -> StudyList:
    with session_scope(factory) as session:
        found = study_list(session, "graphs", **filters)
    assert found is not None
    return found


def read_all(w: World) -> None:
    got = read_library_papers(w.settings, w.factory, [PROFILE], limit=10, now=NOW)
    assert got.read == 4 and got.pages == 3 and got.waiting == 0


# --- the list ------------------------------------------------------------------------------------------


def test_the_list_gathers_imported_liked_and_seed_papers_newest_first(world: World) -> None:
    shelf = shelf_of(world.factory)
    # the vote came an hour after the imports; papers that came together are shown newest paper first
    assert [e.key for e in shelf.entries] == [RELATIONAL, SPHERE, CHEB, "arxiv:2401.00001"]
    by_key = {e.key: e for e in shelf.entries}
    assert by_key[RELATIONAL].tags == ("liked",) and by_key[SPHERE].tags == ("seed",)
    assert by_key[CHEB].tags == ("imported", "canonical", "spectral")  # the file's own tags, lower case
    assert by_key[SPHERE].threads == ("Spherical CNNs",) and by_key[CHEB].threads == ("",)
    assert by_key[RELATIONAL].threads == ()  # voted outside any digest: no thread known
    lost = by_key["arxiv:2401.00001"]
    assert (lost.title, lost.authors, lost.year) == (
        "A Paper arXiv Cannot Be Asked About",
        ("Ann Reader",),
        1999,
    )
    assert lost.url == "https://arxiv.org/abs/2401.00001"
    assert not any(e.breakdown for e in shelf.entries)  # nothing read yet
    assert all(e.difficulty_why.endswith("inline formulas per 100 words)") for e in shelf.entries)
    assert shelf.threads == ("Spherical CNNs",) and shelf.tags == (
        "canonical",
        "imported",
        "liked",
        "seed",
        "spectral",
    )
    # a later 👎 takes a paper off the list; the thread filter keeps papers seeding every thread
    with session_scope(world.factory) as session:
        queries.record_feedback(
            session, "graphs", RELATIONAL, "down", channel="cli", now=NOW + timedelta(hours=2)
        )
    assert RELATIONAL not in {e.key for e in shelf_of(world.factory).entries}
    only = shelf_of(world.factory, thread="Spherical CNNs")
    assert [e.key for e in only.entries] == [SPHERE, CHEB, "arxiv:2401.00001"] and only.total == 3
    assert [e.key for e in shelf_of(world.factory, tag="canonical").entries] == [CHEB]
    with session_scope(world.factory) as session:
        assert study_list(session, "nobody") is None


def test_reading_is_bounded_polite_and_builds_each_breakdown_once(world: World) -> None:
    before = len(world.server.requests)
    first = read_library_papers(world.settings, world.factory, [PROFILE], limit=2, now=NOW)
    assert (first.read, first.waiting) == (2, 2)
    rest = read_library_papers(world.settings, world.factory, [PROFILE], limit=10, now=NOW)
    assert (rest.read, rest.waiting, first.pages + rest.pages) == (2, 0, 3)
    # the bundled papers' texts were already stored by `fetch --ids`; only the unknown paper was asked for
    asked = [r.path for r in world.server.requests[before:]]
    assert asked == ["/html/2401.00001", "/e-print/2401.00001"]
    assert first.fetched + rest.fetched == 1 and any(
        "2401.00001: no full text" in p for p in first.problems + rest.problems
    )
    again = read_library_papers(world.settings, world.factory, [PROFILE], limit=10, now=NOW)
    assert again.read == 0 and len(world.server.requests) == before + 2
    shelf = shelf_of(world.factory)
    assert {e.key for e in shelf.entries if e.breakdown} == {CHEB, SPHERE, RELATIONAL}
    assert all("from the full text" in e.difficulty_why for e in shelf.entries if e.breakdown)
    with session_scope(world.factory) as session:
        cheb = study.library_page(session, CHEB)
    assert cheb is not None and cheb[1]["breakdown"]["title"].startswith(
        "Convolutional Neural Networks on Graphs"
    )


def test_a_paper_cited_by_two_read_papers_of_the_list_is_canonical(world: World) -> None:
    read_all(world)
    assert shelf_of(world.factory, tag="canonical").entries[0].key == CHEB  # the file's tag only
    with session_scope(world.factory) as session:  # the two other read papers' references name the lost one
        for key in (SPHERE, RELATIONAL):
            study.save_page(session, key, None, {}, ["2401.00001", "9999.99999"], NOW)
    by_key = {e.key: e for e in shelf_of(world.factory).entries}
    assert by_key["arxiv:2401.00001"].cited_by == 2 and "canonical" in by_key["arxiv:2401.00001"].tags
    assert by_key[CHEB].cited_by == 0


# --- the web -------------------------------------------------------------------------------------------


def test_the_page_json_and_atom_feed(world: World) -> None:
    read_all(world)
    client = TestClient(create_app(world.settings, world.factory))
    page = client.get("/library/graphs")
    assert page.status_code == 200 and "Study list of <em>graphs</em>" in page.text
    assert page.text.count('<li id="paper-') == 4 and page.text.count("Read the breakdown →") == 3
    assert (
        f'href="/item/{CHEB}#breakdown"' in page.text and 'href="/library/graphs?tag=canonical"' in page.text
    )
    filtered = client.get("/library/graphs", params={"tag": "liked"})
    assert filtered.text.count('<li id="paper-') == 1 and "Learning Hierarchical Relational" in filtered.text
    assert client.get("/library/graphs", params={"thread": "Relations"}).text.count('<li id="paper-') == 2
    assert client.get("/library/nobody").status_code == 404
    assert client.get("/library/graphs", params={"page": 2}).status_code == 404  # 4 papers: one page
    # the item page of a paper no digest picked shows the breakdown its reading built
    item = client.get(f"/item/{SPHERE}")
    assert item.status_code == 200 and 'id="breakdown-title"' in item.text and "DeepSphere" in item.text
    api = client.get("/api/library/graphs", params={"tag": "seed"}).json()
    assert (api["total"], api["matching"], api["pages"]) == (4, 1, 1)
    assert [e["key"] for e in api["entries"]] == [SPHERE]
    assert api["entries"][0]["breakdown_url"] == f"{BASE}/item/{SPHERE}#breakdown"
    assert api["entries"][0]["difficulty"] in ("gentle", "moderate", "demanding")
    feed = client.get("/library/graphs/atom.xml")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = {"a": "http://www.w3.org/2005/Atom"}
    entries = ET.fromstring(feed.content).findall("a:entry", atom)
    assert entries[0].findtext("a:title", namespaces=atom).startswith("Learning Hierarchical")
    assert entries[0].find("a:link", atom).get("href") == f"{BASE}/item/{RELATIONAL}"
    assert len({e.findtext("a:id", namespaces=atom) for e in entries}) == 4


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (the Debian package `chromium`)")
def test_chromium_draws_the_study_list(world: World, tmp_path: Path) -> None:
    read_all(world)
    shots = {"web-library.png": (1000, 1800), "web-library-phone.png": (400, 1800)}
    with serving(create_app(world.settings, world.factory)) as url:
        for name, size in shots.items():
            screenshot(f"{url}/library/graphs", tmp_path / name, size, tmp_path / "chromium")
    from PIL import Image

    for name, size in shots.items():
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size == size, name
        assert 0.02 < inked(tmp_path / name) < 0.6, name  # a page was drawn, not a blank or error screen


# --- the bot and Markdown ------------------------------------------------------------------------------


def test_the_bot_shows_the_last_papers_with_links(world: World, tmp_path: Path) -> None:
    read_all(world)
    with TelegramDouble(poll_wait=0.05) as tg:
        settings = replay_settings(
            world.server.url,
            tmp_path,
            base_url=BASE,
            telegram_bot_token=tg.token,
            telegram_api_url=tg.api_url,
            telegram_chat_interval=0.0,
        )
        converse(
            settings, world.factory, tg, lambda: tg.enqueue_message(CHAT, "/library"), lambda: replies(tg)
        )
        assert "receives no digest yet" in replies(tg)[0]
        code = new_telegram_code(world.factory, "graphs", NOW)
        with session_scope(world.factory) as session:
            delivery.redeem_subscription(session, "telegram", code, NOW, address=str(CHAT))
        converse(
            settings,
            world.factory,
            tg,
            lambda: tg.enqueue_message(CHAT, "/library"),
            lambda: len(replies(tg)) > 1,
        )
        text = replies(tg)[1]
    assert text.startswith("<b>Study list of graphs</b>: the last 4 of 4")
    assert text.index("Learning Hierarchical") < text.index("DeepSphere")
    assert text.count("Read the breakdown →") == 3 and f'href="{BASE}/item/{CHEB}#breakdown"' in text
    assert f'<a href="{BASE}/library/graphs">The whole list</a>' in text


def test_markdown_and_telegram_text_keep_scraped_strings_inert(world: World) -> None:
    read_all(world)
    shelf = shelf_of(world.factory)
    evil = replace(shelf.entries[0], title="Evil](javascript:alert(1)) <b>x</b>", tags=("a`b",))
    shelf = replace(shelf, entries=(evil, *shelf.entries[1:]))
    text = study_markdown(shelf, BASE)
    assert text.startswith("# Study list: graphs\n\n4 papers, newest first")
    assert text.count("[Read the breakdown →](https://digest.example.org/item/arxiv:") == 3
    assert "](javascript:" not in text and "<b>" not in text and "`ab`" in text
    assert "`imported` `canonical` `spectral` `" in text
    only = study_markdown(shelf_of(world.factory, tag="seed"), BASE, tag="seed")
    assert "1 of 4 papers (tag “seed”)" in only
    tg = study_telegram(shelf, BASE, last=2)
    assert "<b>x</b>" not in tg and tg.count("\n\n") == 3  # head, two papers, the link to the whole list


# --- the parts -----------------------------------------------------------------------------------------


def test_difficulty_reads_prose_jargon_and_math() -> None:
    plain = "We study how to sort a list. We show a simple way. It is fast and it is easy to use."
    dense = (
        "We characterise the non-asymptotic identifiability of heteroscedastic multivariate "
        "autoregressive representations under LSTM-parameterised variational approximations, establishing "
        "minimax optimality of the regularised estimator in the high-dimensional regime via "
        "concentration inequalities."
    )
    assert syllables("table") == 2 and syllables("identifiability") == 7 and syllables("the") == 1
    assert prose_grade(plain) < 5 < 20 < prose_grade(dense)
    easy, hard = difficulty(plain), difficulty(dense)
    assert (easy.level, hard.level) == ("gentle", "demanding") and easy.basis == "abstract"
    assert easy.displays_per_1k is None and "prose grade" in hard.explain()
    paper = Path(__file__).parent.parent / "feedsvc" / "sample" / "arxiv_html_2012.15000.html.gz"
    import gzip

    ft = parse_fulltext("html", gzip.decompress(paper.read_bytes()), dense, "", 20_000_000)
    full = difficulty(plain, ft)
    assert full.basis == "full text" and full.displays_per_1k and full.displays_per_1k > 1
    assert full.score > easy.score  # the same abstract, but a paper full of equations


def test_summary_and_citations() -> None:
    text = "First sentence here. Second one, a little longer. " + "Third " * 80
    assert summary(text) == "First sentence here. Second one, a little longer."
    long = "word " * 100
    assert summary(long).endswith(" …") and len(summary(long)) <= 282
    refs = "see arXiv:1606.09375v2 and https://arxiv.org/abs/2012.15000, also arXiv preprint arXiv 1312.6203."
    assert cited_ids(refs, own="2012.15000") == ["1606.09375", "1312.6203"]


def test_library_files_carry_their_tags(tmp_path: Path) -> None:
    bib = tmp_path / "l.bib"
    bib.write_text("@article{a, title={T}, eprint={1606.09375}, keywords={Canonical; graphs, canonical}}\n")
    assert read_library(bib).entries[0].tags == ("canonical", "graphs")
    csv_file = tmp_path / "z.csv"
    csv_file.write_text(
        '"Title","Url","Manual Tags"\n"T","https://arxiv.org/abs/1606.09375","study; Canonical"\n'
    )
    assert read_library(csv_file).entries[0].tags == ("study", "canonical")
