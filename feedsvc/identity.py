"""Canonical keys: one identity per item, whatever URL, version or source it arrives through.

`ItemKey` is the key: `arxiv:<bare id without version>`, `youtube:<video id>`, `url:<normalised URL>`,
`id:<an evaluation file's own id>` (not on arXiv) or `title:<slug>` (a library entry with neither id nor
URL). Build keys with its constructors and take them apart with its properties, never by hand.
Pure functions; imports nothing from feedsvc.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# New-style ids (0704.0001 onwards: YYMM.NNNN or YYMM.NNNNN) and old-style ids (math.CO/0601001).
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v(?P<version>\d+))?"

_ARXIV_PATTERNS = [
    # abs / pdf / html / format links on arxiv.org, export.arxiv.org, ar5iv.org and ar5iv.labs.arxiv.org
    re.compile(
        rf"(?:https?://)?(?:ar5iv\.labs\.arxiv\.org|ar5iv\.org|(?:www\.|export\.)?arxiv\.org)/"
        rf"(?:abs|pdf|html|format)/{_ARXIV_ID}",
        re.I,
    ),
    re.compile(rf"10\.48550/arXiv\.{_ARXIV_ID}", re.I),  # arXiv DOIs
    re.compile(rf"\barXiv\s*:\s*{_ARXIV_ID}", re.I),  # "arXiv:2411.17700v2"
    re.compile(rf"oai:arXiv\.org:{_ARXIV_ID}", re.I),  # RSS guids
]

_YOUTUBE_PATTERNS = [
    re.compile(r"(?:https?://)?(?:www\.|m\.)?youtube\.com/watch\?(?:[^#\s]*&)?v=(?P<id>[\w-]{11})"),
    re.compile(r"(?:https?://)?(?:www\.|m\.)?youtube\.com/(?:embed|shorts|live|v)/(?P<id>[\w-]{11})"),
    re.compile(r"(?:https?://)?youtu\.be/(?P<id>[\w-]{11})"),
]


class ItemKey(str):
    """An item key, `<scheme>:<value>`: the text itself is what the store, URLs and callback data hold.

    A `str` subclass, not a dataclass: keys are dict keys, SQL parameters, JSON values and URL path
    segments everywhere, and a key read back from the store (a plain `str`) must equal and hash like the
    one written. `ItemKey(text)` wraps any text as it is (a text without ":" has scheme ""), so taking
    apart a key from anywhere never raises; `ItemKey.parse(text)` also checks the scheme and value.
    """

    __slots__ = ()

    SCHEMES = ("arxiv", "youtube", "url", "id", "title")

    @classmethod
    def arxiv(cls, bare_id: str) -> ItemKey:
        """The key of an arXiv paper, from its bare id (no version: see `bare_arxiv_id`)."""
        return cls(f"arxiv:{bare_id}")

    @classmethod
    def youtube(cls, video_id: str) -> ItemKey:
        return cls(f"youtube:{video_id}")

    @classmethod
    def url(cls, url: str) -> ItemKey:
        """The key of a page that is neither a paper nor a video: its URL, normalised."""
        return cls(f"url:{normalise_url(url)}")

    @classmethod
    def external(cls, raw_id: str) -> ItemKey:
        """The key of a candidate known only by an evaluation file's own id (not an arXiv id)."""
        return cls(f"id:{raw_id}")

    @classmethod
    def titled(cls, title: str) -> ItemKey:
        """The key of a library entry known only by its title: the title as a lower-case slug."""
        return cls("title:" + re.sub(r"[^0-9a-z]+", "-", title.lower()).strip("-"))

    @classmethod
    def parse(cls, text: str) -> ItemKey:
        """`text` as a key; ValueError unless it is `<known scheme>:<non-empty value>`."""
        key = cls(text)
        if key.scheme not in cls.SCHEMES or not key.value:
            raise ValueError(f"not an item key: {text!r}")
        return key

    @classmethod
    def from_reader(cls, text: str) -> ItemKey:
        """What a reader typed for an item: a key as it is, a URL's canonical key, or an arXiv id's key
        (`2411.17700v2`, `arXiv:2411.17700`)."""
        if text.startswith("http"):
            return canonical_key(text)
        key = cls(text)
        if key.scheme and key.scheme.lower() != "arxiv":
            return key
        return canonical_key(f"arXiv:{text.removeprefix('arXiv:')}")

    @property
    def scheme(self) -> str:
        """One of `SCHEMES` for a key made here; "" for a text without ":"."""
        scheme, sep, _ = self.partition(":")
        return scheme if sep else ""

    @property
    def value(self) -> str:
        """What follows the scheme: the bare arXiv id, the video id, the URL...; the whole text if none."""
        return self.partition(":")[2] if self.scheme else str(self)

    @property
    def is_arxiv(self) -> bool:
        return self.scheme == "arxiv"

    @property
    def is_youtube(self) -> bool:
        return self.scheme == "youtube"

    @property
    def arxiv_id(self) -> str | None:
        """The bare arXiv id of a paper's key, else None."""
        return self.value if self.is_arxiv else None

    @property
    def youtube_id(self) -> str | None:
        """The video id of a YouTube video's key, else None."""
        return self.value if self.is_youtube else None

    def page_url(self) -> str | None:
        """The item's own page for an arXiv or YouTube key (abs page, watch page), else None."""
        if self.is_arxiv:
            return f"https://arxiv.org/abs/{self.value}"
        if self.is_youtube:
            return f"https://www.youtube.com/watch?v={self.value}"
        return None


