"""ArxivSource against recorded arXiv responses served by a loopback replay server (no real network).

Recorded bytes live in tests/fixtures/arxiv/ (see PROVENANCE.md there). Bodies built in this file are
marked "constructed".
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import FakeSleep

from feedsvc.config import Settings
from feedsvc.models import SourceError
from feedsvc.replay import ReplayServer, Reply, Route, in_turn
from feedsvc.sources.arxiv import ArxivSource
from feedsvc.sources.http import MemoryValidators, SourceHttp

FIXTURES = Path(__file__).parent / "fixtures" / "arxiv"
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
ATOM = {"Content-Type": "application/atom+xml; charset=utf-8"}
SINCE = datetime(2024, 11, 27, tzinfo=UTC)


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    return gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()


@pytest.fixture(scope="module")
def all_archives() -> bytes:
    return fixture("rss_all_archives_2024-11-28.xml.gz")


class Rig:
    """A replay server, settings pointing at it, and a source built on them."""

    def __init__(self, routes: dict[str, Route], categories: list[str], **settings: object) -> None:
        self.server = ReplayServer(routes).start()
        values: dict[str, object] = {
            "arxiv_rss_url": self.server.url + "/rss",
            "arxiv_api_url": self.server.url + "/api/query",
            "arxiv_delay_seconds": 0,
            "arxiv_enrich": False,
            "http_timeout": 5.0,
            "http_retries": 1,
            "http_jitter": 0.0,  # exact waits; the jitter is tested in test_retry.py
        }
        values.update(settings)
        self.settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        self.sleep = FakeSleep()
        self.validators = MemoryValidators()
        self.http = SourceHttp(self.settings, source="arxiv", validators=self.validators, sleep=self.sleep)
        self.source = ArxivSource(self.settings, self.http, categories)

    def requests_to(self, prefix: str) -> list:
        return [r for r in self.server.requests if r.path.startswith(prefix)]

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def rig() -> Iterator[type[Rig]]:
    made: list[Rig] = []

    class Tracked(Rig):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for r in made:
        r.close()


# --- the recorded all-archives feed ---------------------------------------------------------------------


def test_real_feed_filtered_to_cs_lg(rig: type[Rig], all_archives: bytes) -> None:
    r = rig({"/rss/*": Reply(body=all_archives, headers=RSS)}, ["cs.LG"])
    fetched = r.source.fetch(SINCE)
    assert r.server.requests[0].path == "/rss/cs.LG"
    assert fetched.status == "ok"
    assert fetched.scanned == 1504
    assert len(fetched.candidates) == 218  # PROVENANCE.md: 218 items carry cs.LG
    assert fetched.note == "rss: 1504 announced, 218 in cs.LG"
    assert all("cs.LG" in c.categories for c in fetched.candidates)

    first = fetched.candidates[0]
    assert first.key == "arxiv:2411.17702"
    assert first.kind == "paper" and first.source == "arxiv"
    title = (
        'Finding "Good Views" of Electrocardiogram Signals for Inferring Abnormalities in Cardiac Condition'
    )
    assert first.title == title
    assert first.authors == ("Hyewon Jeong", "Suyeol Yun", "Hammaad Adam")
    assert first.categories == ("eess.SP", "cs.LG")
    assert first.version == 1
    assert first.url == "https://arxiv.org/abs/2411.17702"
    assert first.published == datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    assert first.updated == first.published
    assert first.text.startswith("Electrocardiograms (ECGs) are an established technique")
    assert "Announce Type" not in first.text and "Abstract:" not in first.text
    assert first.meta["announce_type"] == "new"
    assert first.meta["rights"].startswith("http://")

    types = {c.meta["announce_type"] for c in fetched.candidates}
    assert types == {"new", "replace", "cross"}
    assert len({c.key for c in fetched.candidates}) == 218


def test_replacement_keeps_bare_key_and_version(rig: type[Rig], all_archives: bytes) -> None:
    r = rig({"/rss/*": Reply(body=all_archives, headers=RSS)}, ["cs.LG", "stat.ML"])
    fetched = r.source.fetch(SINCE)
    assert r.server.requests[0].path == "/rss/cs.LG+stat.ML"
    assert fetched.note == "rss: 1504 announced, 223 in cs.LG, stat.ML"
    by_key = {c.key: c for c in fetched.candidates}
    replaced = by_key["arxiv:2308.00009"]  # guid oai:arXiv.org:2308.00009v2
    assert replaced.version == 2
    assert replaced.meta["announce_type"] == "replace"
    assert replaced.url == "https://arxiv.org/abs/2308.00009"
    assert replaced.title.startswith("A 3D deep learning classifier")
    # a replacement is dated by its id's month (2023-08), not by the day it was re-announced
    assert replaced.published == datetime(2023, 8, 1, tzinfo=UTC)
    assert replaced.meta["published_estimated"] is True
    assert by_key["arxiv:2411.17702"].published.date().isoformat() == "2024-11-28"
    cross = by_key["arxiv:2411.16552"]
    assert cross.meta["announce_type"] == "cross"
    assert cross.categories[0] == "stat.AP"


def test_archive_names_match_their_categories_and_latex_survives(rig: type[Rig], all_archives: bytes) -> None:
    r = rig({"/rss/*": Reply(body=all_archives, headers=RSS)}, ["math"])
    fetched = r.source.fetch(SINCE)
    assert fetched.candidates
    assert all(any(c == "math" or c.startswith("math.") for c in x.categories) for x in fetched.candidates)
    paper = {c.key: c for c in fetched.candidates}["arxiv:2411.17730"]
    # HTML sanitising would turn "<s<1" into "<s><1"; the abstract is plain text and must stay verbatim.
    assert r"where $\frac{1}{3}<s<1$ and" in paper.text


def test_conditional_fetch_second_time_is_unchanged(rig: type[Rig], all_archives: bytes) -> None:
    reply = Reply(body=all_archives, headers={**RSS, "ETag": '"rss-2024-11-28"'})
    r = rig({"/rss/*": reply}, ["cs.LG"])
    assert r.source.fetch(SINCE).status == "ok"
    again = r.source.fetch(SINCE)
    assert r.server.requests[1].headers["if-none-match"] == '"rss-2024-11-28"'
    assert again.status == "empty"
    assert again.candidates == []
    assert again.note == "unchanged since the last fetch (304)"


# --- no announcement and errors --------------------------------------------------------------------------


def test_empty_feed_is_not_an_error(rig: type[Rig]) -> None:
    body = fixture("rss_empty_test_archive_2024-11-28.xml")
    r = rig({"/rss/*": Reply(body=body, headers=RSS)}, ["cs.LG", "stat.ML"])
    fetched = r.source.fetch(SINCE)
    assert fetched.status == "empty"
    assert fetched.candidates == [] and fetched.scanned == 0
    assert fetched.note == (
        "arXiv had no announcement for cs.LG+stat.ML (feed built Thu, 28 Nov 2024 17:23:08 +0000)"
    )


def test_error_feed_is_a_source_error(rig: type[Rig]) -> None:
    body = fixture("rss_error_bad_archive_astroph_2024-11-28.xml")
    r = rig({"/rss/*": Reply(body=body, headers=RSS)}, ["astroph"])
    with pytest.raises(SourceError) as err:
        r.source.fetch(SINCE)
    assert err.value.source == "arxiv"
    assert "Bad archive 'astroph'" in err.value.cause
    assert "\n" not in str(err.value)


def test_html_page_instead_of_xml(rig: type[Rig]) -> None:
    # constructed: a maintenance page served with 200, as proxies and captive portals do
    page = b"<!DOCTYPE html>\n<html><head><title>arXiv is down for maintenance</title></head><body/></html>"
    r = rig({"/rss/*": Reply(body=page, headers={"Content-Type": "text/html"})}, ["cs.LG"])
    with pytest.raises(SourceError) as err:
        r.source.fetch(SINCE)
    assert "HTML page (arXiv is down for maintenance)" in err.value.cause


def test_html_503_page_is_retried_then_reported(rig: type[Rig]) -> None:
    # constructed: an HTML error page with status 503
    page = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    r = rig({"/rss/*": Reply(503, page, {"Content-Type": "text/html"})}, ["cs.LG"], http_retries=2)
    with pytest.raises(SourceError) as err:
        r.source.fetch(SINCE)
    assert err.value.source == "arxiv"
    assert err.value.cause.startswith("HTTP 503 Service Unavailable after 3 attempts")
    assert r.sleep.calls == [1.0, 2.0]


def test_truncated_xml_is_a_source_error(rig: type[Rig], all_archives: bytes) -> None:
    truncated = all_archives[: len(all_archives) // 2]  # constructed: the real feed cut in half
    r = rig({"/rss/*": Reply(body=truncated, headers=RSS)}, ["cs.LG"])
    with pytest.raises(SourceError) as err:
        r.source.fetch(SINCE)
    assert "malformed RSS" in err.value.cause


def test_recovers_from_a_500(rig: type[Rig]) -> None:
    body = fixture("rss_empty_test_archive_2024-11-28.xml")
    r = rig({"/rss/*": in_turn(Reply(500, b"boom"), Reply(body=body, headers=RSS))}, ["cs.LG"])
    assert r.source.fetch(SINCE).status == "empty"
    assert r.sleep.calls == [1.0]


# --- enrichment through the API (the arxiv package's real client, pointed at the replay server) ---------

# constructed: a one-item feed (the recorded empty feed's channel) announcing the real paper 1707.08567,
# because no id in the recorded API responses appears in the recorded RSS snapshot.
ONE_ITEM_FEED = b"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">
  <channel>
    <title>cs.IT updates on arXiv.org</title>
    <link>http://rss.arxiv.org/rss/cs.IT</link>
    <description>cs.IT updates on the arXiv.org e-print archive.</description>
    <lastBuildDate>Thu, 28 Nov 2024 17:23:08 +0000</lastBuildDate>
    <item>
      <title>Proceedings of Workshop AEW10: Concepts in Information Theory and Communications</title>
      <link>https://arxiv.org/abs/1707.08567</link>
      <description>arXiv:1707.08567v1 Announce Type: replace
Abstract: The 10th Asia-Europe workshop in "Concepts in Information Theory and Communications".</description>
      <guid isPermaLink="false">oai:arXiv.org:1707.08567v1</guid>
      <category>cs.IT</category>
      <pubDate>Thu, 28 Nov 2024 00:00:00 -0500</pubDate>
      <arxiv:announce_type>replace</arxiv:announce_type>
      <dc:rights>http://arxiv.org/licenses/nonexclusive-distrib/1.0/</dc:rights>
      <dc:creator>Kees A. Schouhamer Immink, Stan Baggen</dc:creator>
    </item>
  </channel>
</rss>
"""


