"""Key-equation selection measured against the labelled set (issue 5, "Measured").

Run: `.venv/bin/python bench/bench_equations.py` (from the repository root). For every paper in
tests/fixtures/papers/key_equations.toml it reads the full text the pipeline would use (arXiv HTML when
there is one, else the LaTeX source), picks the key equation, and prints one row: source, the chosen
equation (number, section, first 80 characters), whether a careful reader accepts it (the labelled set),
whether it passes the grounding check, and whether it is a bare number. `--both` adds the LaTeX-source
rows for the papers that also have HTML. Prints Markdown for docs/benchmarks_equations.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedsvc.cards.equations import _BARE, key_equation  # noqa: E402
from feedsvc.cards.fulltext import FullText, expand_macros, from_html, from_source  # noqa: E402
from feedsvc.cards.grounding import is_grounded  # noqa: E402
from feedsvc.cards.grounding_math import formula_grounded  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "papers"


@dataclass(frozen=True)
class Row:
    paper: str
    source: str
    chosen: str  # "eq. (3), §2 Method: <latex>" or "none"
    accepted: bool
    grounded: (
        bool  # the raw LaTeX occurs in the full text, and the shown (expanded) one after macro normalisation
    )
    bare_number: bool


def _norm(s: str) -> str:
    return re.sub(r"\\(?:left|right|displaystyle)(?![A-Za-z])|[\s{}]", "", s)


def accepted(label: dict, raw: str | None, shown: str | None) -> bool:
    if raw is None:
        return bool(label.get("expect_none"))
    texts = [_norm(raw), _norm(shown or "")]
    for entry in label.get("match", []):
        parts = [_norm(p) for p in entry.split("&&")]
        if any(all(p in t for p in parts) for t in texts):
            return True
    return False


def read(paper: str, kind: str, fixtures: Path) -> FullText | None:
    if kind == "html":
        p = fixtures / f"{paper}.html.gz"
        return from_html(p.read_bytes()) if p.exists() else None
    p = fixtures / f"{paper}.src.tar.gz"
    return from_source(p.read_bytes(), filename=p.name) if p.exists() else None


def measure_one(label: dict, ft: FullText) -> Row:
    q = key_equation(ft)
    if q is None:
        return Row(label["id"], ft.source, "none", accepted(label, None, None), True, False)
    # the equation behind the quote: the one whose expansion is the quote
    eq = next(e for e in ft.equations if expand_macros(e.latex, ft.macros) == q.text)
    grounded = is_grounded(eq.latex, ft.text) and formula_grounded(q.text, ft.text, ft.macros)
    head = q.where.split(", ", 1)[1] if ", " in q.where else q.where
    flat = re.sub(r"\s+", " ", q.text)
    return Row(
        label["id"],
        ft.source,
        f"{head}: `{flat[:80]}`",
        accepted(label, eq.latex, q.text),
        grounded,
        bool(_BARE.match(q.text)),
    )


def measure(fixtures: Path = FIXTURES, both: bool = False) -> list[Row]:
    labels = tomllib.loads((fixtures / "key_equations.toml").read_text(encoding="utf-8"))["paper"]
    rows = []
    for label in labels:
        primary = read(label["id"], "html", fixtures)
        kinds = [primary] if primary is not None else []
        if primary is None or both:
            kinds.append(read(label["id"], "src", fixtures))
        rows.extend(measure_one(label, ft) for ft in kinds if ft is not None)
    return rows


def totals(rows: list[Row]) -> dict[str, float]:
    n = len(rows)
    return {
        "papers": n,
        "hit_rate": sum(r.accepted for r in rows) / n,
        "grounded_rate": sum(r.grounded for r in rows) / n,
        "bare_numbers": sum(r.bare_number for r in rows),
    }


def table(rows: list[Row]) -> str:
    out = ["| paper | source | chosen equation | accepted | grounded |", "|---|---|---|---|---|"]
    for r in rows:
        chosen = r.chosen.replace("|", "\\|")
        out.append(
            f"| {r.paper} | {r.source} | {chosen} | {'yes' if r.accepted else 'NO'} | "
            f"{'yes' if r.grounded else 'NO'} |"
        )
    t = totals(rows)
    out.append("")
    out.append(
        f"Hit rate: {sum(r.accepted for r in rows)}/{t['papers']} = {t['hit_rate']:.0%} (target >= 80%); "
        f"grounded: {t['grounded_rate']:.0%} (target 100%); bare-number equations: {t['bare_numbers']} "
        "(target 0)."
    )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, default=FIXTURES)
    ap.add_argument("--both", action="store_true", help="also measure the LaTeX source of papers with HTML")
    args = ap.parse_args()
    primary = measure(args.fixtures)
    print("## Pipeline order (arXiv HTML, else LaTeX source)\n")
    print(table(primary))
    if args.both:
        src = [r for r in measure(args.fixtures, both=True) if r.source == "LaTeX source"]
        print("\n## LaTeX source for every paper (the fallback path)\n")
        print(table(src))


if __name__ == "__main__":
    main()
