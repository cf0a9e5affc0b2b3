"""Example cards, before and after: the same real papers through two builds of `feedsvc card`.

Run from the repository root:
`.venv/bin/python bench/example_cards.py --before BIN [--after BIN] > /tmp/examples.md`
where each BIN runs `feedsvc` of one checkout (e.g. a script doing `PYTHONPATH=<worktree> python -m feedsvc
"$@"`). The papers: ChebNet (1606.09375) with its recorded e-print and its abstract from the recorded arXiv
HTML (`tests/fixtures/papers`, `../shared/data/arxiv_html`), and the first two papers judged a top pick
for `vision-3d` and for `nlp-eval-interp` on 2026-06-12 in `../shared/data/taste_dev`, abstract only, from
`../shared/data/arxiv_corpus`. Prints one Markdown table per paper: each card field, before and after.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared"
)
DAY = "2026-06-12"
FIELDS = ("intuition", "punch", "key_equation", "significance", "why", "declined")


def chebnet() -> dict:
    page = (SHARED / "data" / "arxiv_html" / "1606.09375.html").read_text("utf-8")
    block = re.search(r'<div class="ltx_abstract">(.*?)</div>', page, re.S)
    abstract = html.unescape(re.sub(r"<[^>]+>", " ", block.group(1) if block else ""))
    abstract = re.sub(r"\s+", " ", abstract).strip().removeprefix("Abstract").strip()
    title = html.unescape(re.search(r"<title>([^<]*)", page).group(1)).strip()
    fulltext = ROOT / "tests" / "fixtures" / "papers" / "1606.09375.src.tar.gz"
    return {"id": "1606.09375", "title": title, "abstract": abstract, "fulltext": str(fulltext)}


def top_picks(profile: str, n: int = 2) -> list[dict]:
    grades = json.loads((SHARED / "data" / "taste_dev" / f"labels-{profile}.json").read_text())[DAY]
    wanted = sorted(k for k, g in grades.items() if g == 2)[:n]
    rows = {}
    for line in (SHARED / "data" / "arxiv_corpus" / "dw-dengwei_daily" / f"{DAY}.jsonl").open():
        d = json.loads(line)
        if d["id"] in wanted:
            rows[d["id"]] = {"id": d["id"], "title": d["title"], "abstract": d["summary"]}
    return [rows[k] for k in wanted if k in rows]


def cards(binary: str, candidates: Path) -> dict[str, dict]:
    out = subprocess.run(
        [binary, "card", "--candidates", str(candidates), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {c["id"]: c for c in json.loads(out)}


def shown(card: dict, field: str) -> str:
    value = card.get(field)
    if field == "punch":
        value = " · ".join(q.get("text", "") for q in value or [])
    elif field == "key_equation":
        value = f"({value.get('number') or '-'}) {value.get('latex', '')}" if value else ""
    return re.sub(r"\s+", " ", str(value or "")).replace("|", "\\|") or "—"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=str(ROOT / ".venv" / "bin" / "feedsvc"))
    args = ap.parse_args()
    rows = [chebnet(), *top_picks("vision-3d"), *top_picks("nlp-eval-interp")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidates.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        before, after = cards(args.before, path), cards(args.after, path)
    for r in rows:
        print(f"\n**{r['title']}** ({r['id']})\n\n| field | before | after |\n|---|---|---|")
        for f in FIELDS:
            print(f"| {f} | {shown(before.get(r['id'], {}), f)} | {shown(after.get(r['id'], {}), f)} |")


if __name__ == "__main__":
    main()
