"""The Markdown files channel: one file per digest and profile in the recipient's directory, written
atomically (a reader never sees half a file). Imports only `feedsvc.models`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from feedsvc.models import DeliveryError, PartSent, Recipient, Rendered

_DAY = re.compile(r"^date: (\d{4}-\d{2}-\d{2})$", re.M)
_SPAN = re.compile(r"^span: (\w+)$", re.M)  # a weekly bundle: written beside the daily as <date>.week.md


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a digest is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safe_name(profile: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", profile).strip(".-") or "profile"


def _span_suffix(body: str) -> str:
    """ ".week" for a weekly bundle (its front matter says `span: week`), "" for a daily digest."""
    span = _SPAN.search(body.split("\n---", 1)[0])
    return f".{span[1]}" if span else ""


class MarkdownFiles:
    """Channel "markdown": writes `<dir>/<profile>/<date>.md`; the recipient's address is the directory,
    a relative one taken from `root` (the data directory: the example profile's `dir = "digests"` is
    the archive copy the digest command writes, so it is rewritten with the same bytes)."""

    name = "markdown"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path.cwd()

    def send(
        self, rendered: Rendered, recipient: Recipient, *, start: int = 0, on_part: PartSent | None = None
    ) -> str:
        found = _DAY.search(rendered.body)
        if found is None:
            raise DeliveryError("markdown: the rendered digest has no `date:` in its front matter")
        path = (
            self.root
            / Path(recipient.address).expanduser()
            / _safe_name(recipient.profile)
            / f"{found[1]}{_span_suffix(rendered.body)}.md"
        )
        try:
            write_atomically(path, rendered.body)
        except OSError as e:
            raise DeliveryError(f"markdown: cannot write {path}: {e.strerror or e}") from e
        return str(path)
