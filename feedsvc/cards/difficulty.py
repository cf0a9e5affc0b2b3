"""How hard a paper is to read, estimated from its own text: `difficulty(abstract, fulltext=None)`.

Three measures, each scaled to [0, 1] between fixed anchors (docs/difficulty.md says why these):

- **prose**: the Flesch-Kincaid grade of the abstract (words per sentence, syllables per word), 15.5 -> 0,
  23.5 -> 1 (the 5th and 95th percentiles of 200 arXiv abstracts);
- **jargon**: the share of the abstract's words that are acronyms (LSTM, MDP) or of four syllables and
  more (non-stationarity), 11 % -> 0, 26 % -> 1 (the same percentiles);
- **math**: with a full text, display equations per 1,000 words of prose (0 -> 0, 10 -> 1) and inline
  formulas per 100 words (0 -> 0, 8 -> 1), the larger of the two; from an abstract alone, its inline
  formulas per 100 words.

The score is their weighted mean (with a full text math weighs most: 0.45 math, 0.35 prose, 0.20 jargon;
from the abstract alone 0.60 prose, 0.30 jargon, 0.10 math) and the level is gentle below 0.35, demanding
from 0.65, moderate between. Every figure behind it is kept, so a reader can see why. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from feedsvc.cards.fulltext import FullText

LEVELS = ("gentle", "moderate", "demanding")
GENTLE_BELOW, DEMANDING_FROM = 0.35, 0.65
PROSE_ANCHORS = (15.5, 23.5)  # Flesch-Kincaid grade
JARGON_ANCHORS = (0.11, 0.26)  # share of words
DISPLAY_ANCHORS = (0.0, 10.0)  # display equations per 1,000 words
INLINE_ANCHORS = (0.0, 8.0)  # inline formulas per 100 words
MAX_WORDS = 60_000  # of a full text's prose read for the measures

_INLINE = re.compile(r"\$[^$]{1,300}\$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_ACRONYM = re.compile(r"^[A-Z][A-Za-z]*[A-Z][A-Za-z]*s?$")
_VOWELS = re.compile(r"[aeiouy]+")


@dataclass(frozen=True)
class Difficulty:
    level: str  # gentle | moderate | demanding
    score: float  # 0 (easy) .. 1 (hard)
    basis: str  # "full text" | "abstract"
    grade: float  # Flesch-Kincaid grade of the abstract
    jargon: float  # share of acronyms and words of four syllables or more
    displays_per_1k: float | None  # display equations per 1,000 words (full text only)
    inline_per_100: float  # inline formulas per 100 words

    def explain(self) -> str:
        """One line: the level and the figures behind it."""
        parts = [f"prose grade {self.grade:.0f}", f"{self.jargon:.0%} jargon"]
        if self.displays_per_1k is not None:
            parts.append(f"{self.displays_per_1k:.1f} displayed equations per 1,000 words")
        parts.append(f"{self.inline_per_100:.1f} inline formulas per 100 words")
        return f"{self.level.capitalize()} ({self.score:.2f}, from the {self.basis}: {', '.join(parts)})"

    def as_data(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def difficulty_from_data(data: dict[str, object]) -> Difficulty:
    return Difficulty(**data)  # type: ignore[arg-type]


@lru_cache(maxsize=65_536)
def syllables(word: str) -> int:
    """Vowel groups, a silent final e dropped: the usual estimate behind readability formulas."""
    w = word.lower().strip("'-")
    n = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


def _scale(value: float, anchors: tuple[float, float]) -> float:
    low, high = anchors
    return min(1.0, max(0.0, (value - low) / (high - low)))


def _words(text: str) -> list[str]:
    return _WORD.findall(_INLINE.sub(" ", text))


def _grade_and_jargon(text: str) -> tuple[float, float]:
    """The Flesch-Kincaid grade (0.39 words/sentence + 11.8 syllables/word - 15.59) and the share of
    acronyms and words of four syllables or more, in one pass."""
    words = _words(text)
    if not words:
        return 0.0, 0.0
    counts = [syllables(w) for w in words]
    sentences = sum(1 for s in _SENTENCE_END.split(text.strip()) if _WORD.search(s))
    grade = 0.39 * len(words) / max(1, sentences) + 11.8 * sum(counts) / len(words) - 15.59
    hard = sum(1 for w, n in zip(words, counts, strict=True) if n >= 4 or _ACRONYM.match(w))
    return grade, hard / len(words)


def prose_grade(text: str) -> float:
    return _grade_and_jargon(text)[0]


def jargon_share(text: str) -> float:
    return _grade_and_jargon(text)[1]


def _prose_of(ft: FullText) -> str:
    text = " ".join(body for _, body in ft.sections)
    words = text.split()
    return " ".join(words[:MAX_WORDS])


@lru_cache(maxsize=8_192)
def from_abstract(abstract: str) -> Difficulty:
    """`difficulty(abstract)`, remembered: a study list shows the same unread papers on every view."""
    return difficulty(abstract)


def difficulty(abstract: str, fulltext: FullText | None = None) -> Difficulty:
    """The reading difficulty of a paper from its abstract and, when read, its full text."""
    grade, jargon = _grade_and_jargon(abstract)
    full = fulltext is not None and fulltext.source != "abstract"
    if full:
        prose = _prose_of(fulltext)  # type: ignore[union-attr]
        n_words = max(1, len(_words(prose)))
        displays = 1000 * len(fulltext.equations) / n_words  # type: ignore[union-attr]
        inline = 100 * len(_INLINE.findall(prose)) / n_words
        math = max(_scale(displays, DISPLAY_ANCHORS), _scale(inline, INLINE_ANCHORS))
        weights = (0.35, 0.20, 0.45)
    else:
        displays = None
        inline = 100 * len(_INLINE.findall(abstract)) / max(1, len(_words(abstract)))
        math = _scale(inline, INLINE_ANCHORS)
        weights = (0.60, 0.30, 0.10)
    parts = (_scale(grade, PROSE_ANCHORS), _scale(jargon, JARGON_ANCHORS), math)
    score = round(sum(w * p for w, p in zip(weights, parts, strict=True)), 3)
    level = LEVELS[0] if score < GENTLE_BELOW else LEVELS[2] if score >= DEMANDING_FROM else LEVELS[1]
    return Difficulty(
        level=level,
        score=score,
        basis="full text" if full else "abstract",
        grade=round(grade, 1),
        jargon=round(jargon, 3),
        displays_per_1k=round(displays, 2) if displays is not None else None,
        inline_per_100=round(inline, 2),
    )
