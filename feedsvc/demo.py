"""The offline demo: the whole pipeline on a bundled snapshot of real recorded arXiv responses.

A loopback replay server serves the snapshot (`feedsvc/sample/`, see its PROVENANCE.md) in place of
arxiv.org; the arXiv source fetches it over real HTTP, the store is a fresh SQLite file, the profile is
the bundled example. Imports `feedsvc.pipeline`, `feedsvc.replay` and `feedsvc.store`.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings, load_profiles
from feedsvc.models import Profile
from feedsvc.pipeline.collect import Progress, RunOutcome, collect
from feedsvc.pipeline.digest import Built, build_digests
from feedsvc.pipeline.library import fetch_papers, import_library
from feedsvc.pipeline.study import LibraryReading, read_library_papers
from feedsvc.replay import ReplayServer, Reply
from feedsvc.store import archive
from feedsvc.store.db import current_revision, make_engine, session_factory, upgrade

SNAPSHOT_DAY = date(2024, 11, 28)  # the announcement day the recorded arXiv feed is from
SNAPSHOT_NOW = datetime(2024, 11, 28, 18, 0, tzinfo=UTC)


@dataclass(frozen=True)
class DemoResult:
    built: list[Built]
    outcomes: list[RunOutcome]
    data_dir: Path
    library: LibraryReading | None = None


JSON = {"Content-Type": "application/json; charset=utf-8"}
RECORDED_CHANNEL = "UC_x5XG1OV2P6uZZ5FSM9Ttw"  # the channel of the recorded uploads playlist
FULLTEXT_PAPERS = ("1606.09375", "2012.15000", "2310.03240")  # bundled full texts (LaTeXML HTML)
LIBRARIES = ("seed-reader", "graph-learning")  # each imports feedsvc/sample/library.<profile>.bib


def demo_profiles_path() -> Path:
    return Path(str(resources.files("feedsvc.sample").joinpath("profiles.demo.toml")))


def snapshot_routes() -> dict[str, Reply]:
    """The replayed responses, each answering its endpoint whatever the query: the recorded all-archives
    RSS feed for every `/rss/...` (the arXiv source keeps only the profile's categories, as it does with a
    real per-category feed), and one recorded body each for HN, Lobsters and the three YouTube calls."""
    sample = resources.files("feedsvc.sample")
    feed = gzip.decompress(sample.joinpath("arxiv_rss_2024-11-28.xml.gz").read_bytes())

    def recorded(name: str) -> Reply:
        return Reply(status=200, body=sample.joinpath(name).read_bytes(), headers=JSON)

    return {
        "/rss/*": Reply(
            status=200,
            body=feed,
            headers={
                "Content-Type": "application/rss+xml; charset=utf-8",
                "Last-Modified": "Thu, 28 Nov 2024 14:47:20 GMT",
            },
        ),
        "/api/v1/search_by_date": recorded("hn_algolia_2014_search_by_date_tags-story.json"),
        "/hottest.json": recorded("lobsters_hottest_2023-11-02T16-04Z.json"),
        "/newest.json": recorded("lobsters_newest_2023-11-02T16-04Z.json"),
        "/youtube/v3/playlistItems": recorded("pyyoutube_playlistItems_list_paged_1.json"),
        "/youtube/v3/videos": recorded("videos_list_2items_snippet_contentDetails_statistics.json"),
        "/youtube/v3/search": recorded("pyyoutube_search_list_by_keywords_p1.json"),
        **{
            f"/html/{paper}": Reply(
                status=200,
                body=gzip.decompress(sample.joinpath(f"arxiv_html_{paper}.html.gz").read_bytes()),
                headers={"Content-Type": "text/html; charset=utf-8"},
            )
            for paper in FULLTEXT_PAPERS
        },
    }


def replay_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings that point every source at a replay server at `url` (no key is real; none is sent out)."""
    values: dict[str, object] = dict(
        data_dir=data_dir,
        database_url="",
        profiles_path=demo_profiles_path(),
        arxiv_rss_url=f"{url}/rss",
        arxiv_api_url=f"{url}/api/query",
        arxiv_html_url=f"{url}/html",
        arxiv_eprint_url=f"{url}/e-print",
        # no recorded API response exists for the snapshot's papers, so the demo does not ask for one
        arxiv_enrich=False,
        hn_api_url=f"{url}/api/v1",
        lobsters_url=url,
        youtube_api_url=url,
        youtube_api_key="replay-no-key",
        youtube_channels=[RECORDED_CHANNEL],
        http_retries=1,
        http_max_wait=0.0,
        semantic="off",  # tests opt in; the demo passes the reader's choice
        # every source replays here, none goes out: a service's FEEDSVC_DISABLED_SOURCES (the demo run
        # inside the compose stack) must not empty the demo
        disabled_sources=[],
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _import_libraries(settings: Settings, factory: sessionmaker[Session], profiles: list[Profile]) -> None:
    """Each demo profile's library file: the seed reader's from seed 001 (arXiv's API is not replayed, so
    its papers are kept as the file gives them), the graph reader's the three bundled papers."""
    sample = resources.files("feedsvc.sample")
    for profile in LIBRARIES:
        path = Path(str(sample.joinpath(f"library.{profile}.bib")))
        import_library(settings, factory, profiles, profile, path, now=SNAPSHOT_NOW)


def run_demo(
    data_dir: Path, progress: Progress | None = None, semantic: str = "auto", database_url: str = ""
) -> DemoResult:
    """Run fetch and digest on the snapshot into a fresh `data_dir` (its own SQLite file), or with
    `database_url` into that store, keeping what `data_dir` and the store hold; then import the demo's
    libraries and read them for the study lists (after the digests: a library's papers are never picked);
    returns what was built."""
    if data_dir.exists() and not database_url:
        shutil.rmtree(data_dir)
    profiles = load_profiles(demo_profiles_path())
    with ReplayServer(snapshot_routes()) as server:
        # loopback: no arXiv to be polite to, so the study list's reads are not spaced out
        settings = replay_settings(
            server.url, data_dir, semantic=semantic, database_url=database_url, arxiv_delay_seconds=0.0
        )
        engine = make_engine(settings.resolved_database_url())
        try:
            upgrade(engine)
            factory = session_factory(engine)
            outcomes = collect(settings, factory, profiles, now=SNAPSHOT_NOW, progress=progress)
            if progress:
                progress("three papers by id (their full text is bundled)")
            fetch_papers(settings, factory, FULLTEXT_PAPERS, now=SNAPSHOT_NOW)
            built = build_digests(settings, factory, profiles, day=SNAPSHOT_DAY, now=SNAPSHOT_NOW)
            if progress:
                progress("the readers' libraries, read for their study lists")
            _import_libraries(settings, factory, profiles)
            library = read_library_papers(settings, factory, profiles, limit=50, now=SNAPSHOT_NOW)
        finally:
            engine.dispose()
    return DemoResult(built=built, outcomes=outcomes, data_dir=data_dir, library=library)


# --- serving the demo ------------------------------------------------------------------------------------

SECRET_FILE = "secret_key"  # the demo's own signing key, generated once, beside its database
DEMO_PAGE = "/d/seed-reader/2024-11-28"  # the page `feedsvc demo --serve` points a newcomer to


def demo_built(data_dir: Path) -> bool:
    """Whether `data_dir` holds a demo store with its digests (so `--serve` need not build it again)."""
    db = data_dir / "feedsvc.db"
    if not db.is_file():
        return False
    engine = make_engine(f"sqlite:///{db}")
    try:
        if current_revision(engine) is None:
            return False
        with session_factory(engine)() as session:
            return bool(archive.latest_digests(session))
    except Exception:  # a half-written or foreign file: build the demo again
        return False
    finally:
        engine.dispose()


def demo_secret(data_dir: Path) -> str:
    """The demo's signing key: read from `<data_dir>/secret_key`, or generated there (mode 0600) once."""
    path = data_dir / SECRET_FILE
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 32:
            return value
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def serve_settings(data_dir: Path, port: int) -> Settings:
    """Safe settings to browse the demo, whatever the environment says about these: its store and
    profiles, every source off (nothing leaves the machine), its own secret key, loopback only, no site
    export."""
    values: dict[str, object] = dict(
        data_dir=data_dir,
        database_url="",
        profiles_path=demo_profiles_path(),
        disabled_sources=["arxiv", "youtube", "hn", "lobsters"],
        secret_key=demo_secret(data_dir),
        web_host="127.0.0.1",
        web_port=port,
        base_url=f"http://127.0.0.1:{port}",
        export_dir="",
    )
    return Settings(**values)  # type: ignore[arg-type]
