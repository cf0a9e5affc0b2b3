"""Issue 17 part 3: silence as a weak negative in the learned scorer, bounded and decaying, and the
"more like this" vote; on real abstracts (tests/fixtures/corpus) and, for the store's side, on both
databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from corpus import candidate, records
from sqlalchemy import select

from feedsvc.models import VOTES, Candidate, Feedback, Profile, Silence, Thread
from feedsvc.rank import learned
from feedsvc.rank.learned import learned_scores, silence_weights
from feedsvc.rank.ranker import rank
from feedsvc.store import queries
from feedsvc.store.db import session_scope
from feedsvc.store.tables import DeliveryRow, DigestRow, EntryRow, Item, ProfileRow, RecipientRow

NOW = datetime(2026, 6, 2, 12, tzinfo=UTC)


def cand(i: int) -> Candidate:
    return Candidate(key=f"k{i}", kind="paper", title=f"t{i}", text="x", url="", source="t")


def test_silence_weighs_nothing_at_first_then_less_than_a_vote_and_fades() -> None:
    ages = [0.0, 2.9, 3.0, 3.0 + learned.SILENCE_HALF_LIFE_DAYS, 3.0 + 4 * learned.SILENCE_HALF_LIFE_DAYS]
    w = silence_weights([Silence(cand(i), a) for i, a in enumerate(ages)], votes_weight=100.0)
    assert w[0] == 0 and w[1] == 0
    assert w[2] == pytest.approx(learned.SILENCE_WEIGHT) and w[2] < 1.0  # below one explicit vote
    assert w[3] == pytest.approx(learned.SILENCE_WEIGHT / 2)
    assert w[4] == pytest.approx(learned.SILENCE_WEIGHT / 16)


def test_all_silences_together_stay_below_the_explicit_votes() -> None:
    many = [Silence(cand(i), 5.0) for i in range(50)]
    w = silence_weights(many, votes_weight=2.0)
    assert w.sum() == pytest.approx(learned.SILENCE_TOTAL_SHARE * 2.0)
    assert silence_weights(many, votes_weight=0.0).sum() == 0


def test_silence_cannot_outweigh_a_vote_on_the_same_topic() -> None:
    X = np.eye(6)
    liked = [Feedback(cand(0), "up")]
    # ten old silences on exactly what the reader liked: the liked direction stays the day's best
    silent = [Silence(cand(10 + i), 4.0) for i in range(10)]
    with_silence = learned_scores(X, liked, X[:1], silent, np.repeat(X[:1], 10, axis=0))
    assert with_silence is not None and int(np.argmax(with_silence.scores)) == 0
    # silences elsewhere push that direction down against an unlabelled one
    elsewhere = learned_scores(X, liked, X[:1], [Silence(cand(20), 4.0)], X[1:2])
    without = learned_scores(X, liked, X[:1])
    assert elsewhere is not None and without is not None
    assert elsewhere.scores[1] < without.scores[1]
    assert elsewhere.scores[1] < elsewhere.scores[2]


def test_more_like_this_is_a_vote_everywhere_and_a_stronger_positive() -> None:
    assert list(VOTES) == ["up", "down", "more", "less"]
    assert VOTES["more"].phrase == "more like this" and VOTES["up"].phrase != "more like this"
    X = np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0, 0, 1.0], [0, 1.0, 0]])
    down = Feedback(cand(3), "down")
    more = learned_scores(X, [Feedback(cand(0), "more"), down], np.array([X[0], X[3]]))
    two_ups = learned_scores(X, [Feedback(cand(0), "up")] * 2 + [down], np.array([X[0], X[0], X[3]]))
    one_up = learned_scores(X, [Feedback(cand(0), "up"), down], np.array([X[0], X[3]]))
    assert more is not None and two_ups is not None and one_up is not None
    assert more.scores == pytest.approx(two_ups.scores, abs=1e-3)  # "more" is a 👍 counted twice
    assert not np.allclose(more.scores, one_up.scores, atol=1e-3)


AGENTS = Thread("LLM agents", "Autonomous language-model agents, tool use.", ("agent", "tool use"))
VISION = Thread("3D vision", "3D reconstruction, point clouds, gaussian splatting.", ("3D", "point cloud"))


def test_silence_on_a_thread_moves_the_ranking_away_from_it() -> None:
    pool = [candidate(r, published=NOW) for r in records()]
    profile = Profile(name="p", threads=(AGENTS, VISION), papers=4)
    base = rank(profile, pool, now=NOW)
    liked = [p.candidate for p in base.picks if p.thread == "3D vision"]
    passed = [p.candidate for p in base.picks if p.thread == "LLM agents"]
    assert liked and passed
    votes = [Feedback(c, "up", "3D vision") for c in liked]
    sent = {c.key for c in liked + passed}
    plain = rank(profile, pool, now=NOW, feedback=votes, already_sent=sent)
    silent = [Silence(c, 4.0) for c in passed]
    learning = rank(profile, pool, now=NOW, feedback=votes, already_sent=sent, silence=silent)
    agents = lambda r: [p.score for p in r.picks if p.thread == "LLM agents"]  # noqa: E731
    assert len(agents(learning)) < len(agents(plain)) or sum(agents(learning)) < sum(agents(plain))


# --- the store's side: what was sent and never voted on ------------------------------------------------


def _sent_digest(session, day: date, sent: datetime, items: list[Item], profile_id: int, rid: int) -> None:
    d = DigestRow(profile_id=profile_id, day=day, title="t", created=sent)
    session.add(d)
    session.flush()
    for i, item in enumerate(items, start=1):
        session.add(EntryRow(digest_id=d.id, item_id=item.id, position=i, card={}))
    session.add(
        DeliveryRow(
            digest_id=d.id,
            recipient_id=rid,
            channel="telegram",
            status="sent",
            created=sent,
            due=sent,
            sent=sent,
        )
    )
    session.flush()


def test_the_store_reports_silence_with_its_age_and_leaves_out_voted_items(factory) -> None:
    profile = Profile(name="reader", threads=(AGENTS,))
    pool = [candidate(r, published=NOW) for r in records()[:5]]
    with session_scope(factory) as s:
        queries.sync_profiles(s, [profile], NOW)
        queries.upsert_candidates(s, pool, run_id=None, now=NOW)
        pid = s.scalar(select(ProfileRow.id))
        r = RecipientRow(profile_id=pid, channel="telegram", address="1", created=NOW)
        s.add(r)
        s.flush()
        items = [s.scalars(select(Item).where(Item.key == c.key)).one() for c in pool]
        _sent_digest(s, date(2026, 5, 25), NOW - timedelta(days=8), items[:3], pid, r.id)
        _sent_digest(s, date(2026, 6, 1), NOW - timedelta(days=1), items[3:], pid, r.id)
        queries.record_feedback(s, "reader", pool[0].key, "more", channel="web", now=NOW)
        s.commit()
    with session_scope(factory) as s:
        silence = queries.silence_for(s, "reader", NOW)
    ages = {x.candidate.key: x.age_days for x in silence}
    assert pool[0].key not in ages  # voted: a vote, not silence
    assert ages[pool[1].key] == pytest.approx(8.0) and ages[pool[4].key] == pytest.approx(1.0)
    assert set(ages) == {c.key for c in pool[1:]}
