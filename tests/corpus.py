"""The real arXiv listing records in tests/fixtures/corpus (see its PROVENANCE.md), as Candidates."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from feedsvc.models import Candidate

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "2026-06-02.head200.jsonl"


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def candidate(r: dict[str, Any], published: datetime | None = None) -> Candidate:
    """One record as the arXiv source would hand it on: abstract as text, the comment in meta."""
    return Candidate(
        key=f"arxiv:{r['id']}",
        kind="paper",
        title=r["title"],
        text=r["summary"],
        url=r["abs"],
        source="arxiv",
        authors=tuple(r["authors"]),
        categories=tuple(r["categories"]),
        published=published,
        meta={"comment": r["comment"]},
    )
