"""Benchmark, in one run: `/search` and the Atom feed under load, from this tree and (with `--before
COMMIT`) from an earlier commit's tree, on the same demo store (SQLite), each served by `feedsvc serve`.

Run: `.venv/bin/python bench/bench_search_atom.py [--before COMMIT] [--seconds 10] [--connections 64]
[--rounds 2]`. Needs Debian's wrk. The servers take turns, `--rounds` times, under `wrk -t2 --latency`:
- `/search?q=graph+neural`, one query repeated (what a cache serves);
- `/search` with a new query on every request (pairs of adjacent title words from the store, 4,000 of
  them, so no request repeats within the run): the path without a cache hit, i.e. SQLite FTS5 plus the
  page's rendering;
- `/d/seed-reader/atom.xml`.
Besides wrk's figures it reports the server's CPU time per request (from /proc), which a busy machine
disturbs far less than throughput. Prints a Markdown table for docs/benchmarks.md.
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

from bench_web import free_port, wait_for

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


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None
) -> tuple[float, float, int, int]:
    """Requests per second, p99 latency in ms, non-2xx/3xx answers, and requests completed."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(
        command + (["-s", str(script)] if script else []), capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99, int(bad.group(1)) if bad else 0, done


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children (nginx's workers), in seconds."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = _stat(int(proc.name))
        except OSError:
            continue
        if int(proc.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(
    pid: int, url: str, seconds: int, connections: int, script: Path | None = None
) -> dict[str, float]:
    """wrk's figures and the server's CPU milliseconds per request (robust when the machine is busy)."""
    before = cpu_seconds(pid)
    rps, p99, bad, done = run_wrk(url, seconds, connections, script)
    return {"rps": rps, "p99": p99, "bad": bad, "cpu_ms": (cpu_seconds(pid) - before) * 1000 / max(done, 1)}


def start(tree: Path, data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "FEEDSVC_DATA_DIR": str(data), "PYTHONPATH": str(tree)}
    server = subprocess.Popen(  # cwd: `python -m` puts it first on the path, before PYTHONPATH
        [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)],
        env=env,
        cwd=tree,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    assert b"graph" in wait_for(base + ONE_QUERY).lower() and b"<feed" in wait_for(base + ATOM)
    return server, base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="a commit to measure beside this tree, e.g. HEAD~3")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="the trees take turns this many times")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="feedsvc-bench-search-"))
    run_demo(tmp / "demo", semantic="off")
    trees = {"this tree": REPO}
    if args.before:
        trees[f"before ({args.before})"] = checkout(args.before, tmp / "before")
    script = lua_script(distinct_queries(tmp / "demo" / "feedsvc.db"), tmp / "queries.lua")
    servers = {name: start(tree, tmp / "demo") for name, tree in trees.items()}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for _ in range(args.rounds):
            for name, (server, base) in servers.items():
                run_wrk(base + ONE_QUERY, 2, args.connections)  # warm-up
                for what, url, lua in [
                    ("search, one query", base + ONE_QUERY, None),
                    ("search, every query new", base, script),
                    ("Atom feed", base + ATOM, None),
                ]:
                    got = measure(server.pid, url, args.seconds, args.connections, lua)
                    runs.setdefault((name, what), []).append(got)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait()
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.seconds}s --latency; demo store on SQLite;"
        f" {args.rounds} rounds\n"
    )
    print("| tree | request | requests/s | p99 latency | server CPU per request | errors |")
    print("|---|---|---|---|---|---|")
    for (name, what), got in runs.items():
        rps = " / ".join(f"{g['rps']:,.0f}" for g in got)
        p99 = " / ".join(f"{g['p99']:.0f}" for g in got)
        cpu = " / ".join(f"{g['cpu_ms']:.2f}" for g in got)
        print(f"| {name} | {what} | {rps} | {p99} ms | {cpu} ms | {sum(g['bad'] for g in got)} |")
    load = re.sub(r"\s+", " ", Path("/proc/loadavg").read_text().strip())
    print(f"\nload average at the end: {load}")


if __name__ == "__main__":
    main()
