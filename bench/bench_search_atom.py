"""Benchmark, in one run: `/search` and the Atom feed under load, from this tree and (with `--before
COMMIT`) from an earlier commit's tree, on the same demo store (SQLite), served by `feedsvc serve`.

Run: `.venv/bin/python bench/bench_search_atom.py [--before COMMIT] [--seconds 10] [--connections 64]`.
Needs Debian's wrk. Each server is loaded in turn with `wrk -t2 --latency`:
- `/search?q=graph+neural`, one query repeated (what a cache serves);
- `/search` with a new query on every request (pairs of adjacent title words from the store, 4,000 of
  them, so no request repeats within the run): the path without a cache hit, i.e. SQLite FTS5 plus the
  page's rendering;
- `/d/seed-reader/atom.xml`.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_web import free_port, wait_for, wrk

from feedsvc.demo import run_demo

REPO = Path(__file__).parent.parent
ONE_QUERY = "/search?q=graph+neural"
ATOM = "/d/seed-reader/atom.xml"


def checkout(commit: str, into: Path) -> Path:
    """The package tree of `commit` (git archive), with the templates and migrations linked in as the
    worktree has them."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for name in ("templates", "migrations"):
        link = into / "feedsvc" / name
        if not link.exists():
            link.symlink_to(f"../{name}")
    return into


def distinct_queries(db: Path, n: int = 4000) -> list[str]:
    """Pairs of adjacent words from the store's titles: real queries, each with hits."""
    with sqlite3.connect(db) as conn:
        titles = [t for (t,) in conn.execute("SELECT title FROM items ORDER BY id")]
    pairs: list[str] = []
    for title in titles:
        words = [w.lower() for w in re.findall(r"[A-Za-z]{4,}", title)]
        pairs += [f"{a}+{b}" for a, b in itertools.pairwise(words)]
    return list(dict.fromkeys(pairs))[:n]


def lua_script(queries: list[str], path: Path) -> Path:
    """A wrk script sending each query once: the threads take alternate entries of the list."""
    listed = ",\n".join(f'"{q}"' for q in queries)
    path.write_text(
        f"""local queries = {{
{listed}
}}
local counter = 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) i = id end
function request()
  i = i + 2
  return wrk.format("GET", "/search?q=" .. queries[(i % #queries) + 1])
end
"""
    )
    return path


def wrk_script(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, int]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], int(bad.group(1)) if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a commit to measure beside this tree, e.g. HEAD~3")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="feedsvc-bench-search-"))
    run_demo(tmp / "demo", semantic="off")
    trees = {"this tree": REPO}
    if args.before:
        trees[f"before ({args.before})"] = checkout(args.before, tmp / "before")
    script = lua_script(distinct_queries(tmp / "demo" / "feedsvc.db"), tmp / "queries.lua")
    results: dict[tuple[str, str], tuple[float, float, int]] = {}
    for name, tree in trees.items():
        port = free_port()
        env = {**os.environ, "FEEDSVC_DATA_DIR": str(tmp / "demo"), "PYTHONPATH": str(tree)}
        server = subprocess.Popen(
            [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            assert b"graph" in wait_for(base + ONE_QUERY).lower() and b"<feed" in wait_for(base + ATOM)
            wrk(base + ONE_QUERY, 2, args.connections)  # warm-up
            results[(name, "search, one query")] = wrk(base + ONE_QUERY, args.seconds, args.connections)
            results[(name, "search, every query new")] = wrk_script(
                base, script, args.seconds, args.connections
            )
            results[(name, "Atom feed")] = wrk(base + ATOM, args.seconds, args.connections)
        finally:
            server.terminate()
            server.wait()
    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s --latency; demo store on SQLite; one run\n")
    print("| tree | request | requests/s | p99 latency | errors |")
    print("|---|---|---|---|---|")
    for (name, what), (rps, p99, bad) in results.items():
        print(f"| {name} | {what} | {rps:,.0f} | {p99:.1f} ms | {bad} |")
    load = re.sub(r"\s+", " ", Path("/proc/loadavg").read_text().strip())
    print(f"\nload average at the end: {load}")


if __name__ == "__main__":
    main()
