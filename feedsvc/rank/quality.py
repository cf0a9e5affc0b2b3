"""The quality bar's features: does a paper show its mechanism and a concrete punch?

The reader wants mechanism-first papers: explicit mathematics, a stated quantitative result, theory rather
than a benchmark alone. `quality()` turns those into a factor in [0, 1] with its reasons. Plain regular
expressions over title and abstract; imports only feedsvc.models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from feedsvc.models import Candidate

_MATH = re.compile(r"\$[^$]*(?:=|\\le|\\ge|<|>|\\mathcal|\\mathbb|\\sum|\\nabla|O\(|\\tilde|\^|_)[^$]*\$")
_NUMBER_CLAIM = re.compile(
    r"\d+(?:\.\d+)?\s?(?:%|\\%|×|x\b|-fold|fold\b|times\b)|\b\d+\.\d+\b|\bby\s+\d+(?:\.\d+)?\b", re.I
)
_THEORY = re.compile(
    r"\b(?:we prove|theorem|lemma|guarantee[sd]?|bound[s]?\b|convergence|converges|regret|sample complexity|"
    r"minimax|optimal(?:ity)?|consisten(?:t|cy)|closed[- ]form|identifiab|variational|objective)\b",
    re.I,
)
_BENCHMARK = re.compile(r"\b(?:benchmark|dataset|leaderboard|we release|suite|evaluation of|survey)\b", re.I)


@dataclass(frozen=True)
class Quality:
    value: float  # in [0, 1]
    reasons: tuple[str, ...]


def quality(c: Candidate) -> Quality:
    text = f"{c.title}\n{c.text}"
    reasons = []
    value = 0.2
    if _MATH.search(text):
        value += 0.3
        reasons.append("explicit math")
    if _NUMBER_CLAIM.search(text):
        value += 0.25
        reasons.append("a quantitative result")
    theory = len(set(m.group(0).lower() for m in _THEORY.finditer(text)))
    if theory:
        value += min(0.25, 0.1 * theory)
        reasons.append("theory" if theory > 1 else "a formal claim")
    if _BENCHMARK.search(text) and not theory and "explicit math" not in reasons:
        value -= 0.15
        reasons.append("benchmark-only (no theory or math)")
    return Quality(max(0.0, min(1.0, value)), tuple(reasons))
