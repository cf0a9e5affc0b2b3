"""The optional LLM card writer against a test double of an OpenAI-compatible server on loopback.

`FakeChatServer` is a TEST DOUBLE, not a model: a `feedsvc.replay.ReplayServer` with one callable route,
`POST /v1/chat/completions`, that checks the request body has the real API's shape (model, messages,
response_format json_schema or json_object, temperature) and answers with chat-completion JSON in the
real API's shape (choices[0].message.content, usage). The card under test is built by `build_card` from a
real abstract in the corpus fixture. Waits are recorded by `FakeSleep`, so retry tests take no time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from corpus import candidate, records
from fakes import FakeSleep

from feedsvc.cards.extractive import build_card
from feedsvc.cards.llm import CARD_SCHEMA, LlmResult, client_from_settings, grounding_problem, write_card
from feedsvc.config import Settings
from feedsvc.models import Card, Scored
from feedsvc.replay import ReplayServer, Reply, Request

KEY = "sk-test-SECRET-7c1e0b52d9"
MODEL = "test-model"

# --- the paper: PaintBench, the corpus' first record (states "17.1%" and "11 image editing models") ---------


def paper() -> Scored:
    r = records()[0]
    assert r["title"].startswith("PaintBench") and "17.1%" in r["summary"] and "42" not in r["summary"]
    c = candidate(r)
    return Scored(candidate=c, score=0.41, thread="Visual editing", matched=("image editing", "benchmark"))


GOOD = {  # prose a careful model writes: each sentence has a sentence of the abstract behind it
    "intuition": "PaintBench is a benchmark of 20 precise visual editing operations in four categories. "
    "Its evaluation is deterministic and pixel-level, so it does not rely on bias-prone judge models.",
    "punch_intro": "Across 11 image editing models, performance is low:",
    "significance": "PaintBench gives a rigorous foundation for measuring progress in precise multimodal "
    "visual editing.",
    "why": "It is a benchmark for image editing, squarely in your Visual editing thread.",
}


# --- the test double -------------------------------------------------------------------------------------


def completion(content: str | dict[str, Any], prompt_tokens: int = 812, completion_tokens: int = 96) -> Reply:
    """A 200 chat-completion in the OpenAI shape; `content` is the assistant message (a dict is dumped)."""
    text = content if isinstance(content, str) else json.dumps(content)
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1780000000,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


Answer = Reply | Callable[[dict[str, Any]], Reply]


class FakeChatServer:
    """TEST DOUBLE of an OpenAI-compatible endpoint: only POST /v1/chat/completions, answers in turn."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.server = ReplayServer({"/v1/chat/completions": self._route})

    def _check(self, request: Request, body: dict[str, Any]) -> None:
        want = {"model", "messages", "response_format", "temperature"}
        if request.method != "POST" or not want <= body.keys():
            self.problems.append(f"{request.method} with keys {sorted(body)}")
            return
        if body["model"] != MODEL or body["temperature"] != 0.2:
            self.problems.append(f"model {body['model']!r}, temperature {body['temperature']!r}")
        messages = body["messages"]
        if not (
            isinstance(messages, list)
            and [m.get("role") for m in messages] == ["system", "user"]
            and all(isinstance(m.get("content"), str) and m["content"] for m in messages)
        ):
            self.problems.append(f"messages {messages!r:.200}")
        fmt = body["response_format"]
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema", {})
            if (spec.get("name"), spec.get("strict"), spec.get("schema")) != ("card", True, CARD_SCHEMA):
                self.problems.append(f"json_schema {spec!r:.200}")
        elif fmt not in ({"type": "json_object"}, {"type": "json_object", "schema": CARD_SCHEMA}):
            self.problems.append(f"response_format {fmt!r}")

    def _route(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body)
        except (AttributeError, ValueError):
            self.problems.append("no JSON body")
            return api_error(400, "no JSON body")
        self.bodies.append(body)
        self._check(request, body)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(body) if callable(answer) else answer

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def __enter__(self) -> FakeChatServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def settings_for(fake: FakeChatServer | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_base_url": fake.base_url if fake else "",
        "llm_model": MODEL,
        "llm_api_key": KEY,
        "llm_timeout": 5.0,
        "llm_retries": 2,
        "http_max_wait": 60.0,
        "http_jitter": 0.0,  # exact waits; the jitter is tested in test_retry.py
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def run(fake: FakeChatServer | None, sleep: FakeSleep, **overrides: Any) -> tuple[LlmResult, Card]:
    s = paper()
    extractive = build_card(s)
    client = client_from_settings(settings_for(fake, **overrides), sleep=sleep)
    try:
        return write_card(s, extractive, s.candidate.text, client), extractive
    finally:
        if client is not None:
            client.close()


def no_secret(result: LlmResult, caplog: pytest.LogCaptureFixture) -> None:
    texts = [result.error or "", *result.rejected, result.note, caplog.text, repr(result)]
    assert not any(KEY in t for t in texts)


# --- the cases ------------------------------------------------------------------------------------------


def test_a_good_answer_is_used_with_tokens_and_the_key_only_in_the_header(caplog) -> None:
    sleep = FakeSleep()
    with caplog.at_level(logging.DEBUG), FakeChatServer(completion(GOOD)) as fake:
        result, extractive = run(fake, sleep)
    assert fake.problems == []
    assert result.error is None and result.rejected == [] and result.note == ""
    card = result.card
    assert card.writer == "llm:test-model"
    assert (card.intuition, card.punch_intro, card.significance, card.why) == (
        GOOD["intuition"],
        GOOD["punch_intro"],
        GOOD["significance"],
        GOOD["why"],
    )
    assert card.punch == extractive.punch and card.punch  # the paper's own numbers, never generated
    assert (card.title, card.domain, card.time_cost) == (
        extractive.title,
        extractive.domain,
        extractive.time_cost,
    )
    assert result.tokens == (812, 96)
    assert sleep.calls == []
    assert fake.server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert fake.server.requests[0].path == "/v1/chat/completions"
    user = fake.bodies[0]["messages"][1]["content"]
    assert (
        extractive.title in user and "17.1%" in user and "Visual editing" in user and "image editing" in user
    )
    assert "quote nothing that is not in the source" in fake.bodies[0]["messages"][0]["content"]
    no_secret(result, caplog)


def test_no_key_no_authorization_header() -> None:
    with FakeChatServer(completion(GOOD)) as fake:
        result, _ = run(fake, FakeSleep(), llm_api_key="")
    assert result.card.writer == "llm:test-model"
    assert "authorization" not in fake.server.requests[0].headers


def test_an_invented_number_is_replaced_by_the_extractive_field_and_recorded(caplog) -> None:
    answer = {**GOOD, "significance": "The benchmark improves accuracy by 42% over judge-model evaluation."}
    with caplog.at_level(logging.WARNING), FakeChatServer(completion(answer)) as fake:
        result, extractive = run(fake, FakeSleep())
    assert result.rejected == ["significance: the number 42% is not in the source"]
    assert result.card.significance == extractive.significance
    assert result.card.intuition == GOOD["intuition"]  # the other fields are still used
    assert result.card.writer == "llm:test-model"
    assert "significance" in caplog.text and "42%" in caplog.text
    no_secret(result, caplog)


def test_an_invented_formula_and_quotation_are_replaced(caplog) -> None:
    answer = {
        **GOOD,
        "punch_intro": r"The score is $\mathrm{mIoU} = \frac{|P \cap G|}{|P \cup G|}$ per edit region:",
        "intuition": 'The authors call it "the first fully deterministic editing benchmark ever built". '
        + GOOD["intuition"],
    }
    with caplog.at_level(logging.WARNING), FakeChatServer(completion(answer)) as fake:
        result, extractive = run(fake, FakeSleep())
    # the formula was the whole field: replaced; the quotation was one sentence of three: dropped
    assert [r.split(":")[0] for r in result.rejected] == ["punch_intro"]
    assert "formula" in result.rejected[0]
    assert len(result.repaired) == 1 and result.repaired[0].startswith("intuition: dropped, the quotation")
    assert result.verdicts == {
        "intuition": "repaired",
        "punch_intro": "replaced",
        "significance": "passed",
        "why": "passed",
    }
    assert result.card.punch_intro == extractive.punch_intro
    assert result.card.intuition == GOOD["intuition"]
    assert result.card.significance == GOOD["significance"]
    assert result.card.llm_fields == ("intuition", "significance", "why")


def test_grounded_formula_quotation_and_numbers_pass() -> None:
    source = r"We minimise $L(\theta) = \sum_i \ell_i$ and reach 17.1% (mIoU), a 3x speed-up on 11 models."
    ok = r'Minimising $L(\theta) = \sum_i \ell_i$ gives 17.1% and "a 3x speed-up" across 11 models.'
    assert grounding_problem(ok, source) is None
    assert grounding_problem("reaches 7.1%", source) == "the number 7.1% is not in the source"
    assert grounding_problem("on 1 model", source) == "the number 1 is not in the source"
    assert grounding_problem(r"$L = 0$", source) == "the formula $L = 0$ is not in the source"
    latex_source = r"accuracy rises to 93.5\% on the test set"
    assert grounding_problem("accuracy rises to 93.5%", latex_source) is None


def test_all_fields_rejected_means_the_extractive_writer(caplog) -> None:
    answer = {"intuition": "Gains of 42% everywhere.", "punch_intro": "", "significance": "x" * 2000}
    with caplog.at_level(logging.WARNING), FakeChatServer(completion(answer)) as fake:
        result, extractive = run(fake, FakeSleep())
    assert result.card == extractive and result.card.writer == "extractive"
    assert [r.split(":")[0] for r in result.rejected] == ["intuition", "punch_intro", "significance", "why"]
    assert "missing" in result.rejected[3] and "too long" in result.rejected[2]
    assert result.tokens == (812, 96) and result.error is None


def test_a_timeout_falls_back_with_a_reason(caplog) -> None:
    sleep = FakeSleep()
    slow = completion(GOOD)
    slow.delay = 1.0
    with caplog.at_level(logging.WARNING), FakeChatServer(slow) as fake:
        result, extractive = run(fake, sleep, llm_timeout=0.2, llm_retries=1)
    assert result.card == extractive
    assert result.error == "timed out after 0.2s (2 attempts)"
    assert sleep.calls == [1.0]
    assert len(fake.bodies) == 2
    no_secret(result, caplog)


def test_invalid_json_content_is_retried_then_falls_back(caplog) -> None:
    sleep = FakeSleep()
    chatty = completion("Sure! Here is your card: {intuition: PaintBench is great}", 700, 20)
    with caplog.at_level(logging.WARNING), FakeChatServer(chatty) as fake:
        result, extractive = run(fake, sleep)
    assert result.card == extractive
    assert result.error == "the reply is not a JSON object (3 attempts)"
    assert sleep.calls == [1.0, 2.0] and len(fake.bodies) == 3
    assert result.tokens == (2100, 60)  # tokens spent on the failed attempts are still counted
    no_secret(result, caplog)


def test_invalid_json_then_a_fenced_answer_is_used() -> None:
    sleep = FakeSleep()
    fenced = completion("```json\n" + json.dumps(GOOD) + "\n```", 800, 90)
    with FakeChatServer(completion("{not json", 800, 5), fenced) as fake:
        result, _ = run(fake, sleep)
    assert fake.problems == []
    assert result.error is None and result.card.writer == "llm:test-model"
    assert result.tokens == (1600, 95) and sleep.calls == [1.0]


def test_500_then_success_retries_after_a_back_off() -> None:
    sleep = FakeSleep()
    with FakeChatServer(api_error(500, "upstream crashed"), completion(GOOD)) as fake:
        result, _ = run(fake, sleep)
    assert result.error is None and result.card.writer == "llm:test-model"
    assert sleep.calls == [1.0] and len(fake.bodies) == 2
    assert result.tokens == (812, 96)


def test_429_honours_retry_after_up_to_the_cap() -> None:
    sleep = FakeSleep()
    limited = api_error(429, "Rate limit reached", {"Retry-After": "7"})
    with FakeChatServer(limited, completion(GOOD)) as fake:
        result, _ = run(fake, sleep)
    assert result.card.writer == "llm:test-model" and sleep.calls == [7.0]

    sleep = FakeSleep()
    very = api_error(429, "Rate limit reached", {"Retry-After": "3600"})
    with FakeChatServer(very, completion(GOOD)) as fake:
        result, _ = run(fake, sleep, http_max_wait=30.0)
    assert result.card.writer == "llm:test-model" and sleep.calls == [30.0]


def test_400_on_json_schema_then_json_object_is_accepted() -> None:
    sleep = FakeSleep()

    def local_server(body: dict[str, Any]) -> Reply:  # an older local server without json_schema support
        if body["response_format"]["type"] == "json_schema":
            return api_error(400, "response_format type json_schema is not supported")
        return completion(GOOD, 900, 80)

    with FakeChatServer(local_server) as fake:
        result, _ = run(fake, sleep)
    assert fake.problems == []
    assert [b["response_format"]["type"] for b in fake.bodies] == ["json_schema", "json_object"]
    assert result.error is None and result.card.writer == "llm:test-model"
    assert "json_object" in result.note and "json_schema" in result.note
    assert sleep.calls == [] and result.tokens == (900, 80)


def test_a_refused_format_is_remembered_and_told_once(caplog) -> None:
    def local_server(body: dict[str, Any]) -> Reply:  # constructed: llama-cpp-python's answer to json_schema
        if body["response_format"]["type"] == "json_schema":
            return api_error(500, "Unknown response_format type: json_schema")
        return completion(GOOD, 900, 80)

    s = paper()
    with caplog.at_level(logging.WARNING), FakeChatServer(local_server) as fake:
        client = client_from_settings(settings_for(fake), sleep=FakeSleep())
        assert client is not None
        with client:
            results = [write_card(s, build_card(s), s.candidate.text, client) for _ in range(3)]
    assert [b["response_format"]["type"] for b in fake.bodies] == ["json_schema", *["json_object"] * 3]
    assert all(r.error is None and "refused response_format json_schema" in r.note for r in results)
    assert caplog.text.count("refused response_format") == 1


def test_other_client_errors_fail_at_once_without_the_key(caplog) -> None:
    sleep = FakeSleep()
    echo = api_error(401, f"Incorrect API key provided: {KEY}")
    with caplog.at_level(logging.DEBUG), FakeChatServer(echo) as fake:
        result, extractive = run(fake, sleep)
    assert result.card == extractive and result.error == "HTTP 401 from the LLM endpoint"
    assert sleep.calls == [] and len(fake.bodies) == 1
    no_secret(result, caplog)

    with caplog.at_level(logging.DEBUG), FakeChatServer(api_error(404, f"model not found ({KEY})")) as fake:
        result, _ = run(fake, sleep)
    assert result.error is not None and result.error.startswith("HTTP 404") and "[key]" in result.error
    no_secret(result, caplog)


def test_no_endpoint_configured_gives_the_extractive_card_unchanged() -> None:
    settings = settings_for(None)
    assert client_from_settings(settings) is None
    result, extractive = run(None, FakeSleep())
    assert result.card is extractive and result.card.writer == "extractive"
    assert result.error is not None and "FEEDSVC_LLM_BASE_URL" in result.error
    assert result.tokens == (0, 0) and result.rejected == []


def test_an_unreachable_endpoint_falls_back() -> None:
    with FakeChatServer(completion(GOOD)) as fake:
        url = fake.base_url
    sleep = FakeSleep()
    s = paper()
    extractive = build_card(s)
    client = client_from_settings(settings_for(None, llm_base_url=url, llm_retries=1), sleep=sleep)
    assert client is not None and KEY not in repr(client)
    with client:
        result = write_card(s, extractive, s.candidate.text, client)
    assert result.card == extractive
    assert result.error == "network error (ConnectError) (2 attempts)"


def test_a_claim_with_no_source_sentence_behind_it_is_dropped(caplog) -> None:
    answer = {
        **GOOD,
        "intuition": GOOD["intuition"] + " It also transfers to robotic manipulation and speech synthesis.",
        "significance": "It beats every previous editing system and sets a new state of the art.",
    }
    with caplog.at_level(logging.WARNING), FakeChatServer(completion(answer)) as fake:
        result, extractive = run(fake, FakeSleep())
    assert result.verdicts["intuition"] == "repaired" and result.card.intuition == GOOD["intuition"]
    assert (
        "robotic manipulation" in result.repaired[0] and "no source sentence behind it" in result.repaired[0]
    )
    assert result.verdicts["significance"] == "replaced"
    assert result.card.significance == extractive.significance
    assert result.rejected[0].startswith('significance: the sentence "It beats every previous')
    assert "significance replaced by the extractive text" in caplog.text


def test_the_rankers_numbers_cannot_enter_the_llms_why() -> None:
    s = replace(
        paper(), reasons=("blend of lexical 0.41, semantic 0.73 (weights lexical 0.40, semantic 0.60)",)
    )
    extractive = build_card(s)
    answer = {
        **GOOD,
        "why": "It is a benchmark for image editing in your Visual editing thread (score 0.41).",
    }
    with FakeChatServer(completion(answer)) as fake:
        client = client_from_settings(settings_for(fake), sleep=FakeSleep())
        assert client is not None
        try:
            result = write_card(s, extractive, s.candidate.text, client)
            alone = replace(s, thread="", matched=(), nearest_vote=("Old benchmark", "up"))
            write_card(alone, build_card(alone), s.candidate.text, client)
        finally:
            client.close()
    assert result.rejected == ["why: the number 0.41 is not in the source"]
    assert result.card.why == extractive.why and "0.41" not in extractive.why
    user = fake.bodies[1]["messages"][1]["content"]  # a card with no thread is not told of one
    assert (
        "thread" not in user and "Closest paper the reader voted on: Old benchmark, which they liked" in user
    )
