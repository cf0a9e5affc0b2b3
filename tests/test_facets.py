"""A thread's `about` split into interests and stated preferences (rank/facets.py), and the ranker's use
of the best listed interest. The profiles are written here for the test."""

from __future__ import annotations

import numpy as np

from feedsvc.models import Thread
from feedsvc.rank.facets import read_facets, without_dislikes
from feedsvc.rank.ranker import _with_best_interest, thread_interests, thread_query


def test_a_topic_with_a_list_becomes_the_topic_and_each_item() -> None:
    f = read_facets(
        "3D vision: reconstruction from images, neural rendering (NeRF, Gaussian splatting), and pose "
        "estimation. Method papers with a new mechanism are preferred over applications alone."
    )
    assert f.interests == (
        "3D vision",
        "reconstruction from images",
        "neural rendering (NeRF, Gaussian splatting)",
        "pose estimation",
    )
    assert f.wanted == ("Method papers with a new mechanism",)
    assert f.unwanted == ("applications alone",)


def test_preferences_in_their_usual_phrasings() -> None:
    assert read_facets("Learning theory. The reader wants theorems and rates, not empirical tuning.") == (
        read_facets("Learning theory.").__class__(
            ("Learning theory",), ("theorems and rates",), ("empirical tuning",)
        )
    )
    f = read_facets("Interpretability. Prefers careful analysis over leaderboard papers.")
    assert (f.wanted, f.unwanted) == (("careful analysis",), ("leaderboard papers",))
    assert read_facets("") == read_facets("   ") and read_facets("").interests == ()


def test_a_thread_with_one_interest_has_no_facets_to_add() -> None:
    assert thread_interests(Thread(name="t", about="machines that act autonomously")) == []
    assert thread_interests(Thread(name="t", about="Robots: grasping, walking")) == [
        "Robots",
        "grasping",
        "walking",
    ]


def test_a_paper_that_answers_one_listed_interest_well_beats_one_that_answers_all_vaguely() -> None:
    threads = [Thread(name="v", about="Vision: splatting, pose, rendering"), Thread(name="w", about="birds")]
    whole = np.array([[0.4, 0.1], [0.5, 0.1]])  # paper 1 matches the whole thread a little better

    def similarity(texts: list[str]) -> np.ndarray:
        assert texts == ["Vision", "splatting", "pose", "rendering"]
        return np.array([[0.1, 0.9, 0.0, 0.1], [0.3, 0.3, 0.3, 0.3]])

    out = _with_best_interest(whole, threads, similarity)
    assert np.allclose(out[:, 0], [(0.4 + 0.9) / 2, (0.5 + 0.3) / 2])
    assert np.array_equal(out[:, 1], whole[:, 1])  # one interest: nothing to add


def test_what_the_reader_disfavours_is_cut_from_the_query() -> None:
    about = (
        "Robot learning: manipulation and imitation learning. "
        "Papers with a new learning mechanism are preferred over pure hardware or dataset papers. "
        "The reader wants theorems and rates, not empirical tuning."
    )
    kept = without_dislikes(about)
    assert kept == (
        "Robot learning: manipulation and imitation learning. "
        "Papers with a new learning mechanism are preferred. The reader wants theorems and rates."
    )
    query = thread_query(Thread(name="robots", about=about, keywords=("grasping",)))
    assert "dataset" not in query and "hardware" not in query and "empirical tuning" not in query
    assert "imitation learning" in query and "grasping" in query
    assert without_dislikes("Sparse autoencoders and probing.") == "Sparse autoencoders and probing."
