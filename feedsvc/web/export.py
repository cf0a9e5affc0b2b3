"""The archive as a static site: `export_site(settings, factory, out_dir)` writes every published digest,
the pages of the items on their cards, each profile's archive and Atom feed, the home page and the
stylesheet, as files any static host or front server can serve.

The files sit where the app's URLs are, plus `.html`: `index.html`, `d/<profile>.html`,
`d/<profile>/<day>.html`, `d/<profile>/atom.xml`, `item/<key>.html`, `static/style.css`; a front server
that tries `$uri`, then `$uri.html` (deploy/nginx.conf) answers the app's own URLs from them. Links between
exported pages are relative, so the files also work opened from disk; links to what only the app serves
(search, the subscription form, the JSON API, an item on no card) are absolute, to FEEDSVC_BASE_URL.
The Atom feed's links are absolute too (RFC 4287 readers need them).

Incremental: `.feedsvc-export.json` in the directory records each file's SHA-256; a file is written only
when its bytes changed, a file the archive no longer has is removed, and a published digest's page (which
never changes) is not even rendered again while the templates and base URL stay the same. One export at a
time per directory (a file lock). Imports the store's archive reads and the web's pages: an edge.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from feedsvc.config import Settings
from feedsvc.store import archive
from feedsvc.web.deps import WebState
from feedsvc.web.feeds import FEED_ENTRIES, atom_body
from feedsvc.web.pages import home_context, item_context
from feedsvc.web.templating import css_text, item_path, make_environment, render

MANIFEST = ".feedsvc-export.json"
LOCK = ".feedsvc-export.lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass
class ExportReport:
    """What one export did, by file (paths relative to the export directory)."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.written)} written, {self.unchanged} unchanged, {len(self.removed)} removed"


def item_file(key: str) -> str:
    """The file of an item's page: its key where that is a safe file name (so that `/item/<key>` finds
    `<key>.html`), else the key made safe plus a short hash of it (so that two keys never share a file)."""
    safe = _UNSAFE.sub("_", key)
    if safe != key or safe.startswith("."):
        safe = f"{safe.lstrip('.')[:120]}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    return f"item/{safe}.html"


def digest_file(profile: str, day: date) -> str:
    return f"d/{profile}/{day.isoformat()}.html"


def site_file(path: str) -> str:
    """The file an app path (`/`, `/d/<profile>`, `/d/<profile>/atom.xml`) is exported to."""
    if path == "/":
        return "index.html"
    if path.endswith(("/atom.xml", ".css")):
        return path.lstrip("/")
    return path.lstrip("/") + ".html"


def relative(target: str, page: str) -> str:
    """The link from the file `page` to the file `target`, both relative to the site's root."""
    link = posixpath.relpath(target, posixpath.dirname(page) or ".")
    return f"./{link}" if ":" in link.split("/", 1)[0] else link  # "arxiv:1.html" would read as a scheme


class _Site:
    """The link functions the templates call, for one page of one export."""

    def __init__(self, base_url: str, items: set[str]) -> None:
        self.base, self.items = base_url.rstrip("/"), items

    def globals_for(self, page: str) -> dict[str, object]:
        def item_link(key: str) -> str:
            if key in self.items:
                return relative(item_file(key), page)
            return self.base + item_path(key)

        return {
            "root": relative(".", page),
            "site": lambda path: relative(site_file(path), page),
            "app_url": lambda path: self.base + path,
            "css_href": relative("static/style.css", page),
            "item_path": item_link,
            "digest_path": lambda profile, day: relative(digest_file(profile, day), page),
        }


def fingerprint(settings: Settings) -> str:
    """Everything besides the data that a page's bytes depend on: the templates and the base URL."""
    h = hashlib.sha256(settings.base_url.encode())
    web = resources.files("feedsvc.templates").joinpath("web")
    for entry in sorted(web.iterdir(), key=lambda e: e.name):
        h.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return h.hexdigest()


