"""Peak memory and time of what a hostile upstream can send (issue 12): a LaTeX macro bomb read the way
`feedsvc digest` does, and gzip bombs served to `feedsvc fetch`, `feedsvc fetch --ids` and `feedsvc digest`.

Run: `.venv/bin/python bench/bench_bombs.py` (from the repository root) for the macro bomb (`--body`,
`--uses` to vary), `--http` for the gzip bombs (`--gib` to vary). Everything is constructed here.

Macro bomb: `\\newcommand{\\big}{<--body characters>}` used `--uses` times in one display equation (by
default 1 MiB x 4,000: 4 GB if expanded blindly), next to one ordinary equation; a fresh process reports
wall time and its peak RSS (ru_maxrss) over the interpreter's baseline for `from_source`, the card's key
equation and the formula notes.

Gzip bombs: a loopback replay server (the demo's snapshot) answers with `--gib` GiB of zeros gzipped
(about 1 MB per GiB on the wire, `Content-Encoding: gzip`) at the arXiv RSS URL for `feedsvc fetch`, at
the arXiv API, HTML and e-print URLs for `feedsvc fetch --ids`, and at the HTML and e-print URLs for
`feedsvc digest`; each command runs first on the ordinary snapshot, for comparison. Each runs as a child
process; its wall time and peak RSS come from `os.wait4`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
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


def gzip_bomb(gib: float) -> bytes:
    """`gib` GiB of zeros, gzipped (about 1 MB per GiB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 24)
    parts = [z.compress(block) for _ in range(int(gib * 64))]
    return b"".join(parts) + z.flush()


def run_measured(cmd: list[str], env: dict[str, str]) -> dict:
    """Run `cmd`; its exit status, wall time, peak RSS and the last line it printed to stderr."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errfile)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        errfile.seek(0)
        lines = [x for x in errfile.read().decode(errors="replace").splitlines() if x.strip()]
    return {
        "command": " ".join(cmd[2:]),
        "exit": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "said": lines[-1][:160] if lines else "",
    }


def http_bombs(gib: float) -> list[dict]:
    """`feedsvc fetch`, `fetch --ids` and `digest`, each first on the ordinary snapshot, then against
    gzip bombs on the same loopback server."""
    from feedsvc.demo import RECORDED_CHANNEL, demo_profiles_path, snapshot_routes
    from feedsvc.replay import ReplayServer, Reply

    bomb = Reply(200, gzip_bomb(gib), {"Content-Encoding": "gzip", "Content-Type": "text/html"})
    feedsvc = [sys.executable, "-m", "feedsvc"]
    digest = [*feedsvc, "digest", "--date", "2024-11-28", "--dry-run"]
    results = []
    with tempfile.TemporaryDirectory() as data, ReplayServer(snapshot_routes()) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FEEDSVC_PROFILES_PATH": str(demo_profiles_path())}
        env.update({f"FEEDSVC_{k.upper()}": v for k, v in _replay_env(server.url, data).items()})
        env["FEEDSVC_YOUTUBE_CHANNELS"] = json.dumps([RECORDED_CHANNEL])
        subprocess.run([*feedsvc, "db", "upgrade"], env=env, check=True, capture_output=True)
        ordinary = dict(server.routes)
        results.append({"case": "ordinary", **run_measured([*feedsvc, "fetch"], env)})
        results.append({"case": "ordinary", **run_measured([*feedsvc, "fetch", "--ids", "1606.09375"], env)})
        results.append({"case": "ordinary", **run_measured(digest, env)})
        server.routes = {p: r for p, r in ordinary.items() if not p.startswith("/html/")}
        server.routes.update({"/rss/*": bomb, "/api/query": bomb, "/html/*": bomb, "/e-print/*": bomb})
        results.append({"case": "bomb", **run_measured([*feedsvc, "fetch"], env)})
        results.append({"case": "bomb", **run_measured([*feedsvc, "fetch", "--ids", "2401.00001"], env)})
        before = len(server.requests)
        results.append({"case": "bomb", **run_measured(digest, env)})
        fulltext = [r for r in server.requests[before:] if r.path.startswith(("/html/", "/e-print/"))]
        results[-1]["bombs_served"] = len(fulltext)
    return results


def _replay_env(url: str, data: str) -> dict[str, str]:
    return {
        "data_dir": data,
        "arxiv_rss_url": f"{url}/rss",
        "arxiv_api_url": f"{url}/api/query",
        "arxiv_html_url": f"{url}/html",
        "arxiv_eprint_url": f"{url}/e-print",
        "arxiv_enrich": "false",
        "hn_api_url": f"{url}/api/v1",
        "lobsters_url": url,
        "youtube_api_url": url,
        "youtube_api_key": "replay-no-key",
        "http_retries": "1",
        "http_max_wait": "0",
        "semantic": "off",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--body", type=int, default=1 << 20, help="characters in the macro's body")
    ap.add_argument("--uses", type=int, default=4000, help="uses of the macro in one equation")
    ap.add_argument("--http", action="store_true", help="the gzip bombs instead of the macro bomb")
    ap.add_argument("--gib", type=float, default=1.0, help="GiB of zeros in each gzip bomb")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.body, a.uses)))
        return
    if a.http:
        print(f"gzip bombs: {a.gib:g} GiB of zeros each ({len(gzip_bomb(a.gib)):,} bytes on the wire)")
        for result in http_bombs(a.gib):
            print("  " + json.dumps(result))
        return
    cmd = [sys.executable, __file__, "--child", "--body", str(a.body), "--uses", str(a.uses)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"macro bomb: \\big = {a.body:,} characters, used {a.uses:,} times in one equation")
    for k, v in result.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