def test_enrichment_fills_api_fields(rig: type[Rig]) -> None:
    api = fixture("new2026_two_ids_0808.05394_1707.08567.xml")
    routes: dict[str, Route] = {
        "/rss/*": Reply(body=ONE_ITEM_FEED, headers=RSS),
        "/api/query": Reply(body=api, headers=ATOM),
    }
    r = rig(routes, ["cs.IT"], arxiv_enrich=True)
    fetched = r.source.fetch(SINCE)
    (paper,) = fetched.candidates
    assert paper.key == "arxiv:1707.08567"
    assert paper.meta["comment"] == "44 pages, editors for the proceedings: Yanling Chen and A. J. Han Vinck"
    assert paper.meta["primary_category"] == "cs.IT"
    assert paper.meta["journal_ref"] is None and paper.meta["doi"] is None
    assert paper.meta["announce_type"] == "replace"
    assert paper.published == datetime(2017, 7, 27, 8, 18, 33, tzinfo=UTC)  # first version, from the API
    assert paper.updated == datetime(2024, 11, 28, 5, 0, tzinfo=UTC)  # the listing date
    assert fetched.note == "rss: 1 announced, 1 in cs.IT; API details for 1 of 1"
    (query,) = r.requests_to("/api/query")
    assert query.query["id_list"] == "1707.08567"
    assert query.query["max_results"] == "100"


