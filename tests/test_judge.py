"""The optional LLM judge of the top picks (feedsvc/rank/judge.py) against a TEST DOUBLE of an
OpenAI-compatible endpoint on loopback: a `ReplayServer` whose one route answers chat completions in the
real API's shape with CONSTRUCTED replies (a grade and a reason chosen here per paper title, or a fault).
The picks are real arXiv listing records of tests/fixtures/corpus; the grades are made up."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from corpus import candidate, records
from fakes import FakeSleep
from test_cli import feedsvc
from test_evaluate import constructed_set
from test_llm_writer import api_error, completion

from feedsvc.cards.llm import ChatClient
from feedsvc.config import Settings
from feedsvc.models import Profile, Scored, Thread
from feedsvc.rank.judge import JUDGE_SCHEMA, choose, judge_picks, messages_for, top_to_judge, verdict_of
from feedsvc.replay import ReplayServer, Reply, Request

MODEL = "test-model"
ABOUT = "Image and video editing with diffusion models; benchmarks only when they measure precise edits."
PROFILE = Profile(name="reader", threads=(Thread(name="Visual editing", about=ABOUT),))


def picks(n: int = 5) -> list[Scored]:
    """The first `n` corpus records as picks of the one thread, best first."""
    return [
        Scored(candidate=candidate(r), score=round(0.9 - 0.1 * i, 2), thread="Visual editing")
        for i, r in enumerate(records()[:n])
    ]


def title_in(body: dict[str, Any]) -> str:
    user = body["messages"][1]["content"]
    return user.split("Title: ", 1)[1].split("\n", 1)[0]


class ConstructedJudge:
    """TEST DOUBLE: answers each request by the paper title in its prompt (`answer(title)`), and keeps
    the request bodies."""

    def __init__(self, answer: Callable[[str], Reply]) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.server = ReplayServer({"/v1/chat/completions": self._route})

    def _route(self, request: Request) -> Reply:
        body = json.loads(request.body)
        self.bodies.append(body)
        return self.answer(title_in(body))

    def __enter__(self) -> ConstructedJudge:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def client(self, timeout: float = 5.0) -> ChatClient:
        return ChatClient(
            f"{self.server.url}/v1",
            MODEL,
            timeout=timeout,
            deadline=timeout,
            retries=0,
            sleep=FakeSleep(),
        )


def grades_by_title(grades: dict[str, int]) -> Callable[[str], Reply]:
    def answer(title: str) -> Reply:
        grade = grades.get(title, 0)
        return completion({"reason": f"constructed reason, grade {grade}", "grade": grade}, 300, 20)

    return answer


def judge_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_judged_picks_are_ordered_by_grade_then_rank_and_say_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ps = picks(5)
    titles = [s.candidate.title for s in ps]
    grades = {titles[0]: 1, titles[1]: 0, titles[2]: 2, titles[3]: 1}
    with ConstructedJudge(grades_by_title(grades)) as judge:
        out = judge_picks(ps, PROFILE, judge.client(), top=4)
    assert [s.candidate.title for s in out] == [titles[2], titles[0], titles[3], titles[1], titles[4]]
    assert len(judge.bodies) == 4  # the fifth is beyond `top`: not asked about, kept last
    assert out[0].reasons[-1] == "LLM judge: 2 (constructed reason, grade 2)"
    assert out[3].reasons[-1] == "LLM judge: 0 (constructed reason, grade 0)"
    assert out[4].reasons == ps[4].reasons and out[4].score == ps[4].score  # untouched
    body = judge.bodies[0]
    assert body["max_tokens"] == 160 and body["response_format"]["json_schema"]["schema"] == JUDGE_SCHEMA
    user = body["messages"][1]["content"]
    assert ABOUT in user and f"Title: {titles[0]}" in user and "Abstract: " in user
    assert not judge_warnings(caplog)


def test_the_prompt_holds_the_title_and_an_abstract_excerpt_only() -> None:
    s = replace(picks(1)[0], matched=("secret-concept",), reasons=("blend of lexical 0.5",))
    long = replace(s, candidate=replace(s.candidate, text="word " * 2000))
    user = messages_for("Interest thread: x", long)[1]["content"]
    assert len(user) < 1400 and user.endswith(" …")
    assert "secret-concept" not in user and "blend" not in user


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (completion({"reason": "fine", "grade": 7}), "grade '7' is not 0, 1 or 2"),
        (completion("not JSON at all"), "the reply is not a JSON object"),
        (api_error(500, "internal"), "HTTP 500"),
    ],
    ids=["grade-out-of-range", "not-json", "http-500"],
)
def test_a_bad_answer_keeps_that_pick_in_place_with_one_log_line(
    fault: Reply, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    ps = picks(4)
    titles = [s.candidate.title for s in ps]
    good = grades_by_title({titles[0]: 0, titles[2]: 0, titles[3]: 2})

    def answer(title: str) -> Reply:
        return fault if title == titles[1] else good(title)

    with ConstructedJudge(answer) as judge:
        out = judge_picks(ps, PROFILE, judge.client(), top=20)
    # the second was not judged and keeps its place; the others are ordered among theirs
    assert [s.candidate.title for s in out] == [titles[3], titles[1], titles[0], titles[2]]
    assert not any(r.startswith("LLM judge") for r in out[1].reasons)
    warnings = judge_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "1 of 4 picks not judged, kept in place" in warnings[0] and why in warnings[0]


def test_a_server_that_fails_keeps_the_order_and_is_not_asked_again_and_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ps = picks(6)
    with ConstructedJudge(lambda title: api_error(503, "overloaded")) as judge:
        out = judge_picks(ps, PROFILE, judge.client(), top=20)
    assert out == ps
    assert len(judge.bodies) == 2  # GIVE_UP failures in a row, then the rest is not asked about
    [warning] = judge_warnings(caplog)
    assert "6 of 6 picks not judged" in warning and "4 not asked after 2 failures in a row" in warning


def test_a_timeout_keeps_the_order(caplog: pytest.LogCaptureFixture) -> None:
    ps = picks(3)
    with ConstructedJudge(lambda title: Reply(200, b"{}", {}, delay=2.0)) as judge:
        out = judge_picks(ps, PROFILE, judge.client(timeout=0.3), top=20)
    assert out == ps
    [warning] = judge_warnings(caplog)
    assert "timed out after 0.3s" in warning


def test_a_server_that_is_down_keeps_the_order(caplog: pytest.LogCaptureFixture) -> None:
    with ConstructedJudge(grades_by_title({})) as judge:
        url = judge.server.url
    client = ChatClient(f"{url}/v1", MODEL, timeout=2.0, retries=0, sleep=FakeSleep())
    ps = picks(3)
    assert judge_picks(ps, PROFILE, client, top=20) == ps
    [warning] = judge_warnings(caplog)
    assert "network error" in warning


def test_no_client_no_call_and_no_change() -> None:
    ps = picks(3)
    assert judge_picks(ps, PROFILE, None, top=20) == ps


def test_the_judge_is_off_by_default_and_needs_an_endpoint() -> None:
    def settings(**kw: Any) -> Settings:
        return Settings(_env_file=None, **kw)  # type: ignore[call-arg]

    assert settings().llm_judge is False and settings().llm_judge_top == 20
    assert top_to_judge(settings()) == 0
    assert top_to_judge(settings(llm_base_url="http://127.0.0.1:9/v1")) == 0  # the writer alone
    assert top_to_judge(settings(llm_judge=True)) == 0  # no endpoint: off, never an error
    assert top_to_judge(settings(llm_judge=True, llm_base_url="http://127.0.0.1:9/v1", llm_judge_top=5)) == 5


def test_a_verdict_reads_a_grade_written_as_a_string_and_shortens_a_long_reason() -> None:
    v = verdict_of({"grade": "2", "reason": "x " * 300})
    assert v.grade == 2 and len(v.reason) <= 202 and v.reason.endswith(" …")
    assert verdict_of({"grade": 0}).evidence == "LLM judge: 0"
    with pytest.raises(Exception, match="grade"):
        verdict_of({"grade": True, "reason": "yes"})


def test_choose_takes_the_judged_order_within_the_thread_quotas() -> None:
    two = Profile(name="r", threads=(Thread(name="a"), Thread(name="b")), papers=2)
    ps = picks(4)
    ps = [replace(s, thread=t) for s, t in zip(ps, ["a", "a", "a", "b"], strict=True)]
    assert choose(ps, two, 2) == [ps[0], ps[3]]  # one each: b's pick is taken although it is fourth
    assert choose(ps[:3], two, 2) == ps[:2]  # b has nothing: the quota gives way
    explore = [ps[0], ps[1], replace(ps[2], exploration=True)]
    assert choose(explore, two, 2) == [ps[0], explore[2]]  # the exploration pick keeps its slot


def test_the_eval_prints_the_judged_ranker_as_its_own_row(tmp_path: Path) -> None:
    labels, corpus = constructed_set(tmp_path)
    # the constructed judge grades against the evaluation: it gives 2 to nothing, so the order stays
    with ConstructedJudge(grades_by_title({})) as judge:
        env = {"FEEDSVC_LLM_BASE_URL": f"{judge.server.url}/v1", "FEEDSVC_LLM_MODEL": MODEL}
        r = feedsvc("eval", "--labels", str(labels), "--corpus", str(corpus), "--llm-judge", env=env)
        assert r.returncode == 0, r.stderr
        assert len(judge.bodies) == 14  # every paper of each (profile, day) pair: 4 + 3 for two profiles
        r1 = feedsvc(
            "eval", "--labels", str(labels), "--corpus", str(corpus), "--llm-judge", "--only", "views",
            "--days", "1", env=env,
        )  # fmt: skip
        assert r1.returncode == 0, r1.stderr
        assert len(judge.bodies) == 14 + 4
    assert "llm-judge hits@3 / nDCG@10" in " ".join(r.stdout.split())
    overall = next(line for line in r.stdout.splitlines() if "overall" in line)
    assert overall.count("4/4") == 3  # feedsvc, tfidf and the judged ranker (all grades 0: same order)
    assert "llm-judge  views                  2026-01-05 hits@3=1" in r.stdout
    assert "views                  2026-01-06" not in r1.stdout and "interp" not in r1.stdout
    r = feedsvc("eval", "--labels", str(labels), "--corpus", str(corpus), "--llm-judge")
    assert r.returncode == 2 and "--llm-judge needs an LLM endpoint" in r.stderr


def test_feedsvc_rank_with_the_judge_lists_its_grades(tmp_path: Path) -> None:
    rows = [
        {"id": r["id"], "title": r["title"], "abstract": r["summary"], "published": "2026-06-02"}
        for r in records()[:8]
    ]
    cands = tmp_path / "day.jsonl"
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        f'[[profile]]\nname = "reader"\n[[profile.thread]]\nname = "Visual editing"\nabout = "{ABOUT}"\n'
    )
    last = rows[-1]["title"]
    with ConstructedJudge(grades_by_title({last: 2})) as judge:
        env = {"FEEDSVC_LLM_BASE_URL": f"{judge.server.url}/v1", "FEEDSVC_LLM_MODEL": MODEL}
        r = feedsvc(
            "rank", "--profiles", str(profiles), "--candidates", str(cands), "--top", "3", "--json",
            "--llm-judge", env=env,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["scorers"][-1] == "llm-judge" and len(judge.bodies) == 8
    first = result["profiles"]["reader"][0]
    assert first["id"] == rows[-1]["id"]  # the one graded 2 comes first, from wherever it was
    assert first["reasons"][-1] == "LLM judge: 2 (constructed reason, grade 2)"


# --- in the digest ----------------------------------------------------------------------------------------

DIGEST_PROFILE = Profile(
    name="editing",
    threads=(
        Thread(
            name="Graphics",
            about="Visual editing of images and video, Gaussian splatting, distance fields, meshes and "
            "marching tetrahedra, physics simulation for graphics, CAD learning.",
            keywords=("editing", "Gaussian splatting", "tetrahedra", "distance fields", "video editing"),
        ),
    ),
    papers=2,
    videos=0,
    max_age_days=30,
)
GRAPHICS = ("2606.00188", "2606.00454", "2606.00817", "2606.01031", "2606.01362", "2606.01538", "2606.01702")


def graded_from_the_third(n: int) -> Reply:
    """The n-th judgement (from 1): grade 0 for the first two, 2 from the third; each reported as 300
    prompt and 20 completion tokens."""
    return completion({"reason": f"constructed, judged {n}", "grade": 0 if n <= 2 else 2}, 300, 20)


def digest_with(
    tmp_path: Path,
    factory: Any,
    judgement: Callable[[int], Reply] = graded_from_the_third,
    dry_run: bool = True,
    **overrides: Any,
) -> tuple[Any, list[str]]:
    """The profile's digest of the graphics papers in the corpus, built with a constructed LLM endpoint
    that answers the n-th judgement with `judgement(n)` and writes empty card prose (so the cards stay
    extractive); and the titles it was asked to judge, in order."""
    from datetime import UTC, date, datetime

    from feedsvc.demo import replay_settings
    from feedsvc.pipeline.digest import build_digests
    from feedsvc.store import queries
    from feedsvc.store.db import session_scope

    now = datetime(2026, 6, 2, 18, tzinfo=UTC)
    chosen = [r for r in records() if r["id"] in GRAPHICS]
    with session_scope(factory) as s:
        queries.sync_profiles(s, [DIGEST_PROFILE], now)
        queries.upsert_candidates(s, [candidate(r, now) for r in chosen], run_id=None, now=now)
    judged: list[str] = []

    def chat(request: Request) -> Reply:
        body = json.loads(request.body)
        if body["response_format"].get("json_schema", {}).get("name") != "judgement":
            return completion({"intuition": "", "punch_intro": "", "significance": "", "why": ""})
        judged.append(title_in(body))
        return judgement(len(judged))

    with ReplayServer({"/v1/chat/completions": chat}) as server:
        settings = replay_settings(
            server.url, tmp_path, llm_base_url=f"{server.url}/v1", llm_model=MODEL, **overrides
        )
        [built] = build_digests(
            settings, factory, [DIGEST_PROFILE], day=date(2026, 6, 2), now=now, dry_run=dry_run
        )
    return built, judged


def test_the_digest_takes_its_picks_in_the_judges_order_when_it_is_on(tmp_path: Path, factory: Any) -> None:
    built, judged = digest_with(tmp_path, factory, llm_judge=True)
    assert len(judged) >= 3, judged  # the papers that cleared the bar, up to FEEDSVC_LLM_JUDGE_TOP
    order = sorted(range(len(judged)), key=lambda i: (0 if i < 2 else -2, i))
    assert [c.title for c in built.digest.cards] == [judged[i] for i in order[:2]]
    card = built.digest.cards[0]
    assert card.evidence[-1] == f"LLM judge: 2 (constructed, judged {order[0] + 1})"  # what /why shows


def test_the_digest_does_not_ask_the_judge_by_default(tmp_path: Path, factory: Any) -> None:
    built, judged = digest_with(tmp_path, factory)
    assert judged == [] and len(built.digest.cards) == 2
    assert not any(e.startswith("LLM judge") for c in built.digest.cards for e in c.evidence)


def llm_runs(factory: Any) -> list[tuple[str, str, int]]:
    """The recorded `llm` runs, oldest first: (status, note, units)."""
    from sqlalchemy import select

    from feedsvc.store.db import session_scope
    from feedsvc.store.tables import SourceRun

    with session_scope(factory) as s:
        runs = s.scalars(select(SourceRun).where(SourceRun.source == "llm").order_by(SourceRun.id))
        return [(r.status, r.note, r.units) for r in runs]


def test_the_digest_records_the_judges_tokens_as_an_llm_run_as_it_does_the_writers(
    tmp_path: Path, factory: Any
) -> None:
    built, judged = digest_with(tmp_path, factory, dry_run=False, llm_judge=True)
    n = len(judged)
    assert n >= 3 and built.path is not None
    judge_run, writer_run = llm_runs(factory)
    note = f"LLM judge: {n} of {n} top papers judged; tokens {300 * n} in, {20 * n} out"
    assert judge_run == ("ok", note, 320 * n)
    # the card writer's run beside it: two cards, each reply 812 prompt and 96 completion tokens
    assert "tokens 1624 in, 192 out" in writer_run[1] and writer_run[2] == 1624 + 192
    # `feedsvc sources` and /healthz report both, the tokens of the last 24 hours as the LLM's units
    from datetime import UTC, datetime

    from feedsvc.demo import replay_settings
    from feedsvc.pipeline.collect import source_health

    settings = replay_settings("http://127.0.0.1:9", tmp_path, llm_base_url="http://127.0.0.1:9/v1")
    health = {h.source: h for h in source_health(settings, factory, now=datetime(2026, 6, 2, 19, tzinfo=UTC))}
    assert health["llm"].last_status == "ok" and health["llm"].units_today == 320 * n + 1816
    assert health["llm"].note == writer_run[1]  # the latest of the two
    without = replay_settings("http://127.0.0.1:9", tmp_path)
    assert "llm" not in {h.source for h in source_health(without, factory)}


def test_a_judge_that_fails_still_records_what_it_spent(tmp_path: Path, factory: Any) -> None:
    def no_grade(n: int) -> Reply:
        return completion({"reason": "constructed, without a grade"}, 250, 10)

    _, judged = digest_with(tmp_path, factory, no_grade, dry_run=False, llm_judge=True)
    assert len(judged) == 2  # two failures in a row, then the rest is not asked about
    status, note, units = llm_runs(factory)[0]
    assert status == "failed" and units == 2 * 260
    assert note.startswith("LLM judge: 0 of ") and note.endswith(" top papers judged; tokens 500 in, 20 out")