def arxiv_id(text: str) -> tuple[str, int | None] | None:
    """The first arXiv id in a URL or text, as (bare id, version or None)."""
    for pattern in _ARXIV_PATTERNS:
        m = pattern.search(text)
        if m:
            version = m.group("version")
            return m.group("id"), int(version) if version else None
    return None


def bare_arxiv_id(raw: str) -> str:
    """`2411.17700v2` -> `2411.17700`; also accepts URLs and `arXiv:` mentions."""
    found = arxiv_id(raw) or arxiv_id(f"arXiv:{raw.strip()}")
    if not found:
        raise ValueError(f"not an arXiv id: {raw!r}")
    return found[0]


def youtube_id(text: str) -> str | None:
    for pattern in _YOUTUBE_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group("id")
    return None


def normalise_url(url: str) -> str:
    """Scheme and host lower-cased, `www.` dropped, utm_* and fragments stripped, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if not k.lower().startswith("utm_")])
    path = parts.path.rstrip("/")
    return urlunsplit(
        ("https" if parts.scheme in ("http", "https", "") else parts.scheme, host, path, query, "")
    )


def canonical_key(url: str, *texts: str) -> ItemKey:
    """The canonical key of an item seen at `url`, also looking for arXiv ids in `texts` (titles, ...)."""
    for text in (url, *texts):
        if not text:
            continue
        found = arxiv_id(text)
        if found:
            return ItemKey.arxiv(found[0])
    yt = youtube_id(url)
    if yt:
        return ItemKey.youtube(yt)
    return ItemKey.url(url)


def title_fingerprint(title: str) -> str:
    """A title reduced for comparison across sources: lower case, letters and digits, single spaces."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", title.lower()).split())


def match_title(title: str, index: dict[str, str], cutoff: float = 0.92) -> str | None:
    """The key whose title is the same as `title`, or nearly so (difflib ratio >= cutoff); `index` maps
    fingerprints to keys. Very short titles only match exactly."""
    fp = title_fingerprint(title)
    if not fp:
        return None
    if fp in index:
        return index[fp]
    if len(fp) < 25:
        return None
    close = get_close_matches(fp, list(index), n=1, cutoff=cutoff)
    return index[close[0]] if close else None