def test_enrichment_batches_ids_by_hundred(rig: type[Rig], all_archives: bytes) -> None:
    api = fixture("new2026_two_ids_0808.05394_1707.08567.xml")  # none of the listed ids: nothing to fill
    routes: dict[str, Route] = {
        "/rss/*": Reply(body=all_archives, headers=RSS),
        "/api/query": Reply(body=api, headers=ATOM),
    }
    r = rig(routes, ["cs.LG"], arxiv_enrich=True)
    fetched = r.source.fetch(SINCE)
    assert len(fetched.candidates) == 218
    assert fetched.note.endswith("API details for 0 of 218")
    sizes = [len(q.query["id_list"].split(",")) for q in r.requests_to("/api/query")]
    assert sizes == [100, 100, 18]
    assert "comment" not in fetched.candidates[0].meta


def test_enrichment_failure_keeps_the_listing(rig: type[Rig], all_archives: bytes) -> None:
    error = fixture("new2026_error_400_incorrect_id_abc.xml")
    routes: dict[str, Route] = {
        "/rss/*": Reply(body=all_archives, headers=RSS),
        "/api/query": Reply(400, error, ATOM),
    }
    r = rig(routes, ["cs.LG"], arxiv_enrich=True, http_retries=1)
    fetched = r.source.fetch(SINCE)
    assert fetched.status == "ok"
    assert len(fetched.candidates) == 218
    assert fetched.candidates[0].published == datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    assert (
        "rss: 1504 announced, 218 in cs.LG; API enrichment failed: arXiv API answered HTTP 400"
        in fetched.note
    )
    assert len(r.requests_to("/api/query")) == 2  # the arxiv client's one retry


