"""Where the reading-difficulty anchors come from, and what they give (docs/difficulty.md).

Run: `.venv/bin/python bench/difficulty_calibration.py` (from the repository root). It reads the 200 arXiv
abstracts of `tests/fixtures/corpus/2026-06-02.head200.jsonl` (one announcement day's first 200), prints
the 5th, 50th and 95th percentiles of the abstract measures (the prose and jargon anchors are the 5th and
95th) and how many abstracts fall in each level, then the three papers whose full text the demo bundles,
read from the abstract alone and from the full text.
"""

from __future__ import annotations

import gzip
import json
import statistics
from collections import Counter
from importlib import resources
from pathlib import Path

from feedsvc.cards.difficulty import difficulty
from feedsvc.cards.writer import parse_fulltext
from feedsvc.demo import FULLTEXT_PAPERS
from feedsvc.sources.fulltext_fetch import paper_from_html

CORPUS = Path(__file__).parent.parent / "tests" / "fixtures" / "corpus" / "2026-06-02.head200.jsonl"


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=20)
    return f"p5 {cuts[0]:.3g}, p50 {statistics.median(values):.3g}, p95 {cuts[-1]:.3g}"


def main() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    found = [difficulty(r.get("summary") or r.get("abstract") or "") for r in rows]
    print(f"{len(found)} abstracts of {CORPUS.name}")
    print(f"  Flesch-Kincaid grade: {percentiles([d.grade for d in found])}")
    print(f"  jargon share:         {percentiles([d.jargon for d in found])}")
    print(f"  score:                {percentiles([d.score for d in found])}")
    print(f"  levels: {dict(Counter(d.level for d in found).most_common())}")
    sample = resources.files("feedsvc.sample")
    for arxiv in FULLTEXT_PAPERS:
        raw = gzip.decompress(sample.joinpath(f"arxiv_html_{arxiv}.html.gz").read_bytes())
        paper = paper_from_html(arxiv, raw)
        assert paper is not None
        text = parse_fulltext("html", raw, paper.text, "", 20_000_000)
        print(f"{arxiv} {paper.title[:60]}")
        print(f"  abstract:  {difficulty(paper.text).explain()}")
        print(f"  full text: {difficulty(paper.text, text).explain()}")


if __name__ == "__main__":
    main()
