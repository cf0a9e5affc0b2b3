"""The email renderer: a `Digest` as a multipart/alternative mail, a plain-text part and an HTML part.

The HTML part (`templates/email.html.j2`) is what mail clients can show: one centred column at most
640px wide built from tables, every style inline (`style=` attributes; no `<style>`, no JavaScript, no
external images or fonts), system fonts, headings, `lang` and alt texts. Key equations are PNG images
drawn by `equation_image.latex_to_png`, attached as `Rendered.images` and referenced as
`<img src="cid:...">` with the LaTeX as alt text; a formula mathtext cannot draw is shown as LaTeX in
`<code>`. The plain-text part (`templates/email.txt.j2`) reads on its own: equations as LaTeX, links as
URLs in angle brackets.

Per-recipient links are placeholders the email channel replaces with signed URLs by a plain string
replace: `feedsvc-link:fb/<vote>/<key>` (vote up, down or less; the item key percent-encoded with
`quote(key, safe="")`, so the placeholder has no character HTML escapes and appears byte for byte the
same in both parts) and `feedsvc-link:unsubscribe`. A scraped string can never forge one: the mark is
broken in scraped text and percent-encoded in scraped URLs.

Every scraped string is escaped (Jinja autoescape in the HTML); links from scraped data are http(s)
only, others are dropped. Pure: no I/O but reading the templates, no clock. Imports only
`feedsvc.models`, its own package and Jinja2.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from feedsvc.models import LINK_MARK, VOTES, Card, Digest, Image, Rendered
from feedsvc.render.equation_image import latex_to_png, png_size
from feedsvc.render.markdown import SOURCE_LABELS

DPI = 192  # twice the CSS pixel density: equations stay sharp on high-density screens
FONTSIZE = 16  # points: 21 CSS px once shown at half the PNG's pixel size, a little above body text
CONTENT_WIDTH = 584  # the 640px column minus its padding: a wider equation is scaled down to fit
UNSUBSCRIBE = f"{LINK_MARK}unsubscribe"
SETTINGS = f"{LINK_MARK}settings"  # the recipient's delivery settings page (cadence, send time)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMPHASIS = re.compile(r"\*([^*\n]{1,300})\*")
_MARK = re.compile(re.escape(LINK_MARK), re.I)


@dataclass(frozen=True)
class EquationView:
    """How the HTML shows one key equation: the image's content id and its display size in CSS px."""

    cid: str
    width: int
    height: int


def feedback_link(vote: str, key: str) -> str:
    """The placeholder the channel turns into a signed feedback URL: `feedsvc-link:fb/<vote>/<key>`."""
    if vote not in VOTES:
        raise ValueError(f"unknown vote {vote!r}")
    encoded = quote(key, safe="")
    stripped = encoded.rstrip(".")  # the channel trims sentence punctuation after a placeholder
    return f"{LINK_MARK}fb/{vote}/{stripped}{'%2E' * (len(encoded) - len(stripped))}"


def text(value: object) -> str:
    """A scraped string made harmless for either part: no control characters, no placeholder mark."""
    s = _CONTROL.sub("", str(value))
    return _MARK.sub(lambda m: m.group(0)[:-1] + "\u2060:", s)  # a word joiner breaks the mark


def line(value: object) -> str:
    """A scraped string on one line (titles, labels)."""
    return " ".join(text(value).split())


def safe_url(url: object) -> str:
    """An http(s) URL from scraped data, fit for an attribute and for `<...>` in plain text; else ""."""
    s = _CONTROL.sub("", str(url)).strip()
    if not re.match(r"^https?://[^/\s]", s, re.I) or len(s) > 2048:
        return ""
    s = re.sub(r"[\s<>\"'`]", lambda m: quote(m.group(0)), s)
    return _MARK.sub(lambda m: m.group(0)[:-1] + "%3A", s)


