"""A paper's breakdown and formula notes for its item page, as the digest that picked it stored them.

The digest run builds each paper pick's page once, from the full text, and stores it with the digest
(`digest_entries.page`); this module only reads it back, from the latest digest that stored one, and
keeps it in memory per digest entry. A paper of a reader's study list has its page from the library's
reading (`paper_pages`) when no digest stored one. A paper with no stored page (read from the abstract
only, or picked by a digest built before pages were stored) shows its card only: nothing is rebuilt here.
Imports the cards stage (for the page's types) and the store: an edge module.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from feedsvc.cards.breakdown import Breakdown, Dropped, FormulaNotes, page_from_data
from feedsvc.models import Candidate
from feedsvc.store import archive, study
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


def paper_page(session: Session, item: Candidate, memo: LRU[Any]) -> PaperPage | None:
    """The stored page of a paper pick, else of a library paper; None when neither was stored (see the
    module docstring)."""
    if item.kind != "paper":
        return None
    stored: tuple[object, dict[str, Any]] | None = archive.paper_page(session, item.key)
    if stored is None:
        stored = study.library_page(session, item.key)
    if stored is None:
        return None
    version, data = stored
    memo_key = ("paper", item.key, version)
    page = memo.get(memo_key)
    if page is None:
        b, notes = page_from_data(data)
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
    return page
