"""The one vote vocabulary: every surface writes each vote from `VOTES`, and reads it back."""

from __future__ import annotations

import pytest

from feedsvc.deliver.telegram import callback_data, parse_callback
from feedsvc.models import VOTES
from feedsvc.render.email import feedback_link


@pytest.mark.parametrize("vote", list(VOTES))
def test_every_vote_round_trips_through_telegram_callback_data(vote: str) -> None:
    data = callback_data(7, vote, "arxiv:2411.17700")
    assert data == f"f:7:{VOTES[vote].code}:arxiv:2411.17700"
    parsed = parse_callback(data)
    assert parsed is not None
    assert (parsed.action, parsed.key, parsed.recipient_id) == (vote, "arxiv:2411.17700", 7)


def test_an_unknown_vote_is_refused_by_every_surface() -> None:
    with pytest.raises(ValueError):
        callback_data(7, "love", "arxiv:2411.17700")
    with pytest.raises(ValueError):
        feedback_link("love", "arxiv:2411.17700")
    assert parse_callback("f:7:z:arxiv:2411.17700") is None
