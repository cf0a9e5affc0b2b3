"""Issue 12: what an upstream can make feedsvc do is bounded. Every outbound read is streamed with a cap on
its decoded size and an overall deadline; each refusal is one line naming the source, the host and the
bound. Against loopback servers only; every body here is constructed (gzip bombs, a dripping server).
"""

from __future__ import annotations

import gzip
import io
import socket
import tarfile
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import FakeSleep

from feedsvc.cards.fulltext import FullTextError, from_source
from feedsvc.cards.llm import CARD_SCHEMA, ChatClient, LlmError, client_from_settings
from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.demo import replay_settings, snapshot_routes
from feedsvc.models import SourceError
from feedsvc.pipeline.collect import collect, source_health
from feedsvc.replay import ReplayServer, Reply
from feedsvc.sources.fulltext_fetch import fetch_fulltext
from feedsvc.sources.http import SourceHttp
from feedsvc.sources.youtube import YouTubeSource

MIB = 1 << 20
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"http_timeout": 5.0, "http_retries": 2, "http_max_wait": 60.0}
    values.update({"http_jitter": 0.0, "http_max_bytes": MIB, "http_deadline": 30.0})
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def gzip_bomb(decoded: int) -> bytes:
    """`decoded` zero bytes, gzipped: about a thousandth of that on the wire."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MIB)
    parts = [z.compress(block) for _ in range(decoded // MIB)]
    return b"".join(parts) + z.flush()


BOMB = gzip_bomb(64 * MIB)  # 64 KiB on the wire
GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}


# --- the size cap ------------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_by_its_decoded_size() -> None:
    assert len(BOMB) < 100_000
    with (
        ReplayServer({"/rss/cs.LG": Reply(200, BOMB, GZIP)}) as server,
        SourceHttp(settings(), source="arxiv", sleep=FakeSleep()) as http,
        pytest.raises(SourceError) as err,
    ):
        http.get(server.url + "/rss/cs.LG")
    assert str(err.value).startswith("arxiv: answer larger than 1 MiB (decoded); refused")
    assert "127.0.0.1" in str(err.value) and "\n" not in str(err.value)
    assert len(server.requests) == 1  # a refusal is not retried


def test_a_plain_answer_over_the_cap_is_refused_and_one_under_it_is_read() -> None:
    routes = {"/big": Reply(200, b"x" * (MIB + 1)), "/fits": Reply(200, b"x" * MIB)}
    with ReplayServer(routes) as server, SourceHttp(settings(), source="hn", sleep=FakeSleep()) as http:
        assert http.get(server.url + "/fits").content == b"x" * MIB
        with pytest.raises(SourceError, match=r"^hn: answer larger than 1 MiB \(decoded\); refused"):
            http.get(server.url + "/big")


def test_gzip_and_deflate_answers_are_decoded_and_a_corrupt_one_is_refused() -> None:
    body = b"<rss>" + b"item " * 400_000 + b"</rss>"  # 2 MB: several pieces of decoding
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    routes = {
        "/gzip": Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"}),
        "/zlib": Reply(200, zlib.compress(body), {"Content-Encoding": "deflate"}),
        "/raw": Reply(200, raw_deflate.compress(body) + raw_deflate.flush(), {"Content-Encoding": "deflate"}),
        "/bad": Reply(200, b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}),
    }
    with (
        ReplayServer(routes) as server,
        SourceHttp(settings(http_max_bytes=4 * MIB), source="hn", sleep=FakeSleep()) as http,
    ):
        for path in ("/gzip", "/zlib", "/raw"):
            assert http.get(server.url + path).content == body, path
        with pytest.raises(SourceError, match=r"^hn: answer is not valid gzip: .*; refused \(GET http"):
            http.get(server.url + "/bad")


def test_a_redirect_carrying_a_bomb_is_followed_without_reading_it() -> None:
    routes = {
        "/moved": Reply(302, BOMB, {"Location": "/here", "Content-Encoding": "gzip"}),
        "/here": Reply(200, b"<rss/>"),
        "/loop": Reply(302, b"", {"Location": "/loop"}),
    }
    with ReplayServer(routes) as server, SourceHttp(settings(), source="hn", sleep=FakeSleep()) as http:
        tracemalloc.start()
        try:
            response = http.get(server.url + "/moved")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (response.content, response.url) == (b"<rss/>", server.url + "/here")
        assert peak < 8 * MIB  # the redirect's 64 MiB (decoded) body was never read
        with pytest.raises(SourceError, match=r"^hn: more than 20 redirects; refused \(GET http"):
            http.get(server.url + "/loop")


def test_stacked_encodings_are_refused() -> None:
    twice = gzip.compress(gzip.compress(b"<rss/>"))
    reply = Reply(200, twice, {"Content-Encoding": "gzip, gzip"})
    with (
        ReplayServer({"/x": reply}) as server,
        SourceHttp(settings(), source="lobsters", sleep=FakeSleep()) as http,
        pytest.raises(SourceError, match=r"content encoding 'gzip, gzip'; refused"),
    ):
        http.get(server.url + "/x")
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_feedsvc_fetch_records_the_refused_bomb_and_the_other_sources_run(tmp_path, factory) -> None:
    profiles = load_profiles(example_profiles_path())
    with ReplayServer({**snapshot_routes(), "/rss/*": Reply(200, BOMB, GZIP)}) as server:
        config = replay_settings(server.url, tmp_path, http_max_bytes=MIB)
        outcomes = {o.source: o for o in collect(config, factory, profiles, now=NOW)}
    assert outcomes["arxiv"].status == "failed"
    assert (outcomes["arxiv"].error or "").startswith("answer larger than 1 MiB (decoded); refused (GET")
    assert {outcomes[name].status for name in ("hn", "lobsters", "youtube")} <= {"ok", "empty"}


def test_the_youtube_source_refuses_a_bomb() -> None:
    with ReplayServer({"/youtube/v3/playlistItems": Reply(200, BOMB, GZIP)}) as server:
        source = YouTubeSource(
            settings(),
            api_key="constructed-key",
            channels=["UC_x5XG1OV2P6uZZ5FSM9Ttw"],
            base_url=server.url,
            sleep=FakeSleep(),
        )
        with pytest.raises(SourceError) as err:
            source.fetch(datetime(2010, 1, 1, tzinfo=UTC))
        source.close()
    message = str(err.value)
    assert message.startswith("youtube: YouTube API at 127.0.0.1:")
    assert "answer larger than 1 MiB (decoded); refused (playlistItems.list)" in message
    assert "constructed-key" not in message
    assert len(server.requests) == 1


def test_the_full_text_keeps_its_own_cap_and_refuses_a_bomb() -> None:
    html = b"<html>" + b"x" * 2000
    routes = {"/html/2401.00001": Reply(200, BOMB, GZIP), "/e-print/2401.00001": Reply(200, html)}
    with ReplayServer(routes) as server:
        config = settings(
            arxiv_html_url=server.url + "/html",
            arxiv_eprint_url=server.url + "/e-print",
            fulltext_max_bytes=3 * MIB,
            http_max_bytes=64 * MIB,
        )
        with SourceHttp(config, source="arxiv", sleep=FakeSleep()) as http:
            raw = fetch_fulltext(config, http, "2401.00001")
    assert raw.kind == "eprint" and raw.content == html
    assert raw.reason.startswith("html: answer larger than 3 MiB (decoded); refused (GET http://127.0.0.1")


def test_a_gzipped_e_print_tarball_is_capped_while_it_is_decompressed() -> None:
    member = b"\\documentclass{article}\\begin{document}" + bytes(4 * MIB) + b"\\end{document}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("main.tex")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(FullTextError, match="cap"):
        from_source(buf.getvalue(), max_bytes=MIB)


def test_the_llm_client_refuses_a_bomb() -> None:
    reply = Reply(200, BOMB, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    with ReplayServer({"/v1/chat/completions": reply}) as server:
        config = settings(llm_base_url=server.url + "/v1", llm_model="m", llm_retries=2)
        client = client_from_settings(config, sleep=FakeSleep())
        assert client is not None
        with client, pytest.raises(LlmError) as err:
            client.complete([{"role": "user", "content": "hi"}], CARD_SCHEMA)
    assert str(err.value).startswith("LLM endpoint http://127.0.0.1:")
    assert str(err.value).endswith(": answer larger than 1 MiB (decoded); refused")
    assert len(server.requests) == 1


# --- the overall deadline ----------------------------------------------------------------------------------


class _Drip(BaseHTTPRequestHandler):
    """Announces 100 kB, then sends 16 bytes every 0.25 s (64 bytes/s) for at most 20 s."""

    def do_GET(self) -> None:
        self._drip()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._drip()

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        end = time.monotonic() + 20
        try:
            while time.monotonic() < end:
                self.wfile.write(b"x" * 16)
                self.wfile.flush()
                time.sleep(0.25)
        except OSError:
            pass  # the client gave up

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def drip() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_dripping_answer_ends_at_the_deadline(drip: str) -> None:
    with (
        SourceHttp(settings(http_deadline=1.0), source="hn", sleep=FakeSleep()) as http,
        pytest.raises(SourceError) as err,
    ):
        http.get(drip + "/api/v1/search_by_date")
    assert str(err.value).startswith("hn: answer not complete within the 1 s deadline; gave up (GET http")


def test_a_dripping_youtube_answer_ends_at_the_deadline(drip: str) -> None:
    source = YouTubeSource(
        settings(http_deadline=1.0), api_key="k", channels=["UCx"], base_url=drip, sleep=FakeSleep()
    )
    with pytest.raises(SourceError, match=r"not complete within the 1 s deadline; gave up"):
        source.fetch(datetime(2010, 1, 1, tzinfo=UTC))
    source.close()


def test_a_dripping_llm_endpoint_ends_at_the_deadline(drip: str) -> None:
    client = ChatClient(drip + "/v1", "m", timeout=1.0, retries=0, deadline=1.0, sleep=FakeSleep())
    with client, pytest.raises(LlmError, match=r"not complete within the 1 s deadline; gave up"):
        client.complete([{"role": "user", "content": "hi"}], CARD_SCHEMA)


def test_the_deadline_leaves_the_connect_and_read_timeouts_as_they_were() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
    try:
        with (
            SourceHttp(settings(http_timeout=0.3, http_retries=0), source="hn", sleep=FakeSleep()) as http,
            pytest.raises(SourceError, match=r"timed out after 0.3 s"),
        ):
            http.get(url)
    finally:
        listener.close()


# --- a far Retry-After -------------------------------------------------------------------------------------


def test_a_retry_after_in_2099_is_recorded_as_capped(tmp_path, factory) -> None:
    profiles = load_profiles(example_profiles_path())
    far = format_datetime(datetime(2099, 1, 1, tzinfo=UTC), usegmt=True)
    with ReplayServer({**snapshot_routes(), "/hottest.json": Reply(429, b"", {"Retry-After": far})}) as s:
        config = replay_settings(s.url, tmp_path, http_max_wait=60.0)
        outcomes = {o.source: o for o in collect(config, factory, profiles, now=NOW)}
    error = outcomes["lobsters"].error or ""
    assert "HTTP 429" in error and "capped at 1 day" in error
    health = {h.source: h for h in source_health(config, factory, now=NOW + timedelta(minutes=1))}
    assert health["lobsters"].next_try is not None
    assert health["lobsters"].next_try <= datetime.now(UTC) + timedelta(days=1, minutes=1)
