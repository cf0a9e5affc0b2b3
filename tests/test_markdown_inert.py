"""Scraped text is inert in the Markdown digest: a CommonMark parser finds no link or image that the
scraped strings made, and no equation carries a link or image command (hostile strings constructed here)."""

from __future__ import annotations

from markdown_it import MarkdownIt
from test_markdown import card, digest

from feedsvc.cards.extractive import _math_quotes
from feedsvc.cards.fulltext import expand_macros, inert_latex
from feedsvc.models import Discussion, Quote
from feedsvc.render.markdown import md, render_markdown

HOSTILE = (
    "[click me](javascript:alert(1)) ![p](http://127.0.0.1:9/t.png) <http://127.0.0.1:9/a> "
    "\\[x](javascript:alert(2)) \\\\[y](javascript:alert(3)) [r]: javascript:alert(4) [r] "
    "&#91;e&#93;(javascript:alert(5)) <img src=x>"
)


def links_and_images(markdown: str) -> list[tuple[str, str]]:
    """Every (kind, target) a CommonMark viewer would make: links and images, at any depth."""
    found = []
    stack = list(MarkdownIt("commonmark").parse(markdown))
    while stack:
        t = stack.pop()
        if t.type in ("link_open", "image"):
            found.append((t.type, str(t.attrGet("href") or t.attrGet("src"))))
        if t.type == "html_inline" or t.type == "html_block":
            found.append((t.type, t.content))
        stack.extend(t.children or ())
    return sorted(found)


def test_no_link_or_image_comes_from_scraped_text() -> None:
    evil = card(
        title=HOSTILE,
        domain=HOSTILE,
        intuition=HOSTILE,
        punch_intro=HOSTILE,
        punch=(Quote(HOSTILE, "abstract"), Quote(HOSTILE, HOSTILE, True)),
        significance=HOSTILE,
        why=HOSTILE,
        talk_for=HOSTILE,
        discussions=(Discussion("Hacker News", "https://news.ycombinator.com/item?id=1", 3, 4, HOSTILE),),
    )
    text = render_markdown(digest((evil,), talk_check=HOSTILE, shortfall=HOSTILE)).body
    assert links_and_images(text) == [
        ("link_open", "https://arxiv.org/abs/2411.18612"),
        ("link_open", "https://news.ycombinator.com/item?id=1"),
    ]


def test_escaped_prose_reads_the_same() -> None:
    prose = "A [1] and B] with \\alpha, a relation $R[g]$ over $[n]$, & <b>"
    assert md(prose) == "A [1] and B] with \\alpha, a relation $R[g]$ over $[n]$, &amp; &lt;b&gt;"
    html = MarkdownIt("commonmark").renderInline(md(prose))
    assert html == "A [1] and B] with \\alpha, a relation $R[g]$ over $[n]$, &amp; &lt;b&gt;"
    assert md("see [x](javascript:alert(1))") == "see [x] (javascript:alert(1))"  # readable, not a link


def test_equations_carry_no_link_or_image_command() -> None:
    latex = (
        r"\href{javascript:alert(1)}{x} + \url{file:///etc/passwd} + \href {JaVaScRiPt:1}{y}"
        r" + \includegraphics[width=1cm]{http://127.0.0.1:9/t.png} + \href{https://arxiv.org}{z} + \\href"
    )
    out = inert_latex(latex)
    assert out == r"{x} +  + {y} +  + \href{https://arxiv.org}{z} + \\href"
    assert expand_macros(r"\evil", {r"\evil": r"\href{javascript:alert(1)}{x}"}) == "{x}"
    assert expand_macros(r"\x{href}{javascript:1}{x}", {r"\x": r"\#1"}) == "{x}"  # \href built by a macro
    assert not _math_quotes(r"We get $\href{javascript:alert(1)}{a} = b + c$ for all n.")