# --- lookup -------------------------------------------------------------------------------------------


def test_lookup_returns_known_ids_only(rig: type[Rig]) -> None:
    api = fixture("new2026_two_ids_0808.05394_1707.08567.xml")
    r = rig({"/api/query": Reply(body=api, headers=ATOM)}, ["cs.LG"])
    found = r.source.lookup(["1707.08567v1", "https://arxiv.org/abs/0808.05394"])
    (paper,) = found
    assert paper.key == "arxiv:1707.08567" and paper.version == 1
    assert paper.title == "Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"
    assert paper.text.startswith('The 10th Asia-Europe workshop in "Concepts in Information Theory')
    assert paper.categories == ("cs.IT",)
    assert paper.authors[:2] == ("Kees A. Schouhamer Immink", "Stan Baggen")
    assert paper.published == datetime(2017, 7, 27, 8, 18, 33, tzinfo=UTC)
    assert paper.meta["comment"].startswith("44 pages")
    assert r.server.requests[0].query["id_list"] == "1707.08567,0808.05394"


def test_lookup_keeps_the_order_asked(rig: type[Rig]) -> None:
    api = fixture("new2026_search_all_testing_start0_max10.xml")  # entries 2202.12139v1, 2405.13786v1, ...
    r = rig({"/api/query": Reply(body=api, headers=ATOM)}, ["cs.LG"])
    found = r.source.lookup(["2405.13786", "2202.12139"])
    assert [c.key for c in found] == ["arxiv:2405.13786", "arxiv:2202.12139"]
    assert all(c.meta["primary_category"] for c in found)


def test_lookup_error_feed_is_a_source_error(rig: type[Rig]) -> None:
    error = fixture("new2026_error_400_incorrect_id_abc.xml")
    r = rig({"/api/query": Reply(400, error, ATOM)}, ["cs.LG"], http_retries=0)
    with pytest.raises(SourceError) as err:
        r.source.lookup(["2411.99999"])
    assert err.value.source == "arxiv"
    assert "arXiv API answered HTTP 400" in err.value.cause
    assert "2411.99999" in err.value.cause


def test_lookup_rejects_non_ids_without_asking(rig: type[Rig]) -> None:
    r = rig({}, ["cs.LG"])
    with pytest.raises(SourceError) as err:
        r.source.lookup(["abc"])
    assert "not an arXiv id: 'abc'" in err.value.cause
    assert r.server.requests == []
    assert r.source.lookup([]) == []
