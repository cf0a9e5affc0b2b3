"""Benchmark, in one run: the exported digest page through the front server (deploy/nginx.conf adapted to
loopback), the same page from `feedsvc serve`, and nginx serving the same bytes as a plain static file.

Run: `.venv/bin/python bench/bench_front.py [--seconds 15] [--connections 64] [--rounds 3]`. Needs Debian's
wrk and nginx (`apt-get install wrk nginx`). Builds the demo's store (a minute), exports it with
`feedsvc export-site`, starts `feedsvc serve` and the two nginx servers on loopback, checks each answers
the page (the front server from the exported file, not from the app), then the three take turns under
`wrk -t2 -c64 --latency`, `--rounds` times. Both nginx run one worker process, so that the comparison is
of configurations, not of worker counts. Besides wrk's figures it reports each server's CPU time per
request (from /proc), which a busy machine disturbs far less than throughput. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_search_atom import measure, run_wrk
from bench_web import free_port, wait_for

from feedsvc.demo import run_demo

PAGE = "/d/seed-reader/2024-11-28"
DEPLOY_CONF = Path(__file__).parent.parent / "deploy" / "nginx.conf"


def front_conf(root: Path, run_dir: Path, port: int, app_port: int) -> str:
    """deploy/nginx.conf with loopback addresses, this run's paths, one worker, in the foreground."""
    conf = DEPLOY_CONF.read_text(encoding="utf-8")
    for old, new in [
        ("worker_processes auto;", "worker_processes 1;\ndaemon off;\nuser root;"),
        ("pid /run/nginx.pid;", f"pid {run_dir}/nginx.pid;"),
        ("error_log stderr warn;", f"error_log {run_dir}/error.log warn;"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("root /srv/site;", f"root {root};"),
        ("server app:8000;", f"server 127.0.0.1:{app_port};"),
    ]:
        assert old in conf, f"deploy/nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    return conf


def static_conf(root: Path, run_dir: Path, port: int) -> str:
    """nginx's baseline: one worker, the file at the page's path, nothing else (as bench_web.py)."""
    return f"""
worker_processes 1;
daemon off;
user root;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type text/html;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start_nginx(run_dir: Path, conf: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "nginx.conf").write_text(conf)
    return subprocess.Popen(["nginx", "-c", str(run_dir / "nginx.conf"), "-p", str(run_dir)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="the three servers take turns this many times")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install wrk nginx")

    tmp = Path(tempfile.mkdtemp(prefix="feedsvc-bench-front-"))
    run_demo(tmp / "demo", semantic="off")
    app_port, front_port, static_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FEEDSVC_DATA_DIR": str(tmp / "demo"),
        "FEEDSVC_BASE_URL": f"http://127.0.0.1:{front_port}",
    }
    feedsvc = [sys.executable, "-m", "feedsvc"]
    subprocess.run(
        [*feedsvc, "export-site", str(tmp / "site")], env=env, check=True, stdout=subprocess.DEVNULL
    )
    exported = (tmp / "site" / f"{PAGE.lstrip('/')}.html").read_bytes()
    static_root = tmp / "static"
    (static_root / PAGE.lstrip("/")).parent.mkdir(parents=True)
    (static_root / PAGE.lstrip("/")).write_bytes(exported)

    procs = [
        subprocess.Popen([*feedsvc, "serve", "--port", str(app_port)], env=env, stderr=subprocess.DEVNULL),
        start_nginx(tmp / "front", front_conf(tmp / "site", tmp / "front", front_port, app_port)),
        start_nginx(tmp / "nginx", static_conf(static_root, tmp / "nginx", static_port)),
    ]
    names = [
        "front server (deploy/nginx.conf, 1 worker), exported file",
        "feedsvc serve (uvicorn, 1 process)",
        "nginx static file (1 worker)",
    ]
    ports = [front_port, app_port, static_port]
    urls = {name: f"http://127.0.0.1:{port}{PAGE}" for name, port in zip(names, ports, strict=True)}
    pids = {name: proc.pid for name, proc in zip([names[1], names[0], names[2]], procs, strict=True)}
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        bodies = {name: wait_for(url) for name, url in urls.items()}
        assert bodies[names[0]] == exported, "the front server did not answer from the exported file"
        assert b"/search" in wait_for(f"http://127.0.0.1:{front_port}/search?q=graph"), "search not proxied"
        for _ in range(args.rounds):
            for name, url in urls.items():
                run_wrk(url, 2, args.connections)  # warm-up
                runs.setdefault(name, []).append(measure(pids[name], url, args.seconds, args.connections))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    print(f"\npage {PAGE}; wrk -t2 -c{args.connections} -d{args.seconds}s; {args.rounds} rounds in one run\n")
    print("| server | bytes | requests/s | p99 latency | server CPU per request | errors |")
    print("|---|---|---|---|---|---|")
    for name, got in runs.items():
        rps = " / ".join(f"{g['rps']:,.0f}" for g in got)
        p99 = " / ".join(f"{g['p99']:.1f}" for g in got)
        cpu = " / ".join(f"{g['cpu_ms'] * 1000:.0f}" for g in got)
        bad = sum(g["bad"] for g in got)
        print(f"| {name} | {len(bodies[name]):,} | {rps} | {p99} ms | {cpu} µs | {bad} |")
    front, app, static = (sum(g["rps"] for g in runs[name]) for name in names)
    print(f"\nfront / nginx static: {front / static:.2f}; feedsvc serve / nginx static: {app / static:.2f}")
    load = re.sub(r"\s+", " ", Path("/proc/loadavg").read_text().strip())
    print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
