"""Benchmark: a published digest page from the web archive (uvicorn, one process) against nginx serving the
same bytes as a static file (one worker process): throughput and p99 latency with wrk at 64 connections.

Run: `.venv/bin/python bench/bench_web.py [--seconds 15] [--connections 64]`. Needs Debian's wrk and nginx
(`apt-get install wrk nginx-light`). Builds the demo's store first (a minute or two), then runs
`feedsvc serve` on loopback. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from feedsvc.demo import run_demo

PAGE = "/d/seed-reader/2024-11-28"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """Requests per second, p99 latency in ms, and non-2xx/3xx answers."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(bad.group(1)) if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not installed: apt-get install wrk nginx-light")

    tmp = Path(tempfile.mkdtemp(prefix="feedsvc-bench-web-"))
    run_demo(tmp / "demo", semantic="off")
    port = free_port()
    env = {**os.environ, "FEEDSVC_DATA_DIR": str(tmp / "demo"), "FEEDSVC_LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx_dir = tmp / "nginx"
    (nginx_dir / "root" / "d" / "seed-reader").mkdir(parents=True)
    nginx_port = free_port()
    try:
        body = wait_for(f"http://127.0.0.1:{port}{PAGE}")
        (nginx_dir / "root" / "d" / "seed-reader" / "2024-11-28").write_bytes(body)
        (nginx_dir / "nginx.conf").write_text(
            f"""
worker_processes 1;
daemon off;
user root;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type text/html;
    server {{
        listen 127.0.0.1:{nginx_port};
        root {nginx_dir}/root;
    }}
}}
"""
        )
        nginx = subprocess.Popen(["nginx", "-c", str(nginx_dir / "nginx.conf"), "-p", str(nginx_dir)])
        try:
            assert wait_for(f"http://127.0.0.1:{nginx_port}{PAGE}") == body
            wrk(f"http://127.0.0.1:{port}{PAGE}", 3, args.connections)  # warm-up
            ours = wrk(f"http://127.0.0.1:{port}{PAGE}", args.seconds, args.connections)
            static = wrk(f"http://127.0.0.1:{nginx_port}{PAGE}", args.seconds, args.connections)
        finally:
            nginx.terminate()
            nginx.wait()
    finally:
        server.terminate()
        server.wait()
    print(f"\npage {PAGE}: {len(body):,} bytes; wrk -t2 -c{args.connections} -d{args.seconds}s\n")
    print("| server | requests/s | p99 latency | errors |")
    print("|---|---|---|---|")
    print(f"| feedsvc serve (uvicorn, 1 process) | {ours[0]:,.0f} | {ours[1]:.1f} ms | {ours[2]} |")
    print(f"| nginx static file (1 worker) | {static[0]:,.0f} | {static[1]:.1f} ms | {static[2]} |")
    print(f"\nfeedsvc / nginx throughput: {ours[0] / static[0]:.2f}")


if __name__ == "__main__":
    main()
