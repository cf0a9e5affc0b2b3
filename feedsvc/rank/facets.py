"""A thread's `about` read the way a person reads it: a list of interests, and stated preferences.

"Robot learning: manipulation and locomotion policies, imitation learning, ..., and dexterous manipulation.
Papers with a new learning mechanism are preferred over pure hardware or dataset papers." holds a topic
("Robot learning"), interests (one per listed item, parentheses kept with their item) and a preference:
what is wanted ("papers with a new learning mechanism") over what is not ("pure hardware or dataset
papers"). The ranker's semantic scorer averages a candidate's match with the whole thread and with its
best interest, and both content scorers match the thread's text `without_dislikes`. As a signal of their
own the preferences helped one dev profile and hurt another, so they are not one (docs/benchmarks.md,
issue 13). Imports nothing from feedsvc.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PREFERENCE = re.compile(r"\b(prefer|prefers|preferred|wants?|rather than|not just|instead of)\b", re.I)
# "A over B", "A rather than B", "A, not B", "A instead of B"
_CONTRAST = re.compile(r"\s*(?:\bover\b|\brather than\b|,?\s*\bnot\b|\binstead of\b)\s*", re.I)
_LEAD = re.compile(
    r"^(?:the reader\s+)?(?:wants|prefers|likes)\s+|\s+(?:are|is)\s+preferred$|^(?:and|or)\s+", re.I
)


@dataclass(frozen=True)
class Facets:
    """The interests a thread lists, and what its preferences favour (`wanted`) and disfavour."""

    interests: tuple[str, ...]
    wanted: tuple[str, ...] = ()
    unwanted: tuple[str, ...] = ()


def _top_level_split(text: str) -> list[str]:
    """Split on commas and semicolons outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch in ",;" and depth <= 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _clean(part: str) -> str:
    part = part.strip().strip(".").strip()
    while (stripped := _LEAD.sub("", part).strip()) != part:
        part = stripped
    return part


def _interests(sentence: str) -> list[str]:
    """The items of an interest list; a "Topic: a, b, and c" sentence gives the topic and each item."""
    head, sep, rest = sentence.partition(":")
    out = [head] if sep else []
    out += _top_level_split(rest if sep else sentence)
    return [c for c in (_clean(p) for p in out) if c]


def _preference(sentence: str) -> tuple[str, str]:
    """What a preference sentence favours and what it disfavours (empty when it names no contrast)."""
    sides = _CONTRAST.split(sentence.strip().rstrip("."), maxsplit=1)
    wanted = _clean(sides[0])
    unwanted = _clean(sides[1]) if len(sides) > 1 else ""
    return wanted, unwanted


def read_facets(about: str) -> Facets:
    """The interests and preferences stated in `about` (an empty text has no facets)."""
    interests: list[str] = []
    wanted: list[str] = []
    unwanted: list[str] = []
    for sentence in _SENTENCE.split(about.strip()):
        if not sentence.strip():
            continue
        if _PREFERENCE.search(sentence):
            w, u = _preference(sentence)
            wanted += [w] if w else []
            unwanted += [u] if u else []
        else:
            interests += _interests(sentence)
    return Facets(tuple(dict.fromkeys(interests)), tuple(wanted), tuple(unwanted))


def without_dislikes(about: str) -> str:
    """`about` with what its preference sentences disfavour cut out: "A is preferred over B." keeps "A"."""
    out = []
    for sentence in _SENTENCE.split(about.strip()):
        if _PREFERENCE.search(sentence):
            sentence = _CONTRAST.split(sentence.strip().rstrip("."), maxsplit=1)[0].strip() + "."
        if sentence.strip():
            out.append(sentence.strip())
    return " ".join(out)
