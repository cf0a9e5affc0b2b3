"""The public card interface, for evaluation harnesses: candidates (and their full texts) in, cards out.

`feedsvc card --candidates FILE.jsonl --json` calls `public_cards`; each candidate is read as for
`feedsvc rank`, plus an optional `fulltext` path in its meta (an arXiv e-print: .tar.gz, .gz or .tex; or
an arXiv HTML file, possibly gzipped). Every card is written by the digest's own writer
(`writer.write_card`, with `equations.pick_key_equation`), so what the harness measures is what readers
get; with `--llm` the configured LLM writes the prose behind the same grounding gate as in the digest, and
each card says which writer made each prose field. Imports only feedsvc.models and feedsvc.cards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feedsvc.cards.equations import KeyPick, pick_key_equation
from feedsvc.cards.fulltext import FullText
from feedsvc.cards.llm import FIELDS as PROSE_FIELDS
from feedsvc.cards.llm import ChatClient, LlmResult
from feedsvc.cards.llm import write_card as llm_write_card
from feedsvc.cards.writer import parse_fulltext, write_card
from feedsvc.models import Candidate, Card, Scored

_HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz", ".xhtml")


def fulltext_kind(path: Path, head: bytes) -> str:
    """ "html" for an arXiv HTML file (by name, or by its first bytes), else "eprint"."""
    start = head.lstrip()[:15].lower()
    if path.name.lower().endswith(_HTML_SUFFIXES) or start.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "eprint"


def read_fulltext(c: Candidate, max_bytes: int) -> FullText | None:
    """The candidate's full text from its `fulltext` path; the abstract, with why, when it cannot be
    read; None when it names no full text."""
    name = str(c.meta.get("fulltext") or "")
    if not name:
        return None
    path = Path(name)
    try:
        with path.open("rb") as f:
            content = f.read(max_bytes + 1)
    except OSError as e:
        return parse_fulltext("none", b"", c.text, f"{name}: cannot read: {e.strerror or e}", max_bytes)
    return parse_fulltext(fulltext_kind(path, content[:64]), content, c.text, "", max_bytes)


def card_json(card: Card, pick: KeyPick) -> dict[str, Any]:
    """The card as the stable JSON of `feedsvc card --json`."""
    eq = pick.equation if pick.quote is not None and pick.quote in card.punch else None
    return {
        "id": card.key,
        "domain": card.domain,
        "time_cost": card.time_cost,
        "intuition": card.intuition,
        "punch_intro": card.punch_intro,
        "punch": [{"text": q.text, "is_math": q.is_math, "where": q.where} for q in card.punch],
        "key_equation": None
        if eq is None or pick.quote is None
        else {
            "latex": eq.latex,
            "text": pick.quote.text,
            "label": eq.label,
            "number": eq.number,
            "section": eq.section,
            "where": pick.quote.where,
        },
        "headlines": [q.text for q in card.punch if not q.is_math],
        "significance": card.significance,
        "why": card.why,
        "writer": card.writer,
        "writers": {f: card.writer if f in card.llm_fields else "extractive" for f in PROSE_FIELDS},
        "declined": None
        if eq is not None
        else (pick.declined or "the key equation failed the grounding check"),
    }


def llm_json(result: LlmResult) -> dict[str, Any]:
    """What the LLM writer did for a card: per field passed, repaired or replaced, and why."""
    return {
        "fields": result.verdicts,
        "replaced": result.rejected,
        "repaired": result.repaired,
        "error": result.error,
        "note": result.note,
        "tokens": {"prompt": result.tokens[0], "completion": result.tokens[1]},
    }


def public_card(c: Candidate, *, max_bytes: int, client: ChatClient | None = None) -> dict[str, Any]:
    """One candidate's card as JSON, written as the digest writes it (no thread: the card stands alone).
    With `client` the LLM writes the prose behind the grounding gate, as in the digest."""
    ft = read_fulltext(c, max_bytes)
    pick = pick_key_equation(ft) if ft is not None else KeyPick(None, declined="no full text given")
    s = Scored(candidate=c, score=0.0, thread="")
    card = write_card(s, ft, pick)
    result = None
    if client is not None:
        text, macros = (ft.text, ft.macros) if ft is not None else (c.text, None)
        result = llm_write_card(s, card, text, client, macros=macros)
        card = result.card
    out = card_json(card, pick)
    out["id"] = c.meta.get("id", c.key)
    if result is not None:
        out["llm"] = llm_json(result)
    return out


def public_cards(
    candidates: Sequence[Candidate], *, max_bytes: int, client: ChatClient | None = None
) -> list[dict[str, Any]]:
    """The cards for `candidates`, in input order: the JSON `feedsvc card --json` prints."""
    return [public_card(c, max_bytes=max_bytes, client=client) for c in candidates]


__all__ = ["card_json", "fulltext_kind", "llm_json", "public_card", "public_cards", "read_fulltext"]