class _Writer:
    """Writes files whose bytes changed (atomically) and keeps the manifest of what the directory holds."""

    def __init__(self, out_dir: Path, old: dict[str, object], print_: str) -> None:
        self.out_dir, self.print_ = out_dir, print_
        same_templates = old.get("fingerprint") == print_
        self.old_files: dict[str, str] = dict(old.get("files", {}))  # type: ignore[call-overload]
        self.old_digests: dict[str, int] = dict(old.get("digests", {})) if same_templates else {}  # type: ignore[call-overload]
        self.files: dict[str, str] = {}
        self.digests: dict[str, int] = {}
        self.report = ExportReport()

    def digest_is_current(self, name: str, digest_id: int) -> bool:
        """A published digest's page already exported from this digest with these templates: kept as is."""
        if (
            self.old_digests.get(name) == digest_id
            and name in self.old_files
            and (self.out_dir / name).is_file()
        ):
            self.files[name], self.digests[name] = self.old_files[name], digest_id
            self.report.unchanged += 1
            return True
        return False

    def put(self, name: str, body: bytes | str, digest_id: int | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        digest = hashlib.sha256(data).hexdigest()
        self.files[name] = digest
        if digest_id is not None:
            self.digests[name] = digest_id
        if self.old_files.get(name) == digest and (self.out_dir / name).is_file():
            self.report.unchanged += 1
            return
        _atomic_write(self.out_dir / name, data)
        self.report.written.append(name)

    def finish(self) -> ExportReport:
        for name in sorted(set(self.old_files) - set(self.files)):
            (self.out_dir / name).unlink(missing_ok=True)
            self.report.removed.append(name)
        manifest = {"fingerprint": self.print_, "files": self.files, "digests": self.digests}
        _atomic_write(self.out_dir / MANIFEST, json.dumps(manifest, indent=0, sort_keys=True).encode())
        return self.report


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_manifest(out_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def export_site(
    settings: Settings,
    factory: sessionmaker[Session],
    out_dir: Path,
    clock: Callable[[], datetime] | None = None,
) -> ExportReport:
    """Export the archive into `out_dir` (created if needed), writing only what changed since the last
    export there."""
    state = WebState(
        settings=settings,
        factory=factory,
        clock=clock or (lambda: datetime.now(UTC)),
        templates=make_environment(""),
        feed_templates=make_environment(settings.base_url.rstrip("/")),
    )
    with _locked(out_dir), factory() as session:
        writer = _Writer(out_dir, _read_manifest(out_dir), fingerprint(settings))
        _export_pages(state, session, writer)
        return writer.finish()


def _export_pages(st: WebState, session: Session, writer: _Writer) -> None:
    profiles = archive.profile_names(session)
    listings = {p: archive.list_digests(session, p, limit=1_000_000)[0] for p in profiles}
    keys: set[str] = set()
    for found in (archive.digest_by_id(session, d.id) for ls in listings.values() for d in ls):
        if found is not None:
            keys.update(card.key for card in found[0].cards)
    site = _Site(st.settings.base_url, keys)

    def page(name: str, template: str, **context: object) -> str:
        return render(st.templates, template, **site.globals_for(name), **context)

    writer.put("static/style.css", css_text())
    writer.put("index.html", page("index.html", "home.html.j2", **home_context(session)))
    for profile, digests in listings.items():
        name = site_file(f"/d/{profile}")
        writer.put(
            name,
            page(
                name,
                "archive.html.j2",
                profile=profile,
                listings=digests,
                total=len(digests),
                page=1,
                pages=1,
            ),
        )
        writer.put(f"d/{profile}/atom.xml", atom_body(st, session, profile, digests[:FEED_ENTRIES]))
        for listing in digests:
            name = digest_file(profile, listing.day)
            if writer.digest_is_current(name, listing.id):
                continue
            found = archive.digest_by_id(session, listing.id)
            if found is not None:
                body = page(name, "digest.html.j2", digest=found[0], created=found[1].created)
                writer.put(name, body, digest_id=listing.id)
    for key in sorted(keys):
        context = item_context(session, st, key)
        if context is not None:
            name = item_file(key)
            writer.put(name, page(name, "item.html.j2", **context))
