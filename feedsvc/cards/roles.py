"""Rhetorical roles of an abstract's sentences: how likely each states the problem or task, the idea, or
the result.

Problem-or-task and result: one logistic regression each over a sentence's words, its opening words, its
position and where it stands from the sentence saying what the paper does ("we propose",
`own_work_index`). Idea: a listwise ranker (a softmax over the abstract's sentences, `idea_features`), so
its figure is the chance that this sentence is the one stating the paper's idea. Trained on Scholar
Inbox's user-labelled abstract spans by `bench/train_roles.py` and shipped as `roles_model.json` (read on
first use). Imports only the standard library.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

ROLES = ("problem_task", "idea", "result")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
# where an abstract says what the paper does: "we propose", "this paper presents", "in this work"
_OWN_WORK = re.compile(
    r"\b(?:we|this (?:paper|work|article|study|letter))\s+(?:\w+ly\s+)?"
    r"(?:propose|introduce|present|develop|design|devise|describe|formulate)|\bin this (?:paper|work)\b",
    re.I,
)


def own_work_index(sentences: Sequence[str]) -> int | None:
    """The first sentence that says what the paper itself does, or None."""
    return next((i for i, s in enumerate(sentences) if _OWN_WORK.search(s)), None)


def features(sentences: Sequence[str], index: int, own: int | None) -> set[str]:
    """The sparse features of `sentences[index]`; `own` is `own_work_index(sentences)`."""
    sentence, count = sentences[index], len(sentences)
    words = _WORD.findall(sentence.lower())
    out = {f"w:{w}" for w in words}
    out.add("o:" + "_".join(words[:2]))
    out.add("own:none" if own is None else f"own:{max(-3, min(3, index - own))}")
    out.add(f"p:{min(index, 6)}")
    out.add(f"r:{min(3, 4 * index // max(count, 1))}")
    if index == count - 1:
        out.add("p:last")
    if re.search(r"\d", sentence):
        out.add("digit")
    out.add(f"len:{min(len(words) // 10, 5)}")
    return out


# a named method ("called X", "X (ABC)", a CamelCase or upper-case name), "our method", a problem's words
_NAME = re.compile(
    r"\b(?:called|dubbed|named|termed|coined)\b|[\"“]|\b[A-Za-z]*[a-z][A-Z]\w*|\b[A-Z]{2,}[a-z]*\b"
)
_OUR_METHOD = re.compile(
    r"\b(?:our|the proposed|this) (?:method|approach|model|framework|algorithm|technique|system|idea)\b", re.I
)
_PROBLEM = re.compile(
    r"\b(?:however|but|yet|challeng\w*|limit\w*|fail\w*|suffer\w*|lack\w*|difficult\w*|struggle\w*|remains?)\b",
    re.I,
)


def idea_features(sentences: Sequence[str], index: int, own: int | None) -> set[str]:
    """`features` and the cues of a sentence stating the idea: its opening word at its distance from the
    "we propose" sentence, a method's name, "our method", "by <doing>", a problem's words in it or in
    the sentence before."""
    sentence = sentences[index]
    out = features(sentences, index, own)
    words = _WORD.findall(sentence.lower())
    where = "none" if own is None else str(max(-3, min(3, index - own)))
    out.add(f"ownop:{where}:{words[0] if words else ''}")
    for name, hit in (
        ("name", _NAME.search(sentence)),
        ("ourmethod", _OUR_METHOD.search(sentence)),
        ("bying", re.search(r"\bby\s+\w+ing\b", sentence)),
        ("isprob", _PROBLEM.search(sentence)),
        ("afterprob", index > 0 and _PROBLEM.search(sentences[index - 1])),
    ):
        if hit:
            out.add(name)
    return out


@dataclass(frozen=True)
class RoleModel:
    """One logistic regression per role: a bias and the weights of the features that survived training."""

    bias: Mapping[str, float]
    weights: Mapping[str, Mapping[str, float]]

    def probability(self, role: str, feats: set[str]) -> float:
        w = self.weights[role]
        z = self.bias[role] + sum(w.get(f, 0.0) for f in feats)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def idea_shares(self, sentences: Sequence[str]) -> list[float]:
        """For each sentence, the chance that it is the one stating the paper's idea (sums to 1)."""
        own, w = own_work_index(sentences), self.weights["idea"]
        z = [sum(w.get(f, 0.0) for f in idea_features(sentences, i, own)) for i in range(len(sentences))]
        top = max(z, default=0.0)
        e = [math.exp(v - top) for v in z]
        return [v / sum(e) for v in e]

    def score(self, sentences: Sequence[str]) -> list[dict[str, float]]:
        """For each sentence, the probability of each role in `ROLES` (the idea: `idea_shares`)."""
        own = own_work_index(sentences)
        ideas = self.idea_shares(sentences)
        out = []
        for i in range(len(sentences)):
            feats = features(sentences, i, own)
            out.append({role: self.probability(role, feats) for role in ROLES if role != "idea"})
            out[-1]["idea"] = ideas[i]
        return out

    def to_json(self) -> dict[str, object]:
        return {"bias": dict(self.bias), "weights": {r: dict(w) for r, w in self.weights.items()}}


@cache
def shipped_model() -> RoleModel:
    """The model shipped with the package (`feedsvc/cards/roles_model.json`)."""
    raw = json.loads(resources.files("feedsvc.cards").joinpath("roles_model.json").read_text("utf-8"))
    return RoleModel(bias=raw["bias"], weights=raw["weights"])


__all__ = ["ROLES", "RoleModel", "features", "idea_features", "own_work_index", "shipped_model"]
