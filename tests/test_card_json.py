"""The one stored form of a card: what `save_digest` writes is what every reader gets back."""

from __future__ import annotations

import json

from feedsvc.identity import ItemKey
from feedsvc.models import Card, Discussion, Quote
from feedsvc.store.card_json import card_from_json, card_to_json

CARD = Card(
    key=ItemKey.arxiv("2411.17700"),
    kind="paper",
    title="Soft policies: $\\pi(a|s)$ and entropy",
    url="https://arxiv.org/abs/2411.17700",
    domain="RL Theory / Algorithms",
    time_cost="skim 6 min, full read 45 min",
    intuition="The problem and the idea.",
    punch_intro="The paper's key equation:",
    punch=(
        Quote(
            "J(\\pi) = \\sum_t \\mathbb{E}[r + \\alpha \\mathcal{H}(\\pi)]", "arXiv HTML, eq. (1), §2", True
        ),
        Quote("improves returns by 12.5% on 7 of 9 tasks", "abstract"),
    ),
    significance="What changes if it holds.",
    why="Matches *RL theory*: entropy, soft Q.",
    thread="RL theory",
    score=0.8123,
    writer="llm:model",
    llm_fields=("intuition", "why"),
    discussions=(
        Discussion("Hacker News", "https://news.ycombinator.com/item?id=1", 412, 97, "Soft policies"),
    ),
    talk_for="",
    exploration=True,
    details="papers/2411.17700.md",
    evidence=("blend of lexical 0.41 (weights lexical 1.00)", "quality: explicit math"),
)


def test_a_card_survives_the_json_column_unchanged() -> None:
    stored = json.loads(json.dumps(card_to_json(CARD)))  # what the JSON column gives back
    assert card_from_json(stored) == CARD
    assert stored["key"] == "arxiv:2411.17700" and stored["punch"][0]["is_math"] is True
    assert isinstance(stored["punch"], list) and isinstance(stored["discussions"][0], dict)


def test_a_card_stored_before_later_fields_existed_still_reads() -> None:
    old = {
        k: v
        for k, v in card_to_json(CARD).items()
        if k not in ("exploration", "details", "talk_for", "llm_fields", "evidence")
    }
    card = card_from_json(old)
    assert (card.exploration, card.details, card.talk_for, card.llm_fields) == (False, "", "", ())
    assert card.evidence == ()
    assert card.punch == CARD.punch and card.discussions == CARD.discussions
