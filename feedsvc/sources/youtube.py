"""The YouTube source: long-form talks from chosen channels and topic searches, and the author-talk check.

Calls the YouTube Data API v3 directly with httpx (GET /youtube/v3/<resource>, JSON answers), retried
under `feedsvc.retry`'s policy. `fetch(since)` walks each channel's uploads playlist (`UU…`,
playlistItems.list, 1 unit), runs up to `search_budget` topic searches (search.list, 100 units each), then
asks videos.list (1 unit per 50 videos) for durations, views and channels, and drops videos shorter than
`min_duration_s` (Shorts, clips, trailers). Every call is paid from a `QuotaBudget` first; when a search
cannot be paid, searches stop with the reason in the note and the cheap calls go on. `find_talk(paper)`
searches the paper's exact title and accepts a video only when it really is about that paper.
Without an API key nothing is fetched: `fetch` returns an "empty" result with a notice, not an error.
HTTP errors, time-outs and malformed answers raise `SourceError` with the API's reason and message; an
answer past `http_max_bytes` (decoded) or `http_deadline` is refused at once (`feedsvc.bounded`);
the key (sent as `key=` in every request URL) never appears in messages, and is redacted from
httpx's log records.
Imports only feedsvc.models, feedsvc.config, feedsvc.identity, feedsvc.bounded, feedsvc.retry and
feedsvc.sources (never feedsvc.store).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx

from feedsvc.bounded import Refused, fetch_bounded
from feedsvc.config import Settings
from feedsvc.identity import ItemKey, arxiv_id
from feedsvc.models import Candidate, Fetched, SourceError
from feedsvc.retry import GaveUp, RetryPolicy, Transient
from feedsvc.sources.text import clean_title, iso_time

NAME = "youtube"
COSTS = {"search.list": 100, "videos.list": 1, "playlistItems.list": 1}
VIDEOS_BATCH = 50
PLAYLIST_PAGE = 50
SEARCH_RESULTS = 25
TALK_RESULTS = 10
DEFAULT_DAILY_QUOTA = 10_000  # YouTube's default daily quota per project
NO_KEY_NOTE = "skipped: no YouTube API key configured (set FEEDSVC_YOUTUBE_API_KEY)"
WATCH_URL = "https://www.youtube.com/watch?v={}"
API_ROOT = "https://youtube.googleapis.com"  # the Data API's root; methods live under /youtube/v3/

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_KEY_PARAM = re.compile(r"([?&]key=)[^&\s'\"]+", re.I)
_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of", "on"}
    | {"or", "the", "to", "via", "with", "without", "towards", "using", "our", "we", "their", "its"}
    | {"this", "that", "these", "those", "how", "what", "why", "when"}
)


# --- quota -----------------------------------------------------------------------------------------------


class QuotaBudget(Protocol):
    """Units left for today. `spend` takes `units` and returns True, or returns False and takes nothing."""

    @property
    def remaining(self) -> int: ...

    def spend(self, units: int) -> bool: ...


class MemoryQuota:
    """A daily budget kept in memory; starts afresh at midnight Pacific time, as YouTube's quota does."""

    _ZONE = ZoneInfo("America/Los_Angeles")

    def __init__(
        self, daily_units: int = DEFAULT_DAILY_QUOTA, *, clock: Callable[[], datetime] | None = None
    ):
        self.daily_units = daily_units
        self._clock = clock or (lambda: datetime.now(UTC))
        self._day = self._today()
        self._spent = 0

    def _today(self) -> date:
        return self._clock().astimezone(self._ZONE).date()

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._spent = today, 0

    @property
    def remaining(self) -> int:
        self._roll()
        return max(0, self.daily_units - self._spent)

    def spend(self, units: int) -> bool:
        if units > self.remaining:
            return False
        self._spent += units
        return True


# --- helpers ---------------------------------------------------------------------------------------------


