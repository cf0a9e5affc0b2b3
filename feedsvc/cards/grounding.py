"""The grounding check: every formula, number and quotation on a card must occur in the source it cites.

One function, `is_grounded`, used on every path that puts text on a card. Comparison ignores whitespace
differences only. Imports nothing from feedsvc.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:\s?%|x|×)?(?![\w])")


def normalise(text: str) -> str:
    return _WS.sub(" ", text).strip()


def is_grounded(quote: str, source: str) -> bool:
    """True when `quote` occurs verbatim in `source`, up to whitespace."""
    q = normalise(quote)
    return bool(q) and q in normalise(source)


def numbers_in(text: str) -> list[str]:
    """The numbers a sentence states (as written), for checking prose that paraphrases."""
    return [m.group(0).strip() for m in _NUMBER.finditer(text)]


def numbers_grounded(text: str, source: str) -> bool:
    """Every number in `text` appears in `source` as written."""
    src = normalise(source)
    return all(n in src for n in numbers_in(text))
