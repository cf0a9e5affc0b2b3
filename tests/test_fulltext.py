"""Full text from real LaTeXML HTML and real LaTeX sources, and every bad input the issue lists."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from feedsvc.cards.fulltext import (
    FullTextError,
    expand_macros,
    from_abstract,
    from_html,
    from_source,
    log_failure,
    strip_comments,
)
from feedsvc.cards.grounding import is_grounded

PAPERS = Path(__file__).parent / "fixtures" / "papers"


def html(paper: str) -> bytes:
    return gzip.decompress((PAPERS / f"{paper}.html.gz").read_bytes())


def source(paper: str) -> bytes:
    return (PAPERS / f"{paper}.src.tar.gz").read_bytes()


def tar_of(files: dict[str, bytes], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- real papers ------------------------------------------------------------------------------------


def test_html_equations_numbers_and_sections() -> None:
    ft = from_html(html("1606.09375"))
    assert ft.source == "arXiv HTML"
    assert [e.number for e in ft.equations] == ["1", "2", "3", "4", "5", "6", "7", "8"]
    cheb = ft.equations[3]
    assert cheb.latex == r"g_{\theta}(\Lambda)=\sum_{k=0}^{K-1}\theta_{k}T_{k}(\tilde{\Lambda}),"
    assert cheb.section.startswith("2.1") and cheb.path[0] == "2 Proposed Technique"
    assert "truncated expansion" in cheb.context_before
    assert all(is_grounded(e.latex, ft.text) for e in ft.equations)
    assert r"$\mathcal{O}(K|\mathcal{E}|)$" in ft.text  # inline math kept as $alttext$
    assert ft.problems  # the one ltx_ERROR (\captionof, inside a float) is recorded, not fatal
    # the floats are not prose: no table body, caption or \captionof from them in the text
    for float_text in ("C32-P4-C64-P4-FC512", "Multinomial Naive Bayes", "Table 2:", "captionof"):
        assert float_text not in ft.text, float_text
    assert "Table 2 shows decent performances" in " ".join(ft.text.split())  # the prose that cites it stays


def test_html_equation_group_is_one_aligned_display() -> None:
    ft = from_html(html("2202.00665"))
    e = next(e for e in ft.equations if e.number == "2.11")
    assert e.latex.startswith(r"\begin{aligned}") and "\\\\" in e.latex and "\\displaystyle" not in e.latex
    unnumbered = next(e for e in from_html(html("2407.14503")).equations if "U(\\pi)" in e.latex)
    assert unnumbered.number is None and unnumbered.section.startswith("2.1")


def test_source_tarball_inputs_comments_macros_numbers() -> None:
    ft = from_source(source("2310.03240"), filename="2310.03240.tar.gz")
    assert ft.source == "LaTeX source"
    assert [e.number for e in ft.equations[:9]] == [str(i) for i in range(1, 10)]  # as in the HTML
    assert r"\reliprod" in ft.macros or r"\iprod" in ft.macros  # from main.tex and mymathstyle.sty
    conv = ft.equations[4]
    assert conv.label == "eq:relational_convolution" and r"\label" not in conv.latex
    assert "\\abs" not in expand_macros(conv.latex, ft.macros)
    assert all(is_grounded(e.latex, ft.text) for e in ft.equations)


def test_book_class_numbers_by_chapter_and_subfile_bodies() -> None:
    amor = from_source(source("2202.00665"))
    assert [e.number for e in amor.equations[:3]] == ["1.1", "2.1", "2.2"]
    goodhart = from_source(source("2407.14503"))
    assert any(p and p[0].startswith("Appendix A") for p in (e.path for e in goodhart.equations))


def test_expand_macros_arguments_nesting_and_limits() -> None:
    macros = {
        r"\b": r"{\bm{#1}}",
        r"\norm": r"\left\lVert#1\right\rVert",
        r"\R": r"\mathbb{R}",
        r"\loop": r"\loop x",
    }
    assert (
        expand_macros(r"\norm{\b{L} f} \in \R^n", macros)
        == r"\left\lVert{\bm{L}} f\right\rVert \in \mathbb{R}^n"
    )
    assert expand_macros(r"\bm{x}", macros) == r"\bm{x}"  # \b is not a prefix match
    assert len(expand_macros(r"\loop", macros)) < 100  # recursive macro stops at the depth limit


def test_strip_comments_keeps_escaped_percent() -> None:
    assert strip_comments("50\\% of it % a comment\nnext") == "50\\% of it \nnext"
    assert strip_comments("a\\\\% comment") == "a\\\\"


def test_single_tex_gz_and_plain_tex() -> None:  # constructed
    tex = (
        b"\\documentclass{article}\\newcommand{\\loss}{\\mathcal{L}}\\begin{document}"
        b"\\section{Method}We minimise the loss\\begin{equation}\\loss(\\theta)=\\sum_i \\ell_i\\label{e}"
        b"\\end{equation}" + b"Filler text. " * 30 + b"\\end{document}"
    )
    for data in (gzip.compress(tex), tex):
        ft = from_source(data, filename="x.tex.gz")
        assert ft.equations[0].number == "1" and ft.equations[0].section == "1 Method"
        assert expand_macros(ft.equations[0].latex, ft.macros).startswith(r"\mathcal{L}(\theta)")


@pytest.mark.parametrize(
    "cite",
    [rb"\citealt{abbasi2011}", rb"\autocite[p.~3]{x}", rb"\citenum{x}", rb"\Citet{x}", rb"\citePZt{x}"],
)
def test_every_citation_command_marks_a_display_and_leaves_the_prose(cite: bytes) -> None:  # constructed
    filler = b"Words that keep the display far from anything else in the paper. " * 8
    tex = (
        b"\\documentclass{article}\\begin{document}\\section{Method}"
        + filler
        + b"The objective of "
        + cite
        + b" is \\begin{equation} J = \\sum_t r_t \\end{equation}"
        + filler
        + b"\\nocite{*} We minimise \\begin{equation} L = \\sum_i \\ell_i \\end{equation}"
        + filler
        + b"\\end{document}"
    )
    ft = from_source(tex)
    recalled, own = ft.equations
    assert recalled.cited and not own.cited  # \\nocite lists a reference, it cites nothing in the text
    assert "cite" not in ft.text.replace("\\nocite", "")
    assert "The objective of is" in ft.text


# --- bad input (all constructed in the test) -------------------------------------------------------


def test_html_that_failed_to_convert() -> None:
    page = (
        b"<html><body><div class='ltx_page_main'>"
        b"Conversion to HTML had a Fatal error and exited abruptly.</div>"
    )
    with pytest.raises(FullTextError, match="conversion failed"):
        from_html(page)
    with pytest.raises(FullTextError, match="not LaTeXML"):
        from_html(b"<html><body><p>Just a page</p></body></html>")
    with pytest.raises(FullTextError, match="almost no text"):
        from_html(b"<!--Generated by LaTeXML--><article class='ltx_document'></article>")
    assert log_failure("...\nFatal:too_many_errors:100 Too many errors (> 100)!\nLaTeXML died!") is not None
    assert log_failure("Conversion complete: 1 warning; 1 error") is None


def test_tarball_without_tex() -> None:
    with pytest.raises(FullTextError, match=r"no \.tex"):
        from_source(tar_of({"fig.png": b"\x89PNG....", "README": b"hi"}))


def test_pdf_only_submission() -> None:
    with pytest.raises(FullTextError, match="PDF-only"):
        from_source(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    with pytest.raises(FullTextError, match="PDF-only"):
        from_source(gzip.compress(b"%PDF-1.4 ..."))


def test_broken_latex_falls_back_cleanly() -> None:
    tex = (
        b"\\documentclass{article}\\begin{document}\\section{Method}"
        + b"Text here. " * 30
        + b"\\begin{equation} a = {b \\end{equation} more \\begin{align} x &= y"
    )
    ft = from_source(tex)
    assert any("unterminated" in p for p in ft.problems) and any("unbalanced" in p for p in ft.problems)
    assert ft.equations and ft.equations[0].latex == "a = {b"
    with pytest.raises(FullTextError, match=r"no main \.tex"):
        from_source(tar_of({"a.tex": b"\\section{x} no document here", "b.tex": b"\\input{a}"}))


def test_huge_inputs_are_capped() -> None:
    with pytest.raises(FullTextError, match="cap"):
        from_source(b"%" * 2000, max_bytes=1000)
    with pytest.raises(FullTextError, match="cap"):
        from_html(b"<html>" + b" " * 2000, max_bytes=1000)
    bomb = gzip.compress(b"\\section{x}" + b" " * 5_000_000)  # small on the wire, huge decompressed
    assert len(bomb) < 100_000
    with pytest.raises(FullTextError, match="decompressed size"):
        from_source(bomb, max_bytes=1_000_000)
    with pytest.raises(FullTextError, match="cap"):
        from_source(tar_of({"main.tex": b"\\documentclass{article}" + b" " * 3000}, gz=False), max_bytes=2500)


def test_abstract_fallback_records_why() -> None:
    ft = from_abstract("We show 12% gains.", failed="arXiv HTML: conversion failed; LaTeX source: PDF-only")
    assert ft.source == "abstract" and ft.equations == [] and "PDF-only" in (ft.failed or "")
