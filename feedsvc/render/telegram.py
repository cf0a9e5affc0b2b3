"""The Telegram renderer: a `Digest` as Telegram messages in HTML parse mode.

Parts: a header (title, bundle line, summary, shortfall, author-talk check, the web archive link when a
base URL is given), then each card (one part, or more when it is too long), then the source-discovery
note. `part_keys` names the card each part carries ("" for the header and the note). Telegram's rules:
only its tags (we use b, i, a, pre, code, blockquote), every text escaped (`html.escape`), links
http(s) only, each part at most 4096 UTF-16 code units. We count the raw HTML, which is never shorter
than what Telegram counts (the text after entity parsing). A long card is split between paragraphs,
never inside a tag; a paragraph longer than a whole message is cut at a character boundary with "…"
and a note saying so.

Key equations are shown as Unicode (`feedsvc.render.math_text`) in `<pre><code class="language-math">`;
`Rendered.equations` carries them as LaTeX, so the channel can offer each card's as an image.
Inline `$x$` in titles and prose becomes Unicode too. Pure: no I/O, no clock. Imports only
`feedsvc.models` and its own package.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import quote

from feedsvc.models import Card, Digest, Rendered
from feedsvc.render.markdown import SOURCE_LABELS
from feedsvc.render.math_text import latex_to_unicode

LIMIT = 4096  # Telegram's limit for a message's text, in UTF-16 code units
MAX_URL = 2048  # longer links are not linked: a link must never crowd a message
MATH_OPEN = '<pre><code class="language-math">'
MATH_CLOSE = "</code></pre>"
CUT_NOTE = "… [cut here: too long for one Telegram message]"
_INLINE_MATH = re.compile(r"\$(?![\s\d])([^$\n]{1,300}?)(?<!\s)\$")
_EMPHASIS = re.compile(r"\*([^*\n]{1,300})\*")


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units, as Telegram counts (an astral character such as 𝔼 counts 2)."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def clean(text: object) -> str:
    """Text Telegram can take: a surrogate pair left as two code points is joined, a lone one becomes
    U+FFFD (JSON from a scraped page can carry either)."""
    return str(text).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def esc(text: object) -> str:
    return html.escape(clean(text), quote=False)


def href(url: object) -> str | None:
    """An attribute-safe http(s) URL, or None for anything else (javascript:, data:, over-long)."""
    s = str(url).strip()
    if not re.match(r"^https?://[^\s]+$", s, re.I) or len(s) > MAX_URL:
        return None
    return html.escape(clean(s), quote=True)


def prose(text: object) -> str:
    """Scraped prose made readable in Telegram: inline `$…$` math as Unicode (a `$5 and $10` is left
    alone: its insides start with a digit or end with a space)."""
    return _INLINE_MATH.sub(lambda m: latex_to_unicode(m.group(1)), str(text))


def plain_emphasis(text: object) -> str:
    """Our own `*thread*` emphasis (Markdown) as quotation marks: Telegram HTML would show the stars."""
    return _EMPHASIS.sub(lambda m: f"“{m.group(1)}”", str(text))


@dataclass(frozen=True)
class Block:
    """A paragraph: fixed HTML around one run of text that is escaped here and may be cut to fit."""

    head: str
    text: str
    tail: str = ""
    sep: str = "\n\n"  # what joins it to the block before, in the same message

    def html(self) -> str:
        return f"{self.head}{esc(self.text)}{self.tail}"

    def fitted(self, limit: int) -> str:
        """This block, its text cut at a character boundary with a note, so that it fits `limit`."""
        whole = self.html()
        if utf16_len(whole) <= limit:
            return whole
        lo, hi = 0, len(self.text)
        while lo < hi:  # the longest prefix that fits (escaping only grows, so this is monotonic)
            mid = (lo + hi + 1) // 2
            if utf16_len(f"{self.head}{esc(self.text[:mid])}{esc(CUT_NOTE)}{self.tail}") <= limit:
                lo = mid
            else:
                hi = mid - 1
        return f"{self.head}{esc(self.text[:lo].rstrip())}{esc(CUT_NOTE)}{self.tail}"


def pack(blocks: list[Block], limit: int = LIMIT) -> list[str]:
    """Blocks into as few messages as they fit, in order, each within `limit` UTF-16 units."""
    parts: list[str] = []
    current = ""
    for block in blocks:
        piece = block.fitted(limit)
        if current and utf16_len(current + block.sep + piece) > limit:
            parts.append(current)
            current = piece
        else:
            current = f"{current}{block.sep}{piece}" if current else piece
    if current:
        parts.append(current)
    return parts


def _link(url: str | None, text: str, *, bold: bool = False, sep: str = "\n\n", prefix: str = "") -> Block:
    target = href(url) if url else None
    b_open, b_close = ("<b>", "</b>") if bold else ("", "")
    if target is None:
        return Block(f"{prefix}{b_open}", text, b_close, sep)
    return Block(f'{prefix}{b_open}<a href="{target}">', text, f"</a>{b_close}", sep)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def header_blocks(digest: Digest, base_url: str = "") -> list[Block]:
    papers = sum(1 for c in digest.cards if c.kind == "paper")
    videos = sum(1 for c in digest.cards if c.kind == "video")
    blocks = [
        Block("<b>", prose(digest.title), "</b>"),
        Block(
            "",
            f"{_plural(papers, 'paper pick')} + {_plural(videos, 'video pick')} "
            "(same bundle on every channel).",
            "",
            "\n",
        ),
        Block("", prose(digest.summary)),
    ]
    if digest.shortfall:
        blocks.append(Block("<b>Fewer picks than asked for:</b> ", digest.shortfall))
    if digest.talk_check:
        blocks.append(Block("<b>Author-talk check:</b> ", plain_emphasis(prose(digest.talk_check))))
    if base_url:
        day = digest.day.isoformat()
        url = f"{base_url.rstrip('/')}/d/{quote(digest.profile, safe='')}/{day}"
        if href(url):
            blocks.append(_link(url, "This digest on the web"))
    return blocks


def card_blocks(card: Card, base_url: str = "") -> list[Block]:
    blocks = [
        _link(card.url, prose(card.title), bold=True),
        Block("<i>", f"{card.domain} | {card.time_cost}", "</i>", "\n"),
    ]
    if card.exploration:
        blocks.append(
            Block(
                "<i>",
                "Exploration pick: a thread drawn by Thompson sampling over your votes, "
                "to learn what you like.",
                "</i>",
            )
        )
    if card.talk_for:
        blocks.append(Block("<b>A talk about a paper in this digest:</b> <i>", prose(card.talk_for), "</i>"))
    blocks.append(Block("<b>Intuition:</b> ", prose(card.intuition)))
    blocks.append(Block("<b>Concrete punch:</b> ", prose(card.punch_intro)))
    for q in card.punch:
        if q.is_math:
            blocks.append(Block(MATH_OPEN, latex_to_unicode(q.text), MATH_CLOSE))
        else:
            blocks.append(Block("<blockquote>", prose(q.text) + (" …" if q.cut else ""), "</blockquote>"))
    if card.punch:
        where = ", ".join(dict.fromkeys(q.where for q in card.punch))
        shown = (
            " The equation is shown in Unicode; the ∑ button sends it typeset."
            if any(q.is_math for q in card.punch)
            else ""
        )
        blocks.append(Block("<i>", f"Quoted verbatim from the {where}.{shown}", "</i>"))
    if card.significance:
        blocks.append(Block("<b>Significance:</b> ", prose(card.significance)))
    if card.why:
        blocks.append(Block("<b>Why it matches:</b> ", plain_emphasis(card.why)))
    if card.writer != "extractive":
        blocks.append(
            Block(
                "<i>",
                f"Prose by {card.writer}, every number and formula checked against the "
                "paper; the punch is quoted from it.",
                "</i>",
            )
        )
    for i, d in enumerate(card.discussions):
        label = f"{d.points} points, {d.comments} comments on {d.site}"
        prefix = "<b>Discussion:</b> " if i == 0 else "• "
        blocks.append(_link(d.url, label, prefix=prefix, sep="\n\n" if i == 0 else "\n"))
    if base_url:
        url = f"{base_url.rstrip('/')}/item/{quote(card.key, safe=':')}"
        label = "breakdown and formula notes" if card.details else "this pick on the web"
        if href(url):
            blocks.append(_link(url, label, prefix="<b>Deeper:</b> "))
    return blocks


def note_blocks(digest: Digest) -> list[Block]:
    blocks = [Block("<b>", "Source-discovery note", "</b>")]
    for s in digest.sources:
        label = SOURCE_LABELS.get(s.source, s.source)
        blocks.append(Block(f"• <b>{esc(label)}:</b> ", s.note or s.status, "", "\n"))
    return blocks


def equations_by_card(digest: Digest) -> dict[str, tuple[str, ...]]:
    """The key equations (LaTeX) of each card that has any, by item key."""
    found = {c.key: tuple(q.text for q in c.punch if q.is_math) for c in digest.cards}
    return {key: latex for key, latex in found.items() if latex}


def render_telegram(digest: Digest, base_url: str = "") -> Rendered:
    """The digest as Telegram HTML messages: header, one or more parts per card, source-discovery note."""
    parts: list[str] = []
    keys: list[str] = []
    for blocks, key in (
        (header_blocks(digest, base_url), ""),
        *((card_blocks(card, base_url), card.key) for card in digest.cards),
        (note_blocks(digest), ""),
    ):
        for part in pack(blocks):
            parts.append(part)
            keys.append(key)
    return Rendered(
        channel="telegram",
        body="\n\n".join(parts),
        mime="text/html",
        parts=tuple(parts),
        part_keys=tuple(keys),
        equations=equations_by_card(digest),
        subject=digest.title,
    )
