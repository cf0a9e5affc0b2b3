"""The command line as a user runs it: a real process, real exit codes, messages on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def feedsvc(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    full_env.setdefault("FEEDSVC_SEMANTIC", "off")  # the semantic scorer has its own tests; keep these quick
    return subprocess.run(
        [sys.executable, "-m", "feedsvc", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def test_demo_runs_offline_and_writes_the_digest(tmp_path: Path) -> None:
    r = feedsvc("demo", "--data-dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "demo" / "digests" / "seed-reader" / "2024-11-28.md"
    assert f"digest written to {path}" in " ".join(r.stdout.split())
    text = path.read_text(encoding="utf-8")
    assert text.startswith('---\ntitle: "Daily Feed - 2024-11-28"')
    assert text.count("\n## [") == 3
    assert "Daily Feed - 2024-11-28" in r.stdout  # the preview
    # the second demo profile's picks have full text: their cards quote the papers' own key equations
    graphs = (tmp_path / "demo" / "digests" / "graph-learning" / "2024-11-28.md").read_text(encoding="utf-8")
    assert graphs.count("The paper's key equation") == 3 and graphs.count("\n$$\n") == 2 * 3  # open + close
    assert "*Quoted verbatim from the arXiv HTML, eq. (2), §3.1 Problem formulation.*" in graphs
    # the demo's readers have study lists: the graph reader's three bundled papers, each with its breakdown
    assert "study lists (library: 10 read (3 with a breakdown" in " ".join(r.stdout.split())
    env = {
        "FEEDSVC_DATA_DIR": str(tmp_path / "demo"),
        "FEEDSVC_PROFILES_PATH": str(Path(__file__).parent.parent / "feedsvc/sample/profiles.demo.toml"),
    }
    listed = feedsvc("profile", "library", "--profile", "graph-learning", "--markdown", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("# Study list: graph-learning\n\n3 papers, newest first")
    assert listed.stdout.count("[Read the breakdown →](http://127.0.0.1:8000/item/arxiv:") == 3
    assert "`imported` `canonical` `spectral`" in listed.stdout  # the library file's own tags
    seeds = feedsvc("profile", "library", "--profile", "seed-reader", "--tag", "seed", env=env, cwd=tmp_path)
    assert seeds.returncode == 0 and seeds.stdout.rstrip().endswith("3 of 7 papers"), seeds.stderr
    assert "Soft Actor-Critic" in seeds.stdout and "Playing Atari" not in seeds.stdout


def test_a_bad_profile_file_stops_with_file_profile_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "profiles.toml"
    bad.write_text(
        '[[profile]]\nname = "me"\npapers = "three"\n[[profile.thread]]\nname = "x"\n', encoding="utf-8"
    )
    r = feedsvc("fetch", env={"FEEDSVC_PROFILES_PATH": str(bad), "FEEDSVC_DATA_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert f"{bad}: profile 'me': field 'papers'" in r.stderr
    assert "Traceback" not in r.stderr


def test_digest_before_upgrade_says_what_to_do_then_works(tmp_path: Path) -> None:
    env = {"FEEDSVC_DATA_DIR": str(tmp_path)}
    r = feedsvc("digest", "--dry-run", env=env, cwd=tmp_path)
    assert r.returncode == 1 and "run `feedsvc db upgrade` first" in r.stderr
    assert feedsvc("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    r = feedsvc("digest", "--dry-run", "--date", "2024-11-28", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 paper picks" in r.stdout and "never fetched" in r.stdout
    assert not (tmp_path / "digests").exists()
    r = feedsvc("digest", "--date", "28/11/2024", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "is not a date" in r.stderr
