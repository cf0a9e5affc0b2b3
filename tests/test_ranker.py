"""The first ranker on real abstracts: threads, the window, vetoes, the ledger, the bar, the spread."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from corpus import candidate, records

from feedsvc.models import Candidate, Profile, Thread
from feedsvc.rank.concepts import phrase_in
from feedsvc.rank.ranker import rank

NOW = datetime(2026, 6, 2, 12, tzinfo=UTC)


def pool() -> list[Candidate]:
    return [candidate(r, published=NOW) for r in records()]


AGENTS = Thread(
    name="LLM agents",
    about="Autonomous language-model agents, tool use, multi-agent systems, "
    "planning and failure detection of agents.",
    keywords=("agent", "tool use", "multi-agent"),
)
VISION = Thread(
    name="3D vision",
    about="3D reconstruction, point clouds, depth estimation, neural rendering and gaussian splatting.",
    keywords=("3D", "point cloud", "gaussian splatting"),
)


def profile(**kw) -> Profile:
    return Profile(name="p", threads=kw.pop("threads", (AGENTS, VISION)), papers=kw.pop("papers", 4), **kw)


def test_picks_are_relevant_and_spread_across_threads() -> None:
    r = rank(profile(), pool(), now=NOW)
    assert len(r.picks) == 4
    threads = [p.thread for p in r.picks]
    assert threads.count("LLM agents") == 2 and threads.count("3D vision") == 2
    for p in r.picks:
        text = (p.candidate.title + p.candidate.text).lower()
        assert (
            ("agent" in text)
            if p.thread == "LLM agents"
            else any(w in text for w in ("3d", "point", "gaussian", "depth"))
        )
        assert p.matched and p.reasons
    assert [p.score for p in r.picks] == sorted((p.score for p in r.picks), reverse=True)


def test_exclude_vetoes_terms_and_authors() -> None:
    candidates = pool()
    first = rank(profile(), candidates, now=NOW).picks[0].candidate
    vetoed = rank(profile(exclude=(first.authors[0],)), candidates, now=NOW)
    assert first.key not in [p.candidate.key for p in vetoed.picks]
    assert vetoed.vetoed >= 1 and vetoed.vetoes[first.authors[0]] >= 1
    by_term = rank(profile(exclude=("agents",)), candidates, now=NOW)
    assert by_term.vetoes["agents"] > 0
    assert all(
        not re.search(r"\bagents\b", (p.candidate.title + p.candidate.text).lower()) for p in by_term.picks
    )


def test_the_ledger_never_picks_what_was_sent() -> None:
    candidates = pool()
    first = rank(profile(), candidates, now=NOW).picks
    again = rank(profile(), candidates, now=NOW, already_sent={p.candidate.key for p in first})
    assert not {p.candidate.key for p in first} & {p.candidate.key for p in again.picks}
    assert again.already_sent == 4


def test_the_eligibility_window() -> None:
    candidates = pool()
    old = [Candidate(**{**c.__dict__, "published": NOW - timedelta(days=400)}) for c in candidates]
    r = rank(profile(max_age_days=365), old, now=NOW)
    assert r.picks == [] and r.too_old == len({c.key for c in candidates}) == 196  # 4 ids listed twice


def test_a_thread_nothing_matches_leaves_its_place_and_a_weak_day_gives_fewer_picks() -> None:
    nonsense = Thread(name="Medieval poetry", about="troubadour lyric manuscripts", keywords=("troubadour",))
    r = rank(profile(threads=(AGENTS, nonsense), papers=3), pool(), now=NOW)
    assert [p.thread for p in r.picks] == ["LLM agents"] * 3
    only = rank(profile(threads=(nonsense,), papers=3), pool(), now=NOW)
    assert only.picks == [] and only.below_bar == only.eligible == 196


def test_seed_papers_pull_and_are_named() -> None:
    candidates = pool()
    seed = next(c for c in candidates if c.title.startswith("Deliberative Curation"))
    thread = Thread(name="Mine", seed_papers=(seed.key.removeprefix("arxiv:"),))  # the library alone
    rest = [c for c in candidates if c.key != seed.key]
    r = rank(profile(threads=(thread,), papers=2), rest, now=NOW, seeds={seed.key: seed}, min_score=0.0)
    # the seed is about multi-agent deliberation; so is the best match
    assert r.picks[0].candidate.title.startswith("Emergent Collaborative Deliberation")
    assert r.picks[0].nearest_seed == seed.title
    without = rank(profile(threads=(thread,), papers=2), rest, now=NOW, seeds={}, min_score=0.0)
    assert not without.picks[0].candidate.title.startswith("Emergent Collaborative Deliberation")
    assert without.picks[0].nearest_seed is None


def test_a_shared_concept_is_shown_as_the_paper_writes_it() -> None:
    # constructed sentences; the terms are what the TF-IDF analyser makes of them (stop words dropped)
    text = (
        "We train Vision-Language-Action models with sim-to-real transfer on non-convex objectives. AGI-Eval"
    )
    assert phrase_in(text, "language action") == "vision-language-action"
    assert phrase_in(text, "action models") == "vision-language-action models"
    assert phrase_in(text, "real transfer") == "sim-to-real transfer"
    assert phrase_in(text, "sim real") == "sim-to-real"
    assert phrase_in(text, "convex") == "non-convex"
    assert phrase_in(text, "eval") == ""  # a word inside a name is not a concept
    assert phrase_in(text, "objectives models") == ""  # not one phrase in the text
    # kept as written: it holds an acronym
    assert phrase_in("Our 3D Gaussian splatting.", "3d gaussian") == "3D Gaussian"
    assert phrase_in("Convex losses and convex sets.", "convex") == "convex"


def matched_for(title: str, text: str, thread: Thread) -> tuple[str, ...]:
    """The concepts shown for a constructed paper picked from among the real corpus for `thread`."""
    c = Candidate(
        key="constructed",
        kind="paper",
        title=title,
        text=text,
        url="https://example.org/constructed",
        source="arxiv",
        published=NOW,
    )
    (pick,) = rank(profile(threads=(thread,), papers=1), [*pool(), c], now=NOW).picks
    assert pick.candidate.key == "constructed"
    return pick.matched


def test_the_shared_concepts_name_each_word_once() -> None:
    # two forms of "relational" and of "convolution"
    matched = matched_for(
        "Relational convolutions for hierarchical relations",
        "Relations between objects matter. Relational convolutions learn hierarchical relations "
        "with a convolution over groups of objects.",
        Thread(name="Relational reasoning", about="relational reasoning, relations, convolution"),
    )
    words = [w for m in matched for w in m.split()]
    assert len(matched) >= 2 and len({w[:6] for w in words}) == len(words), matched


def test_overlapping_concepts_are_shown_as_the_one_phrase_the_paper_writes() -> None:
    # the analyser's bigrams "markov decision" and "decision process" are one phrase in the text
    matched = matched_for(
        "Offline learning in a Markov decision process",
        "We study a Markov decision process with offline data and prove a regret bound for Markov "
        "decision process planning.",
        Thread(name="RL theory", about="markov decision process theory, offline regret bounds"),
    )
    assert "markov decision process" in matched, matched
    assert not any(m.lower() in ("markov decision", "decision process") for m in matched)


def test_a_word_common_to_the_days_papers_is_not_named_beside_distinctive_ones() -> None:
    # "learning" is in many of the day's papers
    matched = matched_for(
        "Dating troubadour manuscripts",
        "Learning to date troubadour manuscripts: learning lyric forms, with learning from rhyme.",
        Thread(name="Medieval poetry", about="learning; troubadour manuscripts; lyric"),
    )
    assert len(matched) >= 2 and "learning" not in matched, matched
