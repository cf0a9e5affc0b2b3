"""Claim support: is a generated sentence backed by one sentence of its source?

`support(sentence, source_sentences)` is the largest share of the sentence's content words (lower-cased
words of three or more letters, not stop words, crudely stemmed) that one source sentence contains. A
sentence the model writes about a paper is shown only when its support reaches `MIN_SUPPORT`, so a claim
with no sentence of the paper behind it ("it outperforms all prior methods") is dropped. Lexical overlap
is a proxy for entailment: it catches claims made of words the paper never uses in one place, not a
negation or a swapped subject. The threshold was set on the real model's output (docs/benchmarks.md).
Imports only `feedsvc.cards`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from feedsvc.cards.extractive import sentences

MIN_SUPPORT = 0.5
MIN_WORDS = 3  # fewer content words: a fragment, not a claim (measured: small models emit "{ {", ",")

_WORD = re.compile(r"[a-z][a-z-]{2,}")
# words a card uses about any paper or reader: they carry no claim of this paper's
_CARD_WORDS = frozenset(
    re.findall(
        r"\S+",
        """
paper papers work authors author propose proposes proposed present presents presented introduce
introduces introduced study studies show shows shown approach method methods new novel result results
reader thread threads interest interests research researcher relevant relevance match matches
matching aligns align directly closely important importance significant significance key main
help helps use uses using used based provide provides way ways also can could may
""",
    )
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    """The stems of `text`'s content words."""
    words = (w.strip("-") for w in _WORD.findall(text.lower()))
    return frozenset(_stem(w) for w in words if len(w) >= 3 and w not in ENGLISH_STOP_WORDS | _CARD_WORDS)


@dataclass(frozen=True)
class Support:
    """How well one generated sentence is backed: the share and the source sentence that gives it."""

    share: float
    words: int
    best: str = ""

    @property
    def supported(self) -> bool:
        """Backed by a source sentence; a fragment of fewer than `MIN_WORDS` content words ("{ {", "It
        matters.") states nothing worth showing and is not."""
        return self.words >= MIN_WORDS and self.share >= MIN_SUPPORT


class SourceIndex:
    """A source split into sentences with their content words, built once per card."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.sentences = [s for t in texts if t for s in sentences(t)]
        self._words = [content_words(s) for s in self.sentences]

    def support(self, sentence: str) -> Support:
        """The best single-sentence backing of `sentence`."""
        want = content_words(sentence)
        if not want:
            return Support(0.0, 0)
        best, share = "", 0.0
        for text, words in zip(self.sentences, self._words, strict=True):
            s = len(want & words) / len(want)
            if s > share:
                best, share = text, s
        return Support(share, len(want), best)