def emphasis(value: object) -> Markup:
    """Escaped text with the cards' `*thread*` emphasis as `<em>` (HTML part only)."""
    return Markup(_EMPHASIS.sub(r"<em>\1</em>", str(escape(text(value)))))


def _base(base_url: str) -> str:
    b = base_url.strip().rstrip("/")
    if b and not re.match(r"^https?://[^/\s]+", b, re.I):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    return b


def _where(card: Card) -> str:
    return ", ".join(dict.fromkeys(q.where for q in card.punch))


def _equations(cards: tuple[Card, ...]) -> tuple[dict[str, EquationView | None], tuple[Image, ...]]:
    """Each distinct key equation drawn once: its view (None when it cannot be drawn) and the images."""
    views: dict[str, EquationView | None] = {}
    images: list[Image] = []
    for card in cards:
        for q in card.punch:
            if not q.is_math or q.text in views:
                continue
            png = latex_to_png(q.text, dpi=DPI, fontsize=FONTSIZE)
            size = png_size(png) if png else None
            if png is None or size is None:
                views[q.text] = None
                continue
            digest = hashlib.sha256(q.text.encode("utf-8")).hexdigest()[:12]
            cid = f"eq{len(images) + 1}.{digest}@feedsvc"
            width, height = (max(1, round(px * 96 / DPI)) for px in size)
            if width > CONTENT_WIDTH:
                width, height = CONTENT_WIDTH, max(1, round(height * CONTENT_WIDTH / width))
            views[q.text] = EquationView(cid, width, height)
            images.append(Image(cid=cid, png=png, alt=" ".join(q.text.split())))
    return views, tuple(images)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(resources.files("feedsvc.templates"))),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        text=text,
        line=line,
        url=safe_url,
        em=emphasis,
        source_label=lambda s: SOURCE_LABELS.get(str(s), line(s)),
        latex=lambda s: text(str(s).strip()),
    )
    return env


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def subject_line(digest: Digest) -> str:
    """`Daily Feed - 2024-11-28: 3 papers, 0 videos` (one line, at most 200 characters of title)."""
    papers = sum(1 for c in digest.cards if c.kind == "paper")
    videos = sum(1 for c in digest.cards if c.kind == "video")
    title = line(digest.title)[:200] or f"Digest {digest.day.isoformat()}"
    return f"{title}: {_plural(papers, 'paper')}, {_plural(videos, 'video')}"


def render_email(digest: Digest, base_url: str = "") -> Rendered:
    """The digest as an email: plain text in `body`, HTML in `html`, equation PNGs in `images`.

    `base_url` (the web archive, http(s)) adds each card's "Deeper" link (`/item/<key>`) and the link to
    the digest's archive page (`/d/<profile>/<day>`); without it they are left out.
    """
    base = _base(base_url)
    views, images = _equations(digest.cards)
    papers = sum(1 for c in digest.cards if c.kind == "paper")
    videos = sum(1 for c in digest.cards if c.kind == "video")
    on_web = base and digest.span == "day"  # the archive shows daily digests; a weekly bundle is the reader's
    archive = f"{base}/d/{quote(digest.profile, safe='')}/{digest.day.isoformat()}" if on_web else ""
    context = dict(
        digest=digest,
        papers=papers,
        videos=videos,
        equations=views,
        archive_url=archive,
        deeper={c.key: f"{base}/item/{quote(c.key, safe=':')}" if base else "" for c in digest.cards},
        feedback={
            c.key: [(feedback_link(v.name, c.key), v.label) for v in VOTES.values()] for c in digest.cards
        },
        unsubscribe=UNSUBSCRIBE,
        settings=SETTINGS,
        where={c.key: _where(c) for c in digest.cards},
    )
    env = _environment()
    body = env.get_template("email.txt.j2").render(**context)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    html = env.get_template("email.html.j2").render(**context)
    return Rendered(
        channel="email",
        body=body,
        mime="multipart/alternative",
        subject=subject_line(digest),
        html=html,
        images=images,
    )
