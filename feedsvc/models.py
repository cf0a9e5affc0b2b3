"""The vocabulary every stage speaks: plain dataclasses, the two Protocols, and the errors.

Data flows one way: sources -> store -> rank -> cards -> render -> deliver. Each stage takes and
returns these types. This module imports nothing from feedsvc and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

Kind = Literal["paper", "video", "link"]


# --- errors: raised inside a stage, converted to a message at the edge (pipeline, CLI, web) -----------


class FeedsvcError(Exception):
    """Base of every error feedsvc raises on purpose."""


class ConfigError(FeedsvcError):
    """Settings or a profile file are wrong; the message names the file, profile and field."""


class SourceError(FeedsvcError):
    """A source could not be fetched; the message is one line naming the source and the cause."""

    def __init__(self, source: str, cause: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{source}: {cause}")
        self.source = source
        self.cause = cause
        self.retry_after = retry_after


class DeliveryError(FeedsvcError):
    """A channel could not deliver a rendered digest to a recipient.

    `retry_after`: the channel was told to wait this many seconds (Telegram's RetryAfter). `gone`: the
    recipient can never be reached again (bot blocked, address rejected): the outbox deactivates them.
    `sent_parts`: how many parts of a split message did arrive before the failure, so a retry resumes.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        gone: bool = False,
        sent_parts: int = 0,
        external_id: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.gone = gone
        self.sent_parts = sent_parts
        self.external_id = external_id


# --- what sources produce ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One item as a source saw it. `key` is the canonical identity, a `feedsvc.identity.ItemKey` (a `str`;
    one read back from the store is a plain `str` of the same text)."""

    key: str
    kind: Kind
    title: str
    text: str
    url: str
    source: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    version: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fetched:
    """What one source run produced.

    status "ok": the source answered with items; "empty": it answered correctly with nothing new
    (arXiv on a weekend or holiday): not an error. `scanned` counts what the source looked at before
    filtering; `note` is a human sentence for the digest's source-discovery note.
    """

    candidates: list[Candidate]
    status: Literal["ok", "empty"] = "ok"
    scanned: int = 0
    note: str = ""


class Source(Protocol):
    """What the pipeline runs: `fetch` (raises SourceError); `units_spent`, the API quota units spent so
    far (0 for a source without a quota); `close`, which frees its connections once the run is over."""

    name: str

    @property
    def units_spent(self) -> int: ...

    def fetch(self, since: datetime) -> Fetched: ...

    def close(self) -> None: ...


# --- profiles ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thread:
    name: str
    about: str = ""
    keywords: tuple[str, ...] = ()
    seed_papers: tuple[str, ...] = ()  # bare arXiv ids
    exclude: tuple[str, ...] = ()
    share: float = 1.0


@dataclass(frozen=True)
class Profile:
    name: str
    threads: tuple[Thread, ...]
    timezone: str = "UTC"
    send_at: str = "07:30"
    papers: int = 3
    videos: int = 2
    max_age_days: int = 365
    arxiv_categories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    explore: bool = False  # one slot chosen by Thompson sampling over threads, labelled as such
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


EVERY = ("daily", "weekly")


@dataclass(frozen=True)
class Cadence:
    """`every` "daily" or "weekly" (on `weekday`, 0 = Monday) at `send_at` ("HH:MM") in `timezone`;
    `empty_note`: a day (or week) with nothing above the bar sends one line saying so, else nothing."""

    every: str = "daily"
    weekday: int = 0
    send_at: str = "07:30"
    timezone: str = "UTC"
    empty_note: bool = False

    @property
    def span(self) -> str:
        """The digest this cadence receives: "day" (the profile's daily) or "week" (its own bundle)."""
        return "week" if self.every == "weekly" else "day"


# --- what ranking produces -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """A candidate with its score, the thread it matched best, and the evidence for it."""

    candidate: Candidate
    score: float
    thread: str
    matched: tuple[str, ...] = ()  # concepts shared with the thread, strongest first
    nearest_seed: str | None = None  # title of the closest seed paper, if any
    nearest_vote: tuple[str, str] | None = None  # (title, vote) of the closest paper the reader voted on
    reasons: tuple[str, ...] = ()  # the evidence with its numbers: blend parts and weights, quality, ...
    exploration: bool = False


@dataclass(frozen=True)
class Vote:
    """A vote a reader can give an item, and every way it is written.

    `name` is what the store, the signed links and the rankers use; `code` stands for it in Telegram's
    callback data; `phrase` is what it asks for ("not for me"), after `emoji` if it has one; `verb` says in
    a card's reasons what the reader did ("you liked").
    """

    name: str
    code: str
    emoji: str
    phrase: str
    verb: str

    @property
    def words(self) -> str:
        """The vote in a sentence: "👍 more like this"."""
        return f"{self.emoji} {self.phrase}".strip()

    @property
    def label(self) -> str:
        """The vote as a link or button text: "👍 More like this"."""
        return f"{self.emoji} {self.phrase[:1].upper()}{self.phrase[1:]}".strip()

    @property
    def button(self) -> str:
        """The vote on a Telegram button, where room is short: its emoji, else its label."""
        return self.emoji or self.label


VOTES: Mapping[str, Vote] = {  # in the order every surface shows them
    v.name: v
    for v in (
        Vote("up", "u", "👍", "good pick", "liked"),
        Vote("down", "d", "👎", "not for me", "marked 👎"),
        Vote("more", "m", "", "more like this", "asked for more of"),
        Vote("less", "l", "", "less like this", "asked for less of"),
    )
}


@dataclass(frozen=True)
class Feedback:
    """A reader's vote on an item (a name in `VOTES`), with the item and its thread."""

    candidate: Candidate
    vote: str
    thread: str = ""


@dataclass(frozen=True)
class Silence:
    """An item delivered to the reader and never voted on, `age_days` after its digest was sent: not a
    vote, but the learned scorer's weak negative (`feedsvc.rank.learned.silence_weights`)."""

    candidate: Candidate
    age_days: float


# --- what the cards stage produces --------------------------------------------------------------------


_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")


def ends_a_sentence(text: str) -> bool:
    """Whether `text` ends as a sentence does: . ! or ?, then any closing quotes or brackets."""
    return bool(_SENTENCE_END.search(text.rstrip()))


@dataclass(frozen=True)
class Quote:
    """A verbatim piece of a source: an equation (LaTeX) or a sentence with numbers.

    `where` says which source text it was taken from ("abstract", "arXiv HTML, eq. (3), §2", ...).
    """

    text: str
    where: str
    is_math: bool = False

    @property
    def cut(self) -> bool:
        """Whether this prose quote stops before its sentence ends (a renderer marks it with " …")."""
        return not self.is_math and not ends_a_sentence(self.text)


@dataclass(frozen=True)
class Discussion:
    """A thread about an item elsewhere: "412 points, 97 comments on Hacker News"."""

    site: str  # "Hacker News" | "Lobsters"
    url: str
    points: int = 0
    comments: int = 0
    title: str = ""


@dataclass(frozen=True)
class Card:
    key: str
    kind: Kind
    title: str
    url: str
    domain: str
    time_cost: str
    intuition: str
    punch_intro: str
    punch: tuple[Quote, ...]
    significance: str
    why: str
    thread: str
    score: float
    writer: str = "extractive"
    # the prose fields the LLM wrote (passed or repaired by the gate); the others are the extractive writer's
    llm_fields: tuple[str, ...] = ()
    discussions: tuple[Discussion, ...] = ()
    talk_for: str = ""  # for a video card: the title of the paper pick it is a talk about
    exploration: bool = False  # chosen by the exploration slot, not by score alone
    details: str = ""  # relative path of the paper's breakdown page, when its full text was read
    # the ranker's numbers behind the pick (blend parts and weights, quality, similarities), a line each:
    # shown by the bot's /why and the web item page, never in the card body (`why` is the sentence)
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceReport:
    """One source's line in the digest's source-discovery note."""

    source: str
    status: str  # ok | empty | failed | disabled | not configured
    scanned: int
    eligible: int
    picked: int
    note: str = ""


@dataclass(frozen=True)
class Digest:
    profile: str
    day: date
    title: str
    summary: str
    cards: tuple[Card, ...]
    papers_wanted: int
    videos_wanted: int
    talk_check: str
    sources: tuple[SourceReport, ...]
    shortfall: str = ""  # why fewer picks than wanted, if so
    span: str = "day"  # "week": a weekly recipient's bundle of the week ending `day`


@dataclass(frozen=True)
class Image:
    """An inline image of a rendered digest (an equation as PNG), referenced by content id."""

    cid: str
    png: bytes
    alt: str


LINK_MARK = "feedsvc-link:"  # per-recipient placeholders: feedsvc-link:fb/down/<quoted key>, …:unsubscribe


@dataclass(frozen=True)
class Rendered:
    """A digest in one channel's form.

    `parts`: the messages of a channel that splits (Telegram); `part_keys`: the item key of the card each
    part carries ("" for the header or the note), for the channel's feedback buttons; `equations`: the key
    equations (LaTeX, as quoted) of each card that has any, by item key, for a channel that offers them
    apart (Telegram's equation-image button). `subject`, `html`
    and `images`: email's subject line, HTML alternative and inline images. Per-recipient links (feedback,
    unsubscribe) appear as placeholder URLs starting with `LINK_MARK`; the channel replaces them with
    signed URLs for each recipient.
    """

    channel: str
    body: str
    mime: str = "text/markdown"
    parts: tuple[str, ...] = ()
    part_keys: tuple[str, ...] = ()
    equations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subject: str = ""
    html: str = ""
    images: tuple[Image, ...] = ()


Renderer = Callable[[Digest], Rendered]  # pure: no I/O, no clock


@dataclass(frozen=True)
class Recipient:
    """Who receives a profile's digests on one channel: a chat id, an email address or a directory.

    `id` is the store's recipient id (0 outside the store); signed links carry it.
    """

    profile: str
    channel: str
    address: str
    id: int = 0


PartSent = Callable[[int, str], None]  # (parts sent so far, external message id): a split message's progress


class Channel(Protocol):
    name: str

    def send(
        self, rendered: Rendered, recipient: Recipient, *, start: int = 0, on_part: PartSent | None = None
    ) -> str:  # the external message id(s); raises DeliveryError
        ...


# --- the study list (issue 17) -------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyEntry:
    """One paper on a reader's study list, as every surface shows it (web, JSON, Atom, Telegram, Markdown)."""

    key: str
    title: str
    authors: tuple[str, ...]
    year: int | None
    abstract: str
    summary: str  # the abstract's first sentences, about two lines
    url: str
    added: datetime
    threads: tuple[str, ...]  # "" = every thread of the profile; empty: none known (a vote outside a digest)
    tags: tuple[str, ...]  # imported, liked, seed, canonical, and the library file's own tags
    difficulty: str  # gentle | moderate | demanding
    difficulty_score: float  # 0 .. 1
    difficulty_why: str  # the figures behind it, one line
    breakdown: bool  # its full text was read: the item page has its breakdown
    cited_by: int = 0  # how many of the list's read papers cite it


@dataclass(frozen=True)
class StudyList:
    profile: str
    entries: tuple[StudyEntry, ...]  # newest first, after the filters
    total: int  # before the filters
    threads: tuple[str, ...]  # every thread on the list, for the filters
    tags: tuple[str, ...]  # every tag on the list, for the filters
