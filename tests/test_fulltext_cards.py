"""Issue 5 in the pipeline: a pick's full text fetched over loopback HTTP (arXiv HTML, else the e-print),
cached in the store, and its key equation and numbers on the card, grounded; fallbacks with a reason.

The HTML and sources are the recorded papers in tests/fixtures/papers (see its PROVENANCE.md). Each paper
enters the store as arXiv would list it: its own title and abstract (taken from its full text here, since
no recorded listing of these papers exists; the abstract is the paper's own text)."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from feedsvc.cards.fulltext import from_html
from feedsvc.cards.grounding_math import formula_grounded
from feedsvc.cards.writer import write_card
from feedsvc.config import parse_profiles
from feedsvc.demo import replay_settings
from feedsvc.models import Candidate, Scored
from feedsvc.pipeline.digest import build_digests
from feedsvc.replay import ReplayServer, Reply
from feedsvc.store import queries
from feedsvc.store.db import session_scope

PAPERS = Path(__file__).parent / "fixtures" / "papers"
NOW = datetime(2024, 11, 28, 18, tzinfo=UTC)
HTML = {"Content-Type": "text/html; charset=utf-8"}


def html(arxiv_id: str) -> bytes:
    return gzip.decompress((PAPERS / f"{arxiv_id}.html.gz").read_bytes())


def as_listed(arxiv_id: str) -> Candidate:
    ft = from_html(html(arxiv_id))
    abstract = " ".join(next(body for head, body in ft.sections if head.lower() == "abstract").split())
    abstract = abstract.removeprefix("Abstract").strip()
    title = {
        "2012.15000": "DeepSphere: a graph-based spherical CNN",
        "1606.09375": "Convolutional Neural Networks on Graphs with Fast Localized Spectral Filtering",
    }[arxiv_id]
    return Candidate(
        key=f"arxiv:{arxiv_id}",
        kind="paper",
        title=title,
        text=abstract,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        source="arxiv",
        categories=("cs.LG",),
        published=datetime(2024, 11, 27, tzinfo=UTC),
    )


def test_the_card_quotes_the_papers_own_key_equation() -> None:
    ft = from_html(html("2012.15000"))
    c = as_listed("2012.15000")
    card = write_card(Scored(candidate=c, score=0.5, thread="Spheres"), ft)
    eq = card.punch[0]
    assert eq.is_math and eq.where.startswith("arXiv HTML, eq. (2), §3.1")
    assert formula_grounded(eq.text, ft.text, ft.macros)
    assert card.punch_intro.startswith("The paper's key equation")
    assert "full read" in card.time_cost


PROFILE = parse_profiles(
    {
        "profile": [
            {
                "name": "graphs",
                "max_age_days": 30,
                "papers": 2,
                "videos": 0,
                "thread": [
                    {
                        "name": "Graph learning",
                        "about": "graph neural networks, spectral filters, spherical CNNs",
                        "keywords": ["graph", "spherical", "convolutional"],
                    }
                ],
            }
        ]
    },
    "test",
)


@pytest.fixture
def papers_in_store(factory) -> None:
    with session_scope(factory) as s:
        queries.sync_profiles(s, PROFILE, NOW)
        queries.upsert_candidates(s, [as_listed("2012.15000"), as_listed("1606.09375")], run_id=None, now=NOW)


def test_picks_get_full_text_from_html_else_the_eprint_and_it_is_cached(
    tmp_path, factory, papers_in_store
) -> None:
    routes = {
        "/html/2012.15000": Reply(body=html("2012.15000"), headers=HTML),
        # 1606.09375: no HTML (404), so its LaTeX source tarball
        "/e-print/1606.09375": Reply(
            body=(PAPERS / "1606.09375.src.tar.gz").read_bytes(), headers={"Content-Type": "application/gzip"}
        ),
    }
    with ReplayServer(routes) as server:
        settings = replay_settings(server.url, tmp_path)
        [built] = build_digests(settings, factory, PROFILE, day=date(2024, 11, 28), now=NOW)

        def texts() -> list[str]:
            return [r.path for r in server.requests if r.path.startswith(("/html", "/e-print"))]

        fetched = texts()
        build_digests(settings, factory, PROFILE, day=date(2024, 11, 29), now=NOW, dry_run=True)
        assert texts() == fetched  # cached: nothing fetched twice
    cards = {c.key: c for c in built.digest.cards}
    sphere, cheb = cards["arxiv:2012.15000"], cards["arxiv:1606.09375"]
    assert sphere.punch[0].where.startswith("arXiv HTML, eq. (2)")
    assert cheb.punch[0].is_math and cheb.punch[0].where.startswith("LaTeX source, eq. (5)")
    assert sorted(fetched) == ["/e-print/1606.09375", "/html/1606.09375", "/html/2012.15000"]
    md = built.markdown
    assert "$$\n" + sphere.punch[0].text.replace("$$", "$ $") in md or sphere.punch[0].text[:30] in md
    assert "Full text of the picks: 1 from LaTeX source, 1 from arXiv HTML" in md
    # each pick with full text gets its breakdown page beside the digest, linked from its card
    assert sphere.details == "papers/2012.15000.md"
    assert "**Deeper:** [breakdown and formula notes](papers/2012.15000.md)" in md
    page = (built.path.parent / "papers" / "2012.15000.md").read_text(encoding="utf-8")
    assert page == built.pages["papers/2012.15000.md"] and "DeepSphere" in page and "$$" in page


def test_without_any_full_text_the_card_keeps_the_abstract_and_says_why(
    tmp_path, factory, papers_in_store
) -> None:
    # constructed: a page from a conversion that failed
    failed = b"<html><body><p>Conversion to HTML had a Fatal error and exited abruptly.</p></body></html>"
    routes = {
        "/html/2012.15000": Reply(body=failed, headers=HTML),
        "/e-print/2012.15000": Reply(body=b"%PDF-1.5 constructed pdf-only submission"),
    }
    with ReplayServer(routes) as server:
        settings = replay_settings(server.url, tmp_path)
        [built] = build_digests(settings, factory, PROFILE, day=date(2024, 11, 28), now=NOW, dry_run=True)
    sphere = next(c for c in built.digest.cards if c.key == "arxiv:2012.15000")
    assert all(q.where == "abstract" for q in sphere.punch)
    note = built.digest.sources[0].note
    assert "from the abstract only" in note and "html:" in note


def test_the_llm_writes_prose_in_the_digest_and_an_invented_number_never_shows(
    tmp_path, factory, papers_in_store
) -> None:
    import json

    sphere = as_listed("2012.15000")
    first = sphere.text.split(". ")[0] + "."
    answer = {  # a TEST DOUBLE's answer: one field grounded, one with an invented number
        "intuition": first,
        "punch_intro": "The equivariance error it minimises:",
        "significance": "This cuts the error by 87% on every benchmark.",
        "why": "Your Graph learning thread: spherical CNNs built on graphs.",
    }

    def chat(request):  # TEST DOUBLE of an OpenAI-compatible /v1/chat/completions
        body = json.loads(request.body)
        assert body["model"] == "test-model" and body["messages"]
        reply = {
            "id": "x",
            "object": "chat.completion",
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(answer)},
                }
            ],
            "usage": {"prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980},
        }
        return Reply(body=json.dumps(reply).encode(), headers={"Content-Type": "application/json"})

    routes = {"/html/2012.15000": Reply(body=html("2012.15000"), headers=HTML), "/v1/chat/completions": chat}
    with ReplayServer(routes) as server:
        settings = replay_settings(
            server.url, tmp_path, llm_base_url=f"{server.url}/v1", llm_model="test-model"
        )
        [built] = build_digests(settings, factory, PROFILE, day=date(2024, 11, 28), now=NOW)
    card = next(c for c in built.digest.cards if c.key == "arxiv:2012.15000")
    assert card.writer == "llm:test-model" and card.intuition == first
    assert "87%" not in built.markdown  # the invented number was replaced by the extractive sentence
    assert card.punch[0].where.startswith("arXiv HTML")  # the punch is never generated
    assert "*Prose by llm:test-model" in built.markdown
    with session_scope(factory) as s:
        run = queries.latest_runs(s)["llm"]
        assert run.units == 2 * 980 and "rejected significance" in run.note
