"""A paper's own page as Markdown: the breakdown (seed 002's sections) followed by the formula walkthrough
(seed 003's, done right: each display in `$$...$$` with its number and section).

The page's data crosses into this package as plain dicts: `render_paper_markdown` accepts the
dataclasses `feedsvc.cards.breakdown` builds, or mappings of the same shape, and turns them into dicts
with `dataclasses.asdict`, so this module never imports `feedsvc.cards`. Scraped strings are escaped
with the digest renderer's filters (`md`, `md_link_text`, `md_math`, `md_url`). Pure: no I/O but reading
the template. Imports only `feedsvc.render` and Jinja2.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from feedsvc.render.markdown import md, md_link_text, md_math, md_url


def _plain(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"expected a dataclass instance or a mapping, got {type(obj).__name__}")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(resources.files("feedsvc.templates"))),
        autoescape=False,  # Markdown, not HTML: the filters do the escaping
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, md_link_text=md_link_text, md_math=md_math, md_url=md_url)
    return env


def _pdf_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/pdf/{arxiv_id}" if re.fullmatch(r"[\w./-]+", arxiv_id or "") else ""


def render_paper_markdown(breakdown: Any, notes: Iterable[Any] = ()) -> str:
    """The page: `breakdown` (a `Breakdown` or its dict) and `notes` (the `FormulaNotes` list, whose
    `.dropped` and `.omitted` are read when present, or a list of note dicts)."""
    b = _plain(breakdown)
    note_dicts = [_plain(n) for n in notes]
    dropped = [_plain(d) for d in getattr(notes, "dropped", ())]
    skipped = Counter(d["reason"] for d in dropped if d["kind"] == "display")
    failed = [d for d in dropped if d["kind"] != "display"]
    body = (
        _environment()
        .get_template("paper.md.j2")
        .render(
            b=b,
            notes=note_dicts,
            skipped=sorted(skipped.items()),
            failed=failed,
            omitted=int(getattr(notes, "omitted", 0)),
            pdf_url=_pdf_url(b.get("arxiv_id", "")),
        )
    )
    return re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"


__all__ = ["render_paper_markdown"]
