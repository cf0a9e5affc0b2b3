"""A LaTeX macro bomb is refused within a budget: the equation is refused with a reason, the rest of the
paper still parses and its other equations are still shown (all sources constructed in the test)."""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest

from feedsvc.cards.breakdown import formula_notes
from feedsvc.cards.equations import key_equation
from feedsvc.cards.fulltext import MacroBudgetError, expand_macros, from_source
from feedsvc.cards.grounding_math import formula_grounded

FILLER = "We minimise our training objective, the loss of the model on the data. " * 8


def bomb_paper(body_chars: int, uses: int) -> bytes:
    """A paper whose macro \\big has a `body_chars`-character body and is used `uses` times in one equation,
    next to an ordinary equation."""
    return (
        "\\documentclass{article}\n\\newcommand{\\big}{" + "x" * body_chars + "}\n\\begin{document}\n"
        "\\section{Method}\n" + FILLER + "Our objective is given by\n"
        "\\begin{equation}L(\\theta) = " + "\\big " * uses + "\\end{equation}\n" + FILLER + "The loss is\n"
        "\\begin{equation}\\mathcal{L}(\\theta) = \\sum_i \\ell_i(\\theta)\\end{equation}\n"
        + FILLER
        + "\\end{document}\n"
    ).encode()


def peak_bytes(f, *args):
    tracemalloc.start()
    try:
        with contextlib.suppress(MacroBudgetError):
            f(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_macro_bomb_is_refused_with_the_bound_and_little_memory() -> None:
    ft = from_source(bomb_paper(64 * 1024, 1000), filename="bomb.tex")  # 64 MB if expanded blindly
    bomb = ft.equations[0]
    with pytest.raises(MacroBudgetError, match=r"more than 50,000 characters"):
        expand_macros(bomb.latex, ft.macros)
    assert peak_bytes(expand_macros, bomb.latex, ft.macros) < 2_000_000


def test_too_many_macro_calls_are_refused() -> None:
    with pytest.raises(MacroBudgetError, match=r"more than 5,000 macro calls"):
        expand_macros("\\z " * 10_000, {"\\z": ""})
    assert expand_macros("\\z " * 100, {"\\z": "y"}).split() == ["y"] * 100


def test_exponential_nesting_is_refused_by_size() -> None:
    macros = {f"\\m{chr(97 + k)}": f"\\m{chr(98 + k)}\\m{chr(98 + k)}" for k in range(11)} | {"\\ml": "x"}
    with pytest.raises(MacroBudgetError):  # 2^11 x's fit; 12 levels cannot be expanded in 12 passes
        expand_macros("\\ma" * 40, macros)


def test_the_bomb_equation_is_refused_and_the_rest_of_the_paper_still_shows() -> None:
    ft = from_source(bomb_paper(64 * 1024, 1000), filename="bomb.tex")
    assert len(ft.equations) == 2 and len(ft.text) < 100_000
    q = key_equation(ft)
    assert q is not None and q.text.startswith("\\mathcal{L}(\\theta)")
    notes = formula_notes(ft)
    assert [n.latex[:21] for n in notes] == ["\\mathcal{L}(\\theta) ="]
    refused = [d for d in notes.dropped if d.kind == "formula"]
    assert len(refused) == 1 and refused[0].reason.startswith("macro expansion refused")
    assert not formula_grounded("L(\\theta) = x", ft.text, ft.macros)
