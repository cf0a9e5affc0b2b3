"""The card writer with full text: the extractive card, whose concrete punch becomes the paper's own key
equation (from arXiv HTML or its LaTeX source) and its headline numbers when the full text has them.

`parse_fulltext` turns fetched bytes into a `FullText`, falling back to the abstract with the reason.
Every equation shown passes `grounding_math.formula_grounded` against the text it came from; every number
is a verbatim sentence of the abstract or the paper. Imports only feedsvc.models and feedsvc.cards.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from feedsvc.cards.equations import KeyPick, headline_results, pick_key_equation
from feedsvc.cards.extractive import build_card, time_cost
from feedsvc.cards.fulltext import FullText, FullTextError, from_abstract, from_html, from_source
from feedsvc.cards.grounding import is_grounded
from feedsvc.cards.grounding_math import formula_grounded
from feedsvc.models import Card, Quote, Scored

log = logging.getLogger(__name__)


def parse_fulltext(kind: str, content: bytes, abstract: str, reason: str, max_bytes: int) -> FullText:
    """The full text from fetched bytes (`kind` "html" or "eprint"); the abstract, with why, otherwise."""
    why = reason
    try:
        if kind == "html":
            return from_html(content, max_bytes=max_bytes)
        if kind == "eprint":
            return from_source(content, max_bytes=max_bytes)
    except FullTextError as e:
        why = f"{kind}: {e}" + (f"; {reason}" if reason else "")
    return from_abstract(abstract, why or "no full text")


def write_card(s: Scored, ft: FullText | None = None, pick: KeyPick | None = None) -> Card:
    """The card for a pick: extractive, with the paper's own key equation and numbers when `ft` has them.
    `pick`: the key equation already chosen for `ft` (`pick_key_equation`), to share it with the caller."""
    card = build_card(s)
    if ft is None or ft.source == "abstract":
        return card
    punch: list[Quote] = []
    eq = (pick or pick_key_equation(ft)).quote
    if eq is not None:
        if formula_grounded(eq.text, ft.text, ft.macros):
            punch.append(eq)
        else:  # key_equation checks this too; kept so that a regression is loud, not shown
            log.warning("%s: key equation failed the grounding check, not shown", s.candidate.key)
    source = f"{s.candidate.text}\n{ft.text}"
    for q in headline_results(ft, s.candidate.text):
        if is_grounded(q.text, source):
            punch.append(q)
    if not punch:
        return replace(card, time_cost=_time(s, ft, card))
    intro = (
        "The paper's key equation and its headline numbers:"
        if eq is not None and len(punch) > 1
        else "The paper's key equation:"
        if eq is not None
        else "The paper's headline numbers:"
    )
    return replace(card, punch_intro=intro, punch=tuple(punch), time_cost=_time(s, ft, card))


def _time(s: Scored, ft: FullText, card: Card) -> str:
    if "pages)" in card.time_cost:
        return card.time_cost
    return time_cost("", ft.text, s.candidate.kind)
