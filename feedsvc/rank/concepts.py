"""The concepts a pick shares with its thread, as "why it matches" names them: the terms that weigh most in
the lexical match, each shown as the phrase the paper writes ("vision-language-action models", not the
analyser's "language action"), overlapping ones joined, a term common to the day's papers named only when
few others are. Display only: nothing here changes a score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from feedsvc.models import Candidate
from feedsvc.rank.pool import Pool

# a term that this share of the day's papers or more hold says little about why this one matches ("learning")
COMMON_TERM_SHARE = 0.1


def shared_concepts(pool: Pool, i: int, q: sparse.csr_matrix, k: int = 4) -> tuple[str, ...]:
    """The terms that contribute most to candidate i's similarity with the thread query q, each shown as
    the phrase the paper writes (`_shown_phrases`). In a pool of 20 or more a term common in the pool
    (`COMMON_TERM_SHARE`) is named only when fewer than two others are."""
    row = pool.X.indices[pool.X.indptr[i] : pool.X.indptr[i + 1]]
    data = pool.X.data[pool.X.indptr[i] : pool.X.indptr[i + 1]]
    qd = dict(zip(q.indices.tolist(), q.data.tolist(), strict=True))
    contrib = np.array([d * qd.get(int(j), 0.0) for j, d in zip(row, data, strict=True)])
    ranked = [str(pool.terms[row[jj]]) for jj in np.argsort(-contrib) if contrib[jj] > 0]
    if len(pool.candidates) < 20:
        return _shown_phrases(pool.candidates[i], ranked, k)
    common = {str(pool.terms[j]) for j in row if pool.doc_share(int(j)) >= COMMON_TERM_SHARE}
    names = _shown_phrases(pool.candidates[i], [t for t in ranked if t not in common], k)
    return names if len(names) >= 2 else _shown_phrases(pool.candidates[i], ranked, k)


def _shown_phrases(c: Candidate, terms: Sequence[str], k: int) -> tuple[str, ...]:
    """Up to `k` of `terms`, in order, each as the phrase the paper writes (`phrase_in`): a term the paper
    does not write as one phrase is skipped, one a named phrase holds adds nothing, and overlapping ones
    are joined (`_run_on`)."""
    names: list[str] = []
    for term in terms:
        phrase = phrase_in(c.text, term, c.title)
        if not phrase:
            continue
        low = phrase.lower()
        if any(low in n.lower() or _same_word(low, n.lower()) for n in names):
            continue  # "policy" after "policy gradient", "relations" after "relational" add nothing
        phrase = next((j for n in names if (j := _run_on(n, phrase, c))), phrase)
        names = [n for n in names if n.lower() not in phrase.lower()] + [phrase]  # "convex" → "non-convex"
        if len(names) == k:
            break
    return tuple(names)


def _run_on(a: str, b: str, c: Candidate) -> str:
    """One phrase of the paper that two overlapping phrases make ("markov decision" and "decision process":
    "markov decision process"), else ""."""
    for first, second in ((a, b), (b, a)):
        x, y = first.split(), second.split()
        joined = len(x) + len(y) > 2 and x[-1].lower() == y[0].lower()
        if joined and (found := phrase_in(c.text, " ".join([*x, *y[1:]]).lower(), c.title)):
            return found
    return ""


def _same_word(word: str, phrase: str) -> bool:
    """`word` (one word) and a word of `phrase` share their first six letters: "relations" and
    "relational", "convolution" and "convolutional"."""
    return " " not in word and len(word) >= 6 and any(w[:6] == word[:6] for w in re.split(r"[\s-]+", phrase))


def _phrase_match(source: str, body: str) -> re.Match[str] | None:
    """`body` standing alone in `source`, else with the hyphenated parts around it."""
    alone = re.search(rf"(?<![\w-]){body}(?![\w-])", source, re.I)
    return alone or re.search(rf"(?<![\w-])(?:\w+-)*{body}(?:-\w+)*(?![\w-])", source, re.I)


# a word the TF-IDF analyser drops as a stop word may stand between a term's words ("sim-to-real")
_JOINER = r"(?:[\s-]+(?:to|of|the|a|an|in|on|for|from|by|with)?)?[\s-]+"


def phrase_in(text: str, term: str, title: str = "") -> str:
    """`term` (the analyser's lower-case words) as the paper writes it, in `text` or else in `title`:
    standing alone if it does anywhere, else with the hyphenated parts around it ("language action" →
    "vision-language-action"); lower-cased unless a word in it is an acronym or has an inner capital or a
    digit; "" when neither holds the words as one phrase."""
    body = _JOINER.join(re.escape(w) for w in term.split())
    m = _phrase_match(text, body) or _phrase_match(title, body)
    if not m:
        return ""
    phrase = " ".join(m.group(0).split())
    if " " not in term and sum(p[:1].isupper() for p in phrase.split("-")) >= 2:
        return ""  # one word inside a name ("eval" in "AGI-Eval-Official"): a name, not a shared concept
    keep = any(re.search(r"[A-Z]{2}|[a-z][A-Z]|\d", w) for w in re.split(r"[\s-]+", phrase))
    return phrase if keep else phrase.lower()
