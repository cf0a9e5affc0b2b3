"""A reader's study list as text: Markdown in the spirit of seed 001 (each paper's tags, title, authors
and year, a two-line abstract, "Read the breakdown →") and the Telegram message of `/library`. Pure: the
list and the archive's base URL in, text out; every scraped string escaped for its format."""

from __future__ import annotations

from urllib.parse import quote

from feedsvc.models import StudyEntry, StudyList
from feedsvc.render.markdown import md, md_link_text, md_url
from feedsvc.render.telegram import LIMIT, esc, href, prose, utf16_len

MAX_AUTHORS = 3


def item_url(base_url: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/item/{quote(key, safe=':')}"


def byline(e: StudyEntry) -> str:
    """ "A, B, C +2 more · 2017": the seed's line of authors and year."""
    names = ", ".join(e.authors[:MAX_AUTHORS])
    if len(e.authors) > MAX_AUTHORS:
        names += f" +{len(e.authors) - MAX_AUTHORS} more"
    return " · ".join(p for p in (names, str(e.year) if e.year else "") if p)


def _filters(thread: str, tag: str) -> str:
    shown = [f"thread “{thread}”" if thread else "", f"tag “{tag}”" if tag else ""]
    return " and ".join(s for s in shown if s)


def _md_entry(e: StudyEntry, base_url: str) -> list[str]:
    chips = " ".join(f"`{md(t).replace('`', '')}`" for t in (*e.tags, e.difficulty.capitalize()))
    threads = ", ".join(f"*{md(t)}*" for t in e.threads if t) or "every thread"
    lines = [
        chips,
        "",
        f"### [{md_link_text(e.title)}]({md_url(e.url)})",
        "",
        f"{md(byline(e))} · {threads}",
        "",
    ]
    if e.summary:
        lines += [f"> {md(e.summary)}", ""]
    lines.append(f"Difficulty: {md(e.difficulty_why)}")
    lines.append("")
    if e.breakdown:
        lines += [f"[Read the breakdown →]({md_url(item_url(base_url, e.key) + '#breakdown')})", ""]
    return lines


def study_markdown(shelf: StudyList, base_url: str, *, thread: str = "", tag: str = "") -> str:
    """The list as one Markdown document, newest first (`thread`, `tag`: the filters it was made with)."""
    head = [f"# Study list: {md(shelf.profile)}", ""]
    shown = _filters(thread, tag)
    count = (
        f"{len(shelf.entries)} of {shelf.total} papers ({md(shown)})" if shown else f"{shelf.total} papers"
    )
    head += [f"{count}, newest first: imported, voted 👍, or seeding a thread.", ""]
    body = [line for e in shelf.entries for line in ["---", "", *_md_entry(e, base_url)]]
    if not shelf.entries:
        body = ["Nothing here yet: import a library (`feedsvc profile import`) or tap 👍 on a card.", ""]
    return "\n".join(head + body).rstrip() + "\n"


def _telegram_entry(n: int, e: StudyEntry, base_url: str) -> str:
    link = href(e.url)
    title = esc(prose(e.title))
    title = f'<a href="{link}">{title}</a>' if link else title
    lines = [f"{n}. <b>{title}</b>", esc(byline(e)) + f" · {esc(e.difficulty)}"]
    page = href(item_url(base_url, e.key) + "#breakdown") if e.breakdown and base_url else None
    if page:
        lines.append(f'<a href="{page}">Read the breakdown →</a>')
    return "\n".join(lines)


def study_telegram(shelf: StudyList, base_url: str, last: int = 5) -> str:
    """The `/library` answer: the last `last` additions with links, and where the whole list is."""
    if not shelf.entries:
        return (
            f"The study list of <b>{esc(shelf.profile)}</b> is empty: import a library "
            "(<code>feedsvc profile import</code>) or tap 👍 on a card."
        )
    shown = min(last, len(shelf.entries))
    head = f"<b>Study list of {esc(shelf.profile)}</b>: the last {shown} of {shelf.total}"
    parts = [head]
    for n, e in enumerate(shelf.entries[:last], start=1):
        piece = _telegram_entry(n, e, base_url)
        if utf16_len("\n\n".join([*parts, piece])) > LIMIT - 200:
            break
        parts.append(piece)
    whole = href(f"{base_url.rstrip('/')}/library/{quote(shelf.profile, safe='')}") if base_url else None
    if whole:
        parts.append(f'<a href="{whole}">The whole list</a>')
    return "\n\n".join(parts)
