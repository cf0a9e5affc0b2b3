"""`feedsvc card`, the public card interface, on the recorded papers in tests/fixtures/papers (their
PROVENANCE.md): candidate lines as for `feedsvc rank` plus a `fulltext` path, cards out in input order,
written by the digest's writer, every shown equation grounded in its source."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from test_cli import feedsvc

from feedsvc.cards.fulltext import from_source
from feedsvc.cards.grounding_math import formula_grounded
from feedsvc.cards.public import fulltext_kind, public_cards
from feedsvc.rank.public import read_candidate_file

PAPERS = Path(__file__).parent / "fixtures" / "papers"
LABELS = {p["id"]: p for p in tomllib.loads((PAPERS / "key_equations.toml").read_text())["paper"]}
ABSTRACT = (
    "We study a problem. Our method improves accuracy by 12.5% over the baseline, "
    "with $L = \\sum_i \\ell_i$ as the loss."
)


def squash(s: str) -> str:
    return re.sub(r"\s|[{}]|\\left|\\right|\\displaystyle", "", s)


def accepted(arxiv_id: str, latex: str) -> bool:
    return any(
        all(squash(part) in squash(latex) for part in m.split("&&")) for m in LABELS[arxiv_id]["match"]
    )


def write_candidates(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cards_come_in_input_order_with_the_labelled_key_equation_or_a_reason(tmp_path: Path) -> None:
    rows = [
        {"id": "2211.09817", "title": "", "abstract": "", "fulltext": str(PAPERS / "2211.09817.src.tar.gz")},
        {
            "id": "1606.09375",
            "title": "ChebNet",
            "abstract": "",
            "fulltext": str(PAPERS / "1606.09375.src.tar.gz"),
        },
        {"id": "plain", "title": "", "abstract": ABSTRACT},
        {
            "id": "1606.09375-html",
            "title": "",
            "abstract": "",
            "fulltext": str(PAPERS / "1606.09375.html.gz"),
        },
    ]
    read = read_candidate_file(write_candidates(tmp_path / "c.jsonl", rows), required=("id",))
    cards = public_cards(read.candidates, max_bytes=20_000_000)
    assert [c["id"] for c in cards] == [r["id"] for r in rows]
    none, src, plain, html = cards
    assert LABELS["2211.09817"].get("expect_none") and none["key_equation"] is None and none["declined"]
    assert accepted("1606.09375", src["key_equation"]["latex"]), src["key_equation"]["latex"]
    for card in (src, html):
        eq = card["key_equation"]
        assert eq is not None and card["declined"] is None, card["declined"]
        assert card["punch"][0] == {"text": eq["text"], "is_math": True, "where": eq["where"]}
    ft = from_source((PAPERS / "1606.09375.src.tar.gz").read_bytes())
    assert src["key_equation"]["label"] and f"\\label{{{src['key_equation']['label']}}}" in _tex("1606.09375")
    assert formula_grounded(src["key_equation"]["text"], ft.text, ft.macros)
    assert plain["key_equation"] is None and plain["declined"] == "no full text given"
    assert "12.5%" in " ".join(plain["headlines"]) and plain["intuition"].startswith("We study a problem.")
    assert [c["why"] for c in cards] == [""] * 4  # a card that stands alone matches no thread: no why
    assert set(src) >= {
        "domain",
        "time_cost",
        "intuition",
        "punch_intro",
        "punch",
        "headlines",
        "significance",
        "why",
        "writer",
    }
    for card in cards:  # every prose field `writers` names is in the card
        assert set(card["writers"]) <= set(card), card["id"]


def _tex(arxiv_id: str) -> str:
    import tarfile

    with tarfile.open(PAPERS / f"{arxiv_id}.src.tar.gz") as tar:
        return "".join(
            tar.extractfile(m).read().decode("utf-8", "replace")  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.endswith(".tex")
        )


def test_an_unreadable_fulltext_falls_back_to_the_abstract_and_says_why(tmp_path: Path) -> None:
    rows = [{"id": "x", "title": "", "abstract": ABSTRACT, "fulltext": str(tmp_path / "missing.tar.gz")}]
    read = read_candidate_file(write_candidates(tmp_path / "c.jsonl", rows), required=("id",))
    (card,) = public_cards(read.candidates, max_bytes=1000)
    assert card["key_equation"] is None and "missing.tar.gz: cannot read" in card["declined"]


def test_html_is_told_from_an_eprint_by_name_or_first_bytes() -> None:
    assert fulltext_kind(Path("p.html.gz"), b"\x1f\x8b") == "html"
    assert fulltext_kind(Path("p"), b"  <!DOCTYPE html><html>") == "html"
    assert fulltext_kind(Path("p.tar.gz"), b"\x1f\x8b") == "eprint"


def test_cli_card_prints_the_json_list_and_skips_bad_lines(tmp_path: Path) -> None:
    rows = [
        {"id": "2310.03240", "title": "", "abstract": "", "fulltext": str(PAPERS / "2310.03240.src.tar.gz")}
    ]
    cands = write_candidates(tmp_path / "c.jsonl", rows)
    cands.write_text(cands.read_text() + "not json\n", encoding="utf-8")
    r = feedsvc("card", "--candidates", str(cands), "--json")
    assert r.returncode == 0, r.stderr
    (card,) = json.loads(r.stdout)
    assert card["id"] == "2310.03240" and accepted("2310.03240", card["key_equation"]["latex"])
    assert "line 2" in r.stderr
    r = feedsvc("card", "--candidates", "/dev/zero")
    assert r.returncode == 2 and "/dev/zero: line 1 is longer" in r.stderr


def test_presentation_macros_leave_a_shown_formula_and_structure_is_kept() -> None:
    tex = (
        b"\\documentclass{article}\\newcommand{\\ours}{\\textsc{Ours}\\xspace}\\begin{document}"
        + b"\\section{Method}"
        + b"Our method is simple and it is described in this section in words. " * 4
        + b"\\begin{theorem}For all $x$,"
        + b"\\begin{equation}\\label{eq:main}\\small L(x) \\le \\ours x\\end{equation}"
        + b"\\end{theorem}"
        + b" The bound is the paper's own result, and it holds for every input we consider here. " * 2
        + b"As in \\cite{a}, \\[ J = \\sum_t r_t \\] Eq.~\\eqref{eq:main} and \\ref{eq:main}."
        + b"\\end{document}"
    )
    ft = from_source(tex)
    main, recalled = ft.equations
    assert main.latex == "L(x) \\le \\ours x" and main.env == "theorem" and main.refs == 2 and not main.cited
    assert recalled.cited and recalled.env is None
    from feedsvc.cards.fulltext import expand_macros

    assert "xspace" not in expand_macros(main.latex, ft.macros)
    # a colour (robust-adaptive-control's \\hlr{x} is \\textcolor{Red}{x}) shows its content only
    coloured = from_source(
        b"\\documentclass{article}\\newcommand{\\hlr}[1]{\\textcolor{Red}{#1}}\\begin{document}"
        b"\\[ a \\le \\hlr{b} + {\\color{blue} c} \\]\\end{document}"
    )
    shown = expand_macros(coloured.equations[0].latex, coloured.macros)
    assert "color" not in shown and " ".join(shown.split()) == "a \\le {b} + { c}"
