"""Bad input to `feedsvc rank` and `feedsvc profile import`: a bad line is skipped and reported with its
line number and cause, the rest is used; a file that is not what it claims fails with one clear line, in
bounded memory. Every bad file here is constructed in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import feedsvc
from test_ranking_features import corpus_lines, prof

from feedsvc.config import example_profiles_path, load_profiles
from feedsvc.demo import replay_settings
from feedsvc.models import ConfigError, SourceError
from feedsvc.pipeline.library import import_library
from feedsvc.rank.public import rank_candidates, read_candidate_file, read_candidates
from feedsvc.sources.library_file import read_library


def with_fields(line: str, **fields) -> str:
    return json.dumps(json.loads(line) | fields)


def test_bad_lines_are_skipped_with_line_and_cause_and_the_rest_is_ranked() -> None:
    lines = corpus_lines()[:30]
    lines[1] = with_fields(lines[1], authors=[1, None, {}])
    lines[2] = with_fields(lines[2], published="9999-12-31")
    lines[3] = "[" * 100_000  # nested past the parser's recursion limit
    lines[4] = with_fields(lines[4], categories=[["cs.LG"]])
    read = read_candidates(lines)
    assert len(read.candidates) == 26
    assert [p.split(":")[0] for p in read.problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "authors" in read.problems[0] and "9999-12-31" in read.problems[1]
    assert "nested" in read.problems[2] and "categories" in read.problems[3]
    result = rank_candidates([prof()], read.candidates, top=5)
    assert len(result["profiles"]["p"]) == 5


def test_a_bad_utf8_line_is_named_and_skipped(tmp_path: Path) -> None:
    f = tmp_path / "cands.jsonl"
    lines = [line.encode() for line in corpus_lines()[:5]]
    lines[2] = lines[2].replace(b"a", b"\xff", 1)
    f.write_bytes(b"\n".join(lines) + b"\n")
    read = read_candidate_file(f)
    assert len(read.candidates) == 4
    column = lines[2].index(b"\xff") + 1
    assert read.problems == [f"line 3: not UTF-8 (byte 0xff at column {column})"]


def test_caps_on_line_length_and_file_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^/dev/zero: line 1 is longer than 1,048,576 bytes"):
        read_candidate_file(Path("/dev/zero"))
    big = tmp_path / "big.jsonl"
    big.write_bytes((corpus_lines()[0] + "\n").encode() * 100)
    with pytest.raises(ConfigError, match=r"big.jsonl: more than 10,000 bytes"):
        read_candidate_file(big, max_bytes=10_000)


def test_cli_rank_reports_each_skip_and_caps_the_report(tmp_path: Path) -> None:
    cands = tmp_path / "cands.jsonl"
    good = corpus_lines()[:20]
    cands.write_text("\n".join(good + ["not json"] * 300) + "\n", encoding="utf-8")
    r = feedsvc("rank", "--profiles", str(example_profiles_path()), "--candidates", str(cands), "--json")
    assert r.returncode == 0, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) <= 11 and err[0].startswith(f"skipped {cands}: line 21: ")
    assert err[-1] == '... and 290 more skipped lines (all of them in the JSON\'s "skipped")'
    assert len(json.loads(r.stdout)["skipped"]) == 300
    r = feedsvc("rank", "--profiles", str(example_profiles_path()), "--candidates", "/dev/zero")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "/dev/zero: line 1 is longer than 1,048,576 bytes" in r.stderr


def test_binary_library_file_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "library.bib"
    junk.write_bytes(bytes(range(256)) * 4096)  # 1 MiB of binary, named as BibTeX
    with pytest.raises(ConfigError, match=r"library.bib: binary data \(a NUL byte at offset 0\)"):
        read_library(junk)
    with pytest.raises(ConfigError, match=r"^/dev/zero: more than 20,000,000 bytes"):
        read_library(Path("/dev/zero"))


def test_library_import_goes_on_when_arxiv_is_down(tmp_path: Path, factory) -> None:
    profiles = load_profiles(example_profiles_path())
    bib = tmp_path / "library.bib"
    bib.write_text(
        "@article{local, title={Attention Is All You Need}, year={2017}}\n"
        "@article{remote, title={Unknown}, eprint={2401.99999}, archivePrefix={arXiv}}\n",
        encoding="utf-8",
    )

    def arxiv_down(ids):
        raise SourceError("arxiv", "HTTP 503 for ids 2401.99999")

    settings = replay_settings("http://127.0.0.1:9", tmp_path)
    got = import_library(settings, factory, profiles, "seed-reader", bib, lookup=arxiv_down)
    assert (got.read, got.fetched, got.added) == (2, 0, 1)
    assert got.problems == ["remote: not imported: arxiv: HTTP 503 for ids 2401.99999"]
