"""Scraped text made safe and plain: HTML stripped (scripts included), entities decoded, JSON bodies parsed.

Shared by the community sources (Hacker News, Lobsters, YouTube). Imports only feedsvc.models and
feedsvc.sources.http.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

from feedsvc.identity import ItemKey
from feedsvc.models import SourceError
from feedsvc.sources.http import Response, safe_url

_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_TAG = re.compile(r"<!--.*?(?:-->|$)|</?[A-Za-z][^<>]*>", re.S)
_PARAGRAPH = re.compile(r"</?(?:p|div|pre|blockquote)\b[^<>]*>", re.I)
_LINE = re.compile(r"<(?:br|li)\b[^<>]*>", re.I)


def _strip_tags(text: str) -> str:
    """Entities decoded once, then script/style blocks and tags removed until nothing changes.

    Decoding first and looping means neither `&lt;script&gt;` nor `<scr<b></b>ipt>` survives as markup.
    """
    text = html.unescape(text)
    previous = None
    while text != previous:
        previous = text
        text = _DROP_BLOCKS.sub(" ", text)
        text = _TAG.sub("", text)
    return text


def plain_text(raw: str | None) -> str:
    """HTML (HN's story_text, Lobsters' description) as plain text, keeping paragraph breaks."""
    if not raw:
        return ""
    text = _strip_tags(_LINE.sub("\n", _PARAGRAPH.sub("\n\n", raw)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def clean_title(raw: str | None) -> str:
    """A title as one line of plain text: tags and entities removed, whitespace collapsed."""
    return " ".join(_strip_tags(raw or "").split())


def about_key(key: str) -> str | None:
    """`key` when it names a paper or a video (what a discussion is about), else None."""
    item = ItemKey(key)
    return item if item.is_arxiv or item.is_youtube else None


def parse_json(source: str, response: Response) -> Any:
    """The JSON body of `response`, or SourceError naming the URL and the parse problem."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as e:
        raise SourceError(
            source,
            f"malformed JSON from {safe_url(response.url)}: {str(e).splitlines()[0]} "
            f"({len(response.content)} bytes; truncated?)",
        ) from None


def iso_time(raw: Any) -> datetime | None:
    """An ISO 8601 time from an API (`2023-11-02T11:04:03.000-05:00`, `...Z`) as aware UTC, else None."""
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
