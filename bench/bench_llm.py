"""The LLM writer against the real local model: speed, and what the gate does with its output.

Run: `.venv/bin/python bench/bench_llm.py [--cards 12] [--threads 2]` (from the repository root, after
`make llm`; FEEDSVC_TEST_LLM_PYTHON names another interpreter that has llama_cpp). It starts llama.cpp's
server with the packaged SmolLM2-135M-Instruct on loopback (tests/llm_server.py), writes the LLM card of
the first `--cards` real arXiv records of tests/fixtures/corpus (from ../shared/data/arxiv_corpus), and
prints Markdown for docs/benchmarks.md:
- cards per minute (wall time of the whole card, the request and the gate);
- per field, the share of model output passed, repaired (some sentences dropped) and replaced;
- why sentences were dropped (number, formula, quotation, no source sentence behind it);
- the claim-support share of the model's sentences, and as a control the share of the same sentences
  checked against another paper's abstract (what a threshold lets through that it should not);
- numbers and formulas shown that are not in the source (must be 0);
- three before/after cards (extractive vs LLM).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from corpus import candidate, records  # noqa: E402
from llm_server import ALIAS, LlamaServer, find_tier  # noqa: E402

from feedsvc.cards.extractive import build_card, sentences  # noqa: E402
from feedsvc.cards.grounding import normalise, numbers_in  # noqa: E402
from feedsvc.cards.llm import FIELDS, LlmResult, client_from_settings, write_card  # noqa: E402
from feedsvc.cards.support import MIN_SUPPORT, MIN_WORDS, SourceIndex  # noqa: E402
from feedsvc.config import Settings  # noqa: E402
from feedsvc.models import Card, Scored  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def shown_problems(card: Card, source: str) -> list[str]:
    """Numbers of LLM-written fields that do not occur in the source (plain substring test)."""
    src = normalise(source).replace("\\%", "%").replace(" ", "")
    return [n for f in card.llm_fields for n in numbers_in(getattr(card, f)) if n.replace(" ", "") not in src]


def drop_reason(problem: str) -> str:
    for words, reason in (
        ("echoes the prompt", "echoes the prompt"),
        ("a fragment", "a fragment"),
        ("no source sentence", "no source sentence behind it"),
        ("the number", "number"),
        ("the formula", "formula"),
        ("the quotation", "quotation"),
        ("missing", "missing"),
        ("too long", "too long"),
    ):
        if words in problem:
            return reason
    return "other"


def run(n: int, threads: int) -> None:
    tier = find_tier()
    if tier.reason:
        sys.exit(tier.reason)
    rows = records()[:n]
    scored = [Scored(candidate=candidate(r), score=0.0, thread="") for r in rows]
    results: list[tuple[Scored, Card, LlmResult, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        LlamaServer(tier, Path(tmp) / "server.log", threads=threads) as srv,
    ):
        settings = Settings(
            _env_file=None, llm_base_url=srv.base_url, llm_model=ALIAS, llm_timeout=300.0, llm_retries=0
        )  # type: ignore[call-arg]
        client = client_from_settings(settings)
        assert client is not None
        start = time.perf_counter()
        with client:
            for s in scored:
                t0 = time.perf_counter()
                extractive = build_card(s)
                result = write_card(s, extractive, s.candidate.text, client)
                results.append((s, extractive, result, time.perf_counter() - t0))
        wall = time.perf_counter() - start
    report(results, wall, threads)


def support_shares(results: list[tuple[Scored, Card, LlmResult, float]]) -> tuple[list[float], list[float]]:
    """The support of every sentence the model wrote (before the gate) in intuition, punch_intro and
    significance, against its own paper's title and abstract and, as a control, the next paper's."""
    own, other = [], []
    for i, (s, _ext, result, _t) in enumerate(results):
        nxt = results[(i + 1) % len(results)][0].candidate
        mine = SourceIndex([s.candidate.title, s.candidate.text])
        theirs = SourceIndex([nxt.title, nxt.text])
        for name in ("intuition", "punch_intro", "significance"):
            value = result.answer.get(name)
            for sent in sentences(value) if isinstance(value, str) else []:
                backing = mine.support(sent)
                if backing.words >= MIN_WORDS:
                    own.append(backing.share)
                    other.append(theirs.support(sent).share)
    return own, other


def report(results: list[tuple[Scored, Card, LlmResult, float]], wall: float, threads: int) -> None:
    n = len(results)
    errors = [r.error for _s, _e, r, _t in results if r.error]
    print(
        f"### LLM writer on SmolLM2-135M-Instruct (llama.cpp, {threads} threads), {n} real arXiv abstracts\n"
    )
    times = [t for *_x, t in results]
    prompt = sum(r.tokens[0] for _s, _e, r, _t in results)
    completion = sum(r.tokens[1] for _s, _e, r, _t in results)
    print(
        f"- {n / wall * 60:.1f} cards/minute ({wall:.0f} s for {n} cards; "
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s a card); "
        f"tokens {prompt} in, {completion} out; failed requests: {len(errors)}"
        + (f" ({errors[0]})" if errors else "")
    )
    print("\n| field | passed | repaired | replaced |\n|---|---|---|---|")
    for name in FIELDS:
        c = Counter(r.verdicts.get(name, "replaced") for _s, _e, r, _t in results if not r.error)
        total = sum(c.values()) or 1
        print(
            f"| {name} | "
            + " | ".join(f"{c[v] / total:.0%} ({c[v]})" for v in ("passed", "repaired", "replaced"))
            + " |"
        )
    reasons = Counter(
        drop_reason(p.split(": ", 1)[1]) for _s, _e, r, _t in results for p in [*r.rejected, *r.repaired]
    )
    print(
        "\nWhy model text was dropped (sentences or whole fields): "
        + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
    )
    own, other = support_shares(results)
    if own:
        print(
            "\nClaim support of the model's sentences (intuition, punch_intro, significance, before the "
            f"gate; {len(own)} sentences): the share that reaches each threshold against the paper's own "
            "abstract and, as a control, against the next paper's abstract (wrongly let through):"
        )
        print(
            "\n| threshold | "
            + " | ".join(f"{t:.1f}" for t in THRESHOLDS)
            + " |\n|---|"
            + "---|" * len(THRESHOLDS)
        )
        print(
            "| own abstract | "
            + " | ".join(f"{sum(x >= t for x in own) / len(own):.0%}" for t in THRESHOLDS)
            + " |"
        )
        print(
            "| another paper's abstract | "
            + " | ".join(f"{sum(x >= t for x in other) / len(other):.0%}" for t in THRESHOLDS)
            + " |"
        )
    bad = [
        p
        for s, _e, r, _t in results
        for p in shown_problems(r.card, f"{s.candidate.title}\n{s.candidate.text}")
    ]
    print(f"\nNumbers shown that are not in the source: {len(bad)} (threshold in use: {MIN_SUPPORT})\n")
    examples = [x for x in results if x[2].card.llm_fields][:3]
    for s, ext, result, _t in examples:
        print(f"#### {s.candidate.title}\n")
        print("| field | extractive | LLM (after the gate) |\n|---|---|---|")
        for name in FIELDS:
            after = (
                getattr(result.card, name)
                if name in result.card.llm_fields
                else f"(replaced: {result.verdicts.get(name)})"
            )
            print(f"| {name} | {getattr(ext, name)} | {after} |".replace("\n", " "))
        dropped = [*result.rejected, *result.repaired]
        if dropped:
            print("\nDropped: " + "; ".join(d[:160] for d in dropped))
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    run(args.cards, args.threads)


if __name__ == "__main__":
    main()
