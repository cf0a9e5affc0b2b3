"""Canonical keys: one identity per item, whatever URL, version or source it arrives through.

arXiv: `arxiv:<bare id without version>`; YouTube: `youtube:<video id>`; anything else:
`url:<normalised URL>`. Pure functions; imports nothing from feedsvc.
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


def canonical_key(url: str, *texts: str) -> str:
    """The canonical key of an item seen at `url`, also looking for arXiv ids in `texts` (titles, ...)."""
    for text in (url, *texts):
        if not text:
            continue
        found = arxiv_id(text)
        if found:
            return f"arxiv:{found[0]}"
    yt = youtube_id(url)
    if yt:
        return f"youtube:{yt}"
    return f"url:{normalise_url(url)}"


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
