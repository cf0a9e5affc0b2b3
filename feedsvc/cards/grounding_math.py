"""Grounding for formulas after macro normalisation: a shown equation, written with the paper's macros
expanded, still occurs in the paper.

`formula_grounded(formula, source, macros)` is true when the formula occurs in `source` up to whitespace
(`grounding.is_grounded`), or when it equals, up to whitespace, the macro-expanded form (links made inert,
`fulltext.expand_macros`) of one of the source's `$$...$$` or `$...$` math spans; a span whose expansion
passes the budget matches nothing. Imports only `feedsvc.cards`.
"""

from __future__ import annotations

import re

from feedsvc.cards.fulltext import MacroBudgetError, expand_macros
from feedsvc.cards.grounding import is_grounded, normalise

_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$]+?)(?<!\\)\$", re.S)
# The readers put each display on lines of its own, "\n$$...$$\n": found apart from inline math, so that a
# stray "$" in the prose before it cannot pair with a display's delimiter and hide the display.
_DISPLAY_SPAN = re.compile(r"^\$\$(.+?)\$\$$", re.S | re.M)


def formula_grounded(formula: str, source: str, macros: dict[str, str]) -> bool:
    """True when `formula` (possibly macro-expanded) occurs in `source` after whitespace and macro
    normalisation."""
    if is_grounded(formula, source):
        return True
    try:
        want = normalise(expand_macros(formula, macros))
    except MacroBudgetError:
        return False
    if not want or (not macros and want == normalise(formula)):
        return False
    spans = [m.group(1) for m in _DISPLAY_SPAN.finditer(source)]
    spans += [m.group(1) if m.group(1) is not None else m.group(2) for m in _MATH_SPAN.finditer(source)]
    for span in spans:
        try:
            if want in normalise(expand_macros(span, macros)):
                return True
        except MacroBudgetError:
            continue
    return False