def duration_seconds(value: str | None) -> int | None:
    """An ISO 8601 duration as YouTube gives it (`PT1H9M3S`, `P1DT2M`, `P0D`) in seconds, or None."""
    m = _DURATION.match((value or "").strip())
    if not m or value in ("P", "PT"):
        return None
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return int(parts["w"] * 604800 + parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"])


def _rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _norm(text: str) -> str:
    """Lower-case ASCII words: for comparing titles whatever their punctuation, accents or markup."""
    text = unicodedata.normalize("NFKD", clean_title(text)).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _words(text: str) -> set[str]:
    return {w for w in _norm(text).split() if len(w) > 2 and w not in _STOPWORDS}


def _surname(author: str) -> str:
    words = _norm(author).split()
    return words[-1] if words else ""


def uploads_playlist(channel_id: str) -> str | None:
    """The uploads playlist of a channel (`UCxyz` -> `UUxyz`); None for something that is not a channel id."""
    channel_id = channel_id.strip()
    if channel_id.startswith("UC") and len(channel_id) > 2:
        return "UU" + channel_id[2:]
    return None


def _redact(text: str, key: str | None) -> str:
    text = _KEY_PARAM.sub(r"\1***", text)
    return text.replace(key, "***") if key else text


class _RedactKeyFilter(logging.Filter):
    """Removes `key=…` from httpx's log records (it logs every request URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "key=" in message.lower():
            record.msg, record.args = _redact(message, None), None
        return True


_LOG_FILTER = _RedactKeyFilter()


def _install_log_filter() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


# --- the talk check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TalkCheck:
    """The outcome of looking for a talk about one paper, with the reason either way."""

    query: str
    searched: bool
    found: Candidate | None
    reason: str


def talk_match(paper: Candidate, video: Candidate) -> str | None:
    """Why `video` is about `paper` ("arXiv id in description", ...), or None when it is not."""
    bare = ItemKey(paper.key).arxiv_id
    if bare is None:
        found = arxiv_id(paper.url) or arxiv_id(paper.title)
        bare = found[0] if found else None
    if bare:
        for where, text in (("title", video.title), ("description", video.text)):
            if re.search(rf"(?<![\d.]){re.escape(bare)}(?!\d)", text):
                return f"arXiv id in {where}"
    p_title, v_title = _norm(paper.title), _norm(video.title)
    if not p_title or not v_title:
        return None
    if len(p_title) >= 12 and p_title in v_title:
        return "paper title contained in video title"
    ratio = difflib.SequenceMatcher(None, p_title, v_title).ratio()
    if ratio >= 0.6:
        return f"title similarity {ratio:.2f}"
    words = _words(paper.title)
    if words:
        overlap = len(words & _words(video.title)) / len(words)
        haystack = set(_norm(" ".join((video.title, video.text, *video.authors))).split())
        surnames = [s for s in (_surname(a) for a in paper.authors) if len(s) > 1 and s in haystack]
        if surnames and overlap >= 0.5:
            return f"author surname '{surnames[0]}' and {overlap:.0%} title-word overlap"
    return None


# --- the source ------------------------------------------------------------------------------------------


class YouTubeSource:
    name = NAME

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None,
        channels: Sequence[str] = (),
        topic_queries: Sequence[str] = (),
        min_duration_s: int = 240,
        search_budget: int = 5,
        base_url: str | None = None,
        quota: QuotaBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._key = (api_key or "").strip() or None
        self.channels = tuple(c.strip() for c in channels if c.strip())
        self.topic_queries = tuple(q.strip() for q in topic_queries if q.strip())
        self.min_duration_s = min_duration_s
        self.search_budget = max(0, search_budget)
        self.base_url = base_url or API_ROOT
        self.quota: QuotaBudget = quota if quota is not None else MemoryQuota(settings.youtube_daily_quota)
        self.timeout = settings.http_timeout
        self.retry = RetryPolicy.from_settings(settings, sleep=sleep)
        self.http: httpx.Client | None = None  # made on the first call; `close()` (or the pipeline) closes it
        self.units_spent = 0  # quota units this source spent

    def __repr__(self) -> str:  # never show the key
        return f"YouTubeSource(channels={self.channels!r}, topic_queries={self.topic_queries!r})"

    @property
    def configured(self) -> bool:
        return self._key is not None

    def _http(self) -> httpx.Client:
        if self.http is None:
            _install_log_filter()
            self.http = httpx.Client(
                headers={"User-Agent": self.settings.user_agent}, timeout=self.timeout, follow_redirects=True
            )
        return self.http

    def close(self) -> None:
        """Close the HTTP client's connections, if it was made."""
        if self.http is not None:
            self.http.close()
            self.http = None

    # --- calls -----------------------------------------------------------------------------------------

    def _pay(self, method: str) -> bool:
        if not self.quota.spend(COSTS[method]):
            return False
        self.units_spent += COSTS[method]
        return True

    def _execute(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET one API method (`search.list` -> /youtube/v3/search) under the retry policy (5xx, 429,
        time-outs, connection errors); its JSON object, or SourceError naming `method`."""
        url = f"{self.base_url.rstrip('/')}/youtube/v3/{method.removesuffix('.list')}"
        try:
            body = self.retry.call(f"YouTube {method}", lambda: self._try(url, {**params, "key": self._key}))
        except GaveUp as e:
            tries = f"after {e.attempts} attempts" if " HTTP " in e.cause else f"({e.attempts} attempts)"
            wait = self._quota_wait(e.cause)
            raise SourceError(NAME, f"{e.cause} {tries} ({method})", retry_after=wait) from None
        except SourceError as e:
            raise SourceError(NAME, f"{e.cause} ({method})", retry_after=e.retry_after) from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise SourceError(
                NAME,
                f"malformed answer from the YouTube API: not JSON ({len(body)} bytes; truncated?) ({method})",
            ) from None
        if not isinstance(answer, dict):
            raise SourceError(NAME, f"unexpected answer from the YouTube API: not an object ({method})")
        return answer

    def _try(self, url: str, params: dict[str, Any]) -> bytes:
        """One request's body; `Transient` for 5xx, 429, time-outs and connection errors, else SourceError
        (an answer past the size cap or the deadline among them)."""
        try:
            r, content = fetch_bounded(
                self._http(),
                "GET",
                url,
                params=params,
                max_bytes=self.settings.http_max_bytes,
                deadline=self.settings.http_deadline,
            )
        except Refused as e:
            raise SourceError(NAME, f"YouTube API at {httpx.URL(url).netloc.decode()}: {e}") from None
        except httpx.TimeoutException:
            raise Transient(f"YouTube API timed out after {self.timeout} s") from None
        except httpx.TransportError as e:
            detail = _redact(f"{type(e).__name__}: {e}".splitlines()[0], self._key)
            raise Transient(f"YouTube API connection failed: {detail}") from None
        if r.status_code == 200:
            return content
        cause = self._error_cause(r.status_code, content)
        if r.status_code >= 500 or r.status_code == 429:
            raise Transient(cause)
        raise SourceError(NAME, cause, retry_after=self._quota_wait(cause))

    def _quota_wait(self, cause: str) -> float | None:
        """A spent daily quota comes back at midnight Pacific time: say when, so runs can wait."""
        return self._until_quota_reset() if "quotaExceeded" in cause else None

    def _until_quota_reset(self) -> float:
        now = datetime.now(UTC).astimezone(MemoryQuota._ZONE)
        midnight = datetime.combine(now.date() + timedelta(days=1), dtime(0), tzinfo=MemoryQuota._ZONE)
        return (midnight - now).total_seconds()

    def _error_cause(self, status: int, content: bytes) -> str:
        """ "YouTube API HTTP 403 quotaExceeded: <message>" from Google's error body, without the key."""
        reasons: list[str] = []
        message = ""
        try:
            body = json.loads(content.decode("utf-8", "replace"))
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            for item in error.get("errors") or ():
                if isinstance(item, dict) and item.get("reason") and item["reason"] not in reasons:
                    reasons.append(str(item["reason"]))
            if not reasons and error.get("status"):
                reasons.append(str(error["status"]))
        reason = ", ".join(reasons)
        head = f"YouTube API HTTP {status}" + (f" {reason}" if reason else "")
        message = " ".join(message.split())
        return _redact(f"{head}: {message}" if message else head, self._key)

    # --- the listing -----------------------------------------------------------------------------------

    def fetch(self, since: datetime) -> Fetched:
        if not self.configured:
            return Fetched([], status="empty", note=NO_KEY_NOTE)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        found: dict[str, None] = {}  # video ids in order of discovery
        notes: list[str] = []
        stopped: list[str] = []

        listed = 0
        for channel in self.channels:
            playlist = uploads_playlist(channel)
            if playlist is None:
                notes.append(f"not a channel id: {channel!r}")
                continue
            if not self._pay("playlistItems.list"):
                stopped.append(
                    f"quota exhausted ({self.quota.remaining} units left): channel uploads not read"
                )
                break
            answer = self._execute(
                "playlistItems.list",
                {"part": "snippet,contentDetails", "playlistId": playlist, "maxResults": PLAYLIST_PAGE},
            )
            for item in _items(answer):
                snippet = item.get("snippet") or {}
                details = item.get("contentDetails") or {}
                vid = details.get("videoId") or (snippet.get("resourceId") or {}).get("videoId")
                when = iso_time(details.get("videoPublishedAt") or snippet.get("publishedAt"))
                listed += 1
                if isinstance(vid, str) and (when is None or when > since):
                    found.setdefault(vid)

        searched = 0
        for query in self.topic_queries[: self.search_budget]:
            if not self._pay("search.list"):
                stopped.append(
                    f"search budget exhausted ({self.quota.remaining} units left, a search costs "
                    f"{COSTS['search.list']}): {len(self.topic_queries[: self.search_budget]) - searched} "
                    "topic searches skipped"
                )
                break
            answer = self._execute(
                "search.list",
                {
                    "part": "snippet",
                    "q": query,
                    "type": "video",
                    "maxResults": SEARCH_RESULTS,
                    "order": "relevance",
                    "publishedAfter": _rfc3339(since),
                },
            )
            searched += 1
            for item in _items(answer):
                vid = (item.get("id") or {}).get("videoId") if isinstance(item.get("id"), dict) else None
                if isinstance(vid, str):
                    found.setdefault(vid)
        if len(self.topic_queries) > self.search_budget:
            notes.append(
                f"{len(self.topic_queries) - self.search_budget} topic queries beyond the search budget"
            )

        videos, unpaid = self._videos(list(found))
        if unpaid:
            stopped.append(f"quota exhausted: details of {unpaid} videos not fetched")
        fresh = [v for v in videos if v.published is None or v.published > since]
        kept = [v for v in fresh if (v.meta.get("duration_s") or 0) >= self.min_duration_s]
        short = len(fresh) - len(kept)

        note = (
            f"{len(self.channels)} channels ({listed} uploads listed), {searched} searches, "
            f"{len(found)} videos, {len(kept)} kept"
        )
        if short:
            note += f", {short} shorter than {self.min_duration_s} s dropped"
        note = "; ".join([note, *notes, *stopped])
        return Fetched(kept, status="ok" if kept else "empty", scanned=len(found), note=note)

    def _videos(self, ids: Sequence[str]) -> tuple[list[Candidate], int]:
        """Candidates for `ids` from videos.list, and how many ids the quota could not pay for."""
        out: list[Candidate] = []
        for start in range(0, len(ids), VIDEOS_BATCH):
            batch = list(ids[start : start + VIDEOS_BATCH])
            if not self._pay("videos.list"):
                return out, len(ids) - start
            answer = self._execute(
                "videos.list",
                {
                    "part": "snippet,contentDetails,statistics",
                    "id": ",".join(batch),
                    "maxResults": len(batch),
                },
            )
            out.extend(c for c in (_video(item) for item in _items(answer)) if c is not None)
        return out, 0

    # --- the author-talk check -------------------------------------------------------------------------

    def find_talk(self, paper: Candidate) -> TalkCheck:
        """Look for a talk about `paper` by its exact title; raises SourceError when the API fails."""
        title = clean_title(paper.title)
        query = f'"{title}"'
        if not self.configured:
            return TalkCheck(query, False, None, NO_KEY_NOTE)
        if not title:
            return TalkCheck(query, False, None, "skipped: the paper has no title")
        if not self._pay("search.list"):
            return TalkCheck(
                query, False, None, f"budget exhausted: search not run ({self.quota.remaining} units left)"
            )
        params: dict[str, Any] = {
            "part": "snippet",
            "q": query,
            "type": "video",
            "maxResults": TALK_RESULTS,
            "order": "relevance",
        }
        if paper.published is not None:
            params["publishedAfter"] = _rfc3339(paper.published)
        answer = self._execute("search.list", params)
        results = [c for c in (_search_result(item) for item in _items(answer)) if c is not None]
        if not results:
            return TalkCheck(query, True, None, "the search returned no video")

        refused: list[str] = []
        for video in results:
            why = talk_match(paper, video)
            if why is None:
                continue
            if paper.published and video.published and video.published < paper.published:
                refused.append(f"'{video.title}' matches ({why}) but was published before the paper")
                continue
            details, _ = self._videos([ItemKey(video.key).value])
            talk = next((d for d in details if d.key == video.key), None) or video
            duration = talk.meta.get("duration_s")
            if duration is not None and duration < self.min_duration_s:
                refused.append(f"'{video.title}' matches ({why}) but lasts only {duration} s")
                continue
            return TalkCheck(query, True, talk, f"accepted: {why}")
        if refused:
            return TalkCheck(query, True, None, "refused: " + "; ".join(refused))
        return TalkCheck(query, True, None, f"no talk among the {len(results)} videos the search returned")


def _items(answer: dict[str, Any]) -> Iterable[dict[str, Any]]:
    items = answer.get("items")
    if items is None:
        return ()
    if not isinstance(items, list):
        raise SourceError(NAME, "unexpected answer from the YouTube API: 'items' is not a list")
    return [i for i in items if isinstance(i, dict)]


def _video(item: dict[str, Any]) -> Candidate | None:
    vid = item.get("id")
    if not isinstance(vid, str) or not vid:
        return None
    snippet = item.get("snippet") or {}
    details = item.get("contentDetails") or {}
    stats = item.get("statistics") or {}
    channel = clean_title(snippet.get("channelTitle"))
    return Candidate(
        key=ItemKey.youtube(vid),
        kind="video",
        title=clean_title(snippet.get("title")),
        text=(snippet.get("description") or "").strip(),
        url=WATCH_URL.format(vid),
        source=NAME,
        authors=(channel,) if channel else (),
        published=iso_time(snippet.get("publishedAt")),
        meta={
            "duration_s": duration_seconds(details.get("duration")),
            "views": _int(stats.get("viewCount")),
            "channel": channel,
            "channel_id": snippet.get("channelId"),
        },
    )


def _search_result(item: dict[str, Any]) -> Candidate | None:
    """A search hit as a Candidate without duration or views (search.list does not give them)."""
    ident = item.get("id")
    vid = ident.get("videoId") if isinstance(ident, dict) else None
    if not isinstance(vid, str):
        return None
    snippet = item.get("snippet") or {}
    channel = clean_title(snippet.get("channelTitle"))
    return Candidate(
        key=ItemKey.youtube(vid),
        kind="video",
        title=clean_title(snippet.get("title")),  # search titles come HTML-escaped ("World&#39;s")
        text=clean_title(snippet.get("description")),
        url=WATCH_URL.format(vid),
        source=NAME,
        authors=(channel,) if channel else (),
        published=iso_time(snippet.get("publishTime") or snippet.get("publishedAt")),
        meta={"duration_s": None, "views": None, "channel": channel, "channel_id": snippet.get("channelId")},
    )
