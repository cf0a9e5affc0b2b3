"""`feedsvc eval --labels`: hits@3 and nDCG@10 on a labelled set, checked against figures worked out by
hand. The labelled set and its corpus are constructed here (two profiles, two days, a few made-up
abstracts); nothing is taken from the shared data."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

from test_cli import feedsvc

from feedsvc.models import Profile
from feedsvc.rank.evaluate import (
    best_hits_at_3,
    evaluate,
    hits_at_3,
    ndcg_at_10,
    read_labelled_set,
    standard_rankers,
)
from feedsvc.rank.pool import Pool

DAYS = {
    "2026-01-05": [
        ("c1", "Gaussian splatting for novel view synthesis", "Splatting scenes of Gaussians renders views."),
        ("c2", "Sparse autoencoders find features in language models", "Interpretability of features."),
        ("c3", "Crop yields under drought", "Farming and irrigation in dry years."),
        ("c4", "Bird migration timing", "Birds leave earlier in warm springs."),
    ],
    "2026-01-06": [
        ("d1", "Probing language models with sparse autoencoders", "Features and circuits interpretability."),
        ("d2", "Neural radiance fields from few views", "Radiance fields and novel view synthesis."),
        ("d3", "Volcano eruption forecasting", "Seismic precursors of eruptions."),
        ("d1", "Probing language models with sparse autoencoders", "A duplicate line: counted once."),
    ],
}
PROFILES = {
    "views": "Novel view synthesis: Gaussian splatting and radiance fields.",
    "interp": "Interpretability of language models: sparse autoencoders, features, circuits.",
}
# grades: each profile has one top pick a day, and one related paper on the first day
GRADES = {
    "views": {"2026-01-05": {"c1": 2, "c3": 1}, "2026-01-06": {"d2": 2}},
    "interp": {"2026-01-05": {"c2": 2, "c4": 1}, "2026-01-06": {"d1": 2, "d3": 0}, "_notes": "ignored"},
}


def constructed_set(tmp_path: Path) -> tuple[Path, Path]:
    labels, corpus = tmp_path / "taste", tmp_path / "corpus"
    labels.mkdir()
    corpus.mkdir()
    (labels / "profiles.json").write_text(json.dumps(PROFILES))
    for name, grades in GRADES.items():
        (labels / f"labels-{name}.json").write_text(json.dumps(grades))
    for day, papers in DAYS.items():
        rows = [
            {"id": i, "title": t, "summary": a, "authors": ["A. Author"], "categories": ["cs.CV"]}
            for i, t, a in papers
        ]
        (corpus / f"{day}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return labels, corpus


def test_the_metrics_match_figures_worked_out_by_hand() -> None:
    grades = {"a": 2, "b": 2, "c": 1, "d": 0}
    ids = ["a", "c", "x", "b"]
    assert hits_at_3(ids, grades) == 1  # b is fourth
    assert best_hits_at_3(grades) == 2 and best_hits_at_3({"a": 2, "b": 2, "c": 2, "e": 2}) == 3
    dcg = 2 / 1 + 1 / math.log2(3) + 0 + 2 / math.log2(5)
    idcg = 2 / 1 + 2 / math.log2(3) + 1 / 2
    assert abs(ndcg_at_10(ids, grades) - dcg / idcg) < 1e-12
    assert abs(dcg / idcg - 0.92834) < 1e-4
    assert ndcg_at_10(["a"], {}) == 0.0


def test_a_fixed_ranking_scores_as_computed_by_hand(tmp_path: Path) -> None:
    labels, corpus = constructed_set(tmp_path)

    def alphabetical(profile: Profile, pool: Pool, now: datetime) -> list[str]:
        return sorted(c.meta["id"] for c in pool.candidates)  # duplicates in the corpus are gone

    report = evaluate(read_labelled_set(labels), corpus, {"abc": alphabetical})
    views, interp = report.scores["abc"]["views"], report.scores["abc"]["interp"]
    # views: day 1 [c1 c2 c3 c4] -> c1 first (hit), c3 third; day 2 [d1 d2 d3] -> d2 second (hit)
    assert (views.hits, views.best) == (2, 2)
    ideal_1 = 2 + 1 / math.log2(3)
    assert abs(views.ndcgs[0] - (2 + 1 / 2) / ideal_1) < 1e-12
    assert abs(views.ndcgs[1] - (2 / math.log2(3)) / 2) < 1e-12
    # interp: day 1 c2 second (hit), c4 fourth; day 2 d1 first (hit)
    assert (interp.hits, interp.best) == (2, 2)
    assert abs(interp.ndcgs[0] - (2 / math.log2(3) + 1 / math.log2(5)) / ideal_1) < 1e-12
    assert interp.ndcgs[1] == 1.0
    overall = report.overall("abc")
    assert (overall.hits, overall.best, len(overall.ndcgs)) == (4, 4, 4)
    assert [p.ids for p in report.pairs if p.profile == "views"][1] == ["d1", "d2", "d3"]


def test_the_ranker_and_the_tfidf_reference_find_the_obvious_picks(tmp_path: Path) -> None:
    labels, corpus = constructed_set(tmp_path)
    report = evaluate(read_labelled_set(labels), corpus, standard_rankers(semantic=False))
    for scorer in ("feedsvc", "tfidf"):
        overall = report.overall(scorer)
        assert (overall.hits, overall.best) == (4, 4), scorer
        for pair in report.pairs:
            if pair.scorer == scorer:
                assert pair.ids[0] == next(i for i, g in GRADES[pair.profile][pair.day].items() if g == 2)


def test_the_command_prints_the_table(tmp_path: Path) -> None:
    labels, corpus = constructed_set(tmp_path)
    r = feedsvc("eval", "--labels", str(labels), "--corpus", str(corpus))
    assert r.returncode == 0, r.stderr
    overall = next(line for line in r.stdout.splitlines() if "overall" in line)
    assert overall.count("4/4") == 2  # the ranker and the TF-IDF reference (no embedder here)
    assert "tfidf      interp                 2026-01-06 hits@3=1 nDCG@10=1.000" in r.stdout
    r = feedsvc("eval", "--labels", str(tmp_path / "nowhere"), "--corpus", str(corpus))
    assert r.returncode == 2 and "not a labelled set" in r.stdout + r.stderr
