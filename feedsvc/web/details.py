"""A paper's breakdown and formula notes for its item page, derived from the full text in the store.

The pipeline writes these pages only as Markdown files beside the digest (`papers/<id>.md`); the store
keeps the full text they came from. The same extractive functions run again on that text (they are
deterministic: the result equals the Markdown page) and the result is kept in memory per item and
fetch time. Imports the cards stage and the store: an edge module.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from feedsvc.cards.breakdown import Breakdown, Dropped, FormulaNotes, breakdown, formula_notes
from feedsvc.cards.writer import parse_fulltext
from feedsvc.config import Settings
from feedsvc.models import Candidate
from feedsvc.store import archive, queries
from feedsvc.web.cache import LRU


@dataclass(frozen=True)
class PaperPage:
    breakdown: Breakdown
    notes: FormulaNotes
    skipped: list[tuple[str, int]] = field(default_factory=list)  # displays never shown, by reason
    failed: list[Dropped] = field(default_factory=list)  # notes that failed the grounding check
    omitted: int = 0
    pdf_url: str = ""


def _pdf_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/pdf/{arxiv_id}" if re.fullmatch(r"[\w./-]+", arxiv_id or "") else ""


def paper_page(session: Session, settings: Settings, item: Candidate, memo: LRU[Any]) -> PaperPage | None:
    """The page of a paper whose full text (HTML or LaTeX source) is stored; None for abstract-only."""
    if item.kind != "paper":
        return None
    fetched = archive.fulltext_fetched(session, item.key)
    if fetched is None:
        return None
    memo_key = ("paper", item.key, fetched)
    page = memo.get(memo_key)
    if page is not None:
        return page or None
    cached = queries.cached_fulltext(session, item.key)
    page = False
    if cached is not None and cached[0] in ("html", "eprint"):
        kind, content, reason = cached
        ft = parse_fulltext(kind, content, item.text, reason, settings.fulltext_max_bytes)
        if ft.source != "abstract":
            notes = formula_notes(ft)
            b = breakdown(item, ft)
            skipped = Counter(d.reason for d in notes.dropped if d.kind == "display")
            page = PaperPage(
                breakdown=b,
                notes=notes,
                skipped=sorted(skipped.items()),
                failed=[d for d in notes.dropped if d.kind != "display"],
                omitted=notes.omitted,
                pdf_url=_pdf_url(b.arxiv_id),
            )
    memo.put(page, memo_key)
    return page or None
