"""Peak memory and time of reading a LaTeX macro bomb the way `feedsvc digest` does (issue 12).

Run: `.venv/bin/python bench/bench_bombs.py` (from the repository root; `--body`, `--uses` to vary).
The e-print is constructed here: `\\newcommand{\\big}{<--body characters>}` used `--uses` times in one
display equation (by default 1 MiB x 4,000: 4 GB if expanded blindly), next to one ordinary equation.
Each case runs in a fresh process and reports wall time and the process's peak RSS (ru_maxrss) over
the interpreter's own baseline, for: `from_source`, then the card's key equation and the formula notes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILLER = "We minimise our training objective, the loss of the model on the data. " * 8


def bomb_source(body: int, uses: int) -> bytes:
    """The constructed e-print: a `body`-character macro used `uses` times in equation (1)."""
    return (
        "\\documentclass{article}\n\\newcommand{\\big}{" + "x" * body + "}\n\\begin{document}\n"
        "\\section{Method}\n" + FILLER + "Our objective is given by\n"
        "\\begin{equation}L(\\theta) = " + "\\big " * uses + "\\end{equation}\n" + FILLER + "The loss is\n"
        "\\begin{equation}\\mathcal{L}(\\theta) = \\sum_i \\ell_i(\\theta)\\end{equation}\n"
        + FILLER
        + "\\end{document}\n"
    ).encode()


def measure(body: int, uses: int) -> dict:
    """In this process: parse the bomb and build what the card and the details page show."""
    from feedsvc.cards.breakdown import formula_notes
    from feedsvc.cards.equations import key_equation
    from feedsvc.cards.fulltext import from_source

    data = bomb_source(body, uses)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    ft = from_source(data, filename="bomb.tex")
    key = key_equation(ft)
    notes = formula_notes(ft)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "source_bytes": len(data),
        "seconds": round(seconds, 2),
        "peak_rss_over_baseline_mib": round((peak - base) / 1024, 1),
        "key_equation": key.text[:40] if key else None,
        "refused": [d.reason for d in notes.dropped if d.kind == "formula"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--body", type=int, default=1 << 20, help="characters in the macro's body")
    ap.add_argument("--uses", type=int, default=4000, help="uses of the macro in one equation")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.body, a.uses)))
        return
    cmd = [sys.executable, __file__, "--child", "--body", str(a.body), "--uses", str(a.uses)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"macro bomb: \\big = {a.body:,} characters, used {a.uses:,} times in one equation")
    for k, v in result.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
