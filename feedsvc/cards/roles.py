"""Rhetorical roles of an abstract's sentences: how likely each states the problem or task, the idea, or
the result.

One logistic regression per role over a sentence's words, its opening words, its position and where it
stands from the sentence saying what the paper does ("we propose", `own_work_index`); trained on Scholar
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


@dataclass(frozen=True)
class RoleModel:
    """One logistic regression per role: a bias and the weights of the features that survived training."""

    bias: Mapping[str, float]
    weights: Mapping[str, Mapping[str, float]]

    def probability(self, role: str, feats: set[str]) -> float:
        w = self.weights[role]
        z = self.bias[role] + sum(w.get(f, 0.0) for f in feats)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def score(self, sentences: Sequence[str]) -> list[dict[str, float]]:
        """For each sentence, the probability of each role in `ROLES`."""
        own = own_work_index(sentences)
        out = []
        for i in range(len(sentences)):
            feats = features(sentences, i, own)
            out.append({role: self.probability(role, feats) for role in ROLES})
        return out

    def to_json(self) -> dict[str, object]:
        return {"bias": dict(self.bias), "weights": {r: dict(w) for r, w in self.weights.items()}}


@cache
def shipped_model() -> RoleModel:
    """The model shipped with the package (`feedsvc/cards/roles_model.json`)."""
    raw = json.loads(resources.files("feedsvc.cards").joinpath("roles_model.json").read_text("utf-8"))
    return RoleModel(bias=raw["bias"], weights=raw["weights"])


__all__ = ["ROLES", "RoleModel", "features", "own_work_index", "shipped_model"]
