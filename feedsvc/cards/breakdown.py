"""A paper's own page: the breakdown (seed 002's sections) and the formula notes (seed 003 done right).

`breakdown(c, ft)` fills overview, key contributions, methodology (with the key equation), results,
practical implications, limitations, authors and paper information. `formula_notes(ft)` walks the
paper's display equations: each with its number, the section it sits in, the LaTeX with the paper's
macros expanded, the sentence that introduces it and what to check in the PDF, built from facts only.

Everything is extractive: every sentence is a sentence of the abstract or the full text, quoted verbatim
and checked with `grounding.is_grounded` (numbers with `numbers_grounded`); every formula is checked
with `grounding_math.formula_grounded`. What fails a check, and every display that is a bare number, a
table row or pure notation, is left out and listed in `dropped` with the reason. The fixed labels for
empty sections are written by the renderer. Imports only `feedsvc.models` and `feedsvc.cards`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from feedsvc.cards.equations import (
    MIN_SCORE,
    candidate_reason,
    equation_where,
    headline_results,
    score_equations,
)
from feedsvc.cards.extractive import sentences
from feedsvc.cards.fulltext import Equation, FullText, MacroBudgetError, expand_macros, inert_latex
from feedsvc.cards.grounding import is_grounded, normalise, numbers_grounded
from feedsvc.cards.grounding_math import formula_grounded
from feedsvc.identity import ItemKey
from feedsvc.models import Candidate

NO_LIMITATIONS = "The paper states no limitations in the text we read."
SOURCE_USED = {"arXiv HTML": "arXiv HTML", "LaTeX source": "LaTeX source", "abstract": "abstract only"}


@dataclass(frozen=True)
class Sentence:
    text: str  # verbatim
    where: str  # "abstract" or "§3.1 Method"


@dataclass(frozen=True)
class Dropped:
    kind: str  # "sentence" | "formula" | "display" | "introducing sentence" | "explanation" | "symbol"
    text: str  # the first 80 characters
    reason: str


@dataclass(frozen=True)
class FormulaNote:
    latex: str  # the paper's macros expanded, for display
    number: str | None
    section: str
    path: tuple[str, ...]
    where: str  # "arXiv HTML, eq. (3), §3.1 Method"
    intro: str  # the sentence that introduces it, verbatim; "" when none passed the check
    after: str  # the "where ..." clause right after it, verbatim, or ""
    symbols: tuple[str, ...]  # inline math the text uses just before it that also occurs in it
    verify: str  # what to check in the PDF, from facts only
    is_key: bool
    index: int
    expanded: tuple[str, ...] = ()  # the paper's macros that were expanded in `latex`


class FormulaNotes(list[FormulaNote]):
    """The notes in document order, plus `dropped` (what was left out and why) and `omitted` (displays
    that passed every check but were over the limit)."""

    def __init__(self, notes: Iterable[FormulaNote] = (), dropped: Iterable[Dropped] = (), omitted: int = 0):
        super().__init__(notes)
        self.dropped = list(dropped)
        self.omitted = omitted


@dataclass(frozen=True)
class Breakdown:
    title: str
    url: str
    arxiv_id: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    published: str
    comment: str
    source_used: str  # "arXiv HTML" | "LaTeX source" | "abstract only"
    source_note: str  # why the full text was not used, or conversion problems; "" when none
    overview: tuple[Sentence, ...]
    contributions: tuple[Sentence, ...]
    method_section: str
    method: tuple[Sentence, ...]
    key_equation: FormulaNote | None
    results: tuple[Sentence, ...]
    implications: tuple[Sentence, ...]
    limitations: tuple[Sentence, ...]
    limitations_note: str  # NO_LIMITATIONS when `limitations` is empty
    dropped: tuple[Dropped, ...] = ()


# ---------------------------------------------------------------- sentences -----------------------------

_CONTRIBUTION = re.compile(
    r"\bwe\s+(?:also\s+|further\s+|then\s+|first\s+|additionally\s+|\w+ly\s+)?"
    r"(?:propose|introduce|show|prove|present|develop)(?:s|d|ed)?\b",
    re.I,
)
_IMPLICATION = re.compile(
    r"\b(?:enabl(?:e|es|ing)|suggest(?:s|ing)?|impl(?:y|ies)|can be used|practical(?:ly)?)\b", re.I
)
_LIMITATION = re.compile(
    r"\b(?:limitations?|limited|however|future (?:works?|research|directions?)|drawbacks?|shortcomings?|"
    r"in the future|we (?:will|plan to|intend to))\b",
    re.I,
)
_INTRO_SECTION = re.compile(r"\bintroduction\b", re.I)
_METHOD_SECTION = re.compile(  # named for the method: its first word, or a singular method word last
    r"^(?:[A-Z]?[\d.]*\s+)?(?:the\s+|our\s+)?(?:method|methods|methodology|approach|proposed|framework|"
    r"formulation|technique|algorithm)\b|\b(?:method|approach|framework)$",
    re.I,
)
_NOT_METHOD = re.compile(r"\b(?:related|prior work|background|preliminar|experiment|evaluation|result)", re.I)
_LIMIT_SECTION = re.compile(r"\b(?:limitations?|discussion|conclusions?|future work)\b", re.I)
_NAMED_LIMITS = re.compile(r"\blimitations?\b", re.I)
_IMPLICATION_SECTION = re.compile(r"\b(?:discussion|conclusions?|summary|impact|introduction)\b", re.I)
_DISPLAY = re.compile(r"\$\$.*?\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$([^$]{1,200}?)(?<!\\)\$")
_ENDS = re.compile(r"[.!?][)\"'”’]*$")
_CAPTION = re.compile(r"^(?:(?:Figure|Fig\.|Table|Algorithm)\s*\d|\([a-z]\)\s)", re.I)
_AFTER_CUE = re.compile(r"^[,.;]?\s*(?:where|with|in which|here)\b", re.I)


def _appendix(heading: str) -> bool:
    return bool(re.search(r"\bappendix\b", heading, re.I) or re.match(r"[A-Z]\.?\d*(?:\.\d+)*\s", heading))


def _readable(s: str) -> bool:
    """A complete prose sentence a reader can take as it is: not a caption, a fragment cut by a display,
    or a line with LaTeX left over outside math."""
    words = len(s.split())
    if not 6 <= words <= 90 or "$$" in s or s.count("$") > 8 or s.count("$") % 2:
        return False
    if not _ENDS.search(s) or not re.match(r"[A-Z0-9(\"“]", s) or _CAPTION.match(s):
        return False
    prose = _INLINE.sub(" ", s)
    return not re.search(r"\\[A-Za-z]|[{}]", prose)


def _section_sentences(body: str) -> list[str]:
    """The readable sentences of a section body, verbatim; a display equation breaks the prose (both
    readings keep the source's line breaks inside paragraphs, so lines are not sentences)."""
    chunks = (c for part in _DISPLAY.split(body) for c in part.split("•"))
    return [s for chunk in chunks for s in sentences(chunk) if _readable(s)]


class _Picker:
    """Collects sentences once each, checks each against the text it claims to come from."""

    def __init__(self, abstract: str, ft: FullText) -> None:
        self.abstract = abstract
        self.ft = ft
        self.seen: set[str] = set()
        self.dropped: list[Dropped] = []

    def source_of(self, where: str) -> str:
        return self.abstract if where == "abstract" else self.ft.text

    def take(self, text: str, where: str) -> Sentence | None:
        key = normalise(text)
        if not key or key in self.seen:
            return None
        src = self.source_of(where)
        if not is_grounded(text, src):
            self.dropped.append(Dropped("sentence", text[:80], f"not verbatim in the {where} text"))
            return None
        if not numbers_grounded(text, src):
            self.dropped.append(Dropped("sentence", text[:80], f"a number not as written in the {where}"))
            return None
        self.seen.add(key)
        return Sentence(text, where)

    def pick(self, pool: Iterable[tuple[str, str]], limit: int) -> tuple[Sentence, ...]:
        out: list[Sentence] = []
        for text, where in pool:
            s = self.take(text, where)
            if s:
                out.append(s)
                if len(out) >= limit:
                    break
        return tuple(out)


def _sections(
    ft: FullText, rx: re.Pattern[str], exclude: re.Pattern[str] | None = None
) -> list[tuple[str, str]]:
    return [
        (h, b)
        for h, b in ft.sections
        if h and h != "Abstract" and rx.search(h) and not _appendix(h) and not (exclude and exclude.search(h))
    ]


def _pool(ft: FullText, secs: list[tuple[str, str]], rx: re.Pattern[str] | None) -> list[tuple[str, str]]:
    return [(s, f"§{h}") for h, b in secs for s in _section_sentences(b) if rx is None or rx.search(s)]


# ---------------------------------------------------------------- formulas ------------------------------


def _locate(ft: FullText, eq: Equation) -> tuple[int, int] | None:
    """Where the display `$$latex$$` sits in `ft.text` (the n-th of identical displays)."""
    nth = sum(1 for e in ft.equations[: eq.index] if e.latex == eq.latex)
    parts = [re.escape(p) for p in f"$${eq.latex}$$".split()]
    rx = re.compile(r"\s+".join(parts))
    for k, m in enumerate(rx.finditer(ft.text)):
        if k == nth:
            return m.start(), m.end()
    return None


def _intro_and_after(ft: FullText, eq: Equation) -> tuple[str, str, str]:
    """The sentence introducing the display, the "where ..." clause after it, and the prose before it
    (for symbols), all verbatim from `ft.text`."""
    span = _locate(ft, eq)
    if span is None:
        return "", "", eq.context_before
    before = ft.text[max(0, span[0] - 1500) : span[0]]
    before = before[before.rfind("$$") + 2 :] if "$$" in before else before
    for heading in (*eq.path, eq.section):  # a display early in a section: the heading is not prose
        if heading and f"{heading}\n" in before:
            before = before[before.rfind(f"{heading}\n") + len(heading) + 1 :]
    after = ft.text[span[1] : span[1] + 600]
    after = after[: after.find("$$")] if "$$" in after else after
    found = sentences(before)
    intro = found[-1] if found and len(found[-1].split()) >= 3 else ""
    if intro and not re.match(r"[A-Z0-9(\"“$\\]", intro):
        intro = ""  # the window starts mid-sentence
    clause = ""
    if _AFTER_CUE.match(after.lstrip()):
        first = sentences(after)
        clause = re.split(r"(?<=[a-z)][.!?])(?=[A-Z])", first[0])[0].lstrip(",.; ") if first else ""
        if len(clause) > 400:
            clause = ""
    return intro, clause, before


def _symbols(before: str, latex: str, macros: dict[str, str]) -> list[str]:
    """Inline math the text uses just before the display that also occurs in it, latest first."""
    compact = re.sub(r"\s", "", latex)
    out: list[str] = []
    for m in reversed(list(_INLINE.finditer(before[-800:]))):
        sym = m.group(1).strip()
        c = re.sub(r"\s", "", sym)
        if not c or len(c) > 30 or re.search(r"=|\\in\b|<|>|\\le|\\ge", sym) or c in out:
            continue
        if re.fullmatch(r"[A-Za-z]", c):
            hit = re.search(rf"(?<![A-Za-z\\]){c}(?![A-Za-z])", compact)
        else:
            hit = c in compact
        if hit:
            try:
                out.append(inert_latex(c) if not macros else expand_macros(sym, macros))
            except MacroBudgetError:
                continue
        if len(out) >= 6:
            break
    return out


def _used_macros(latex: str, macros: dict[str, str]) -> list[str]:
    return sorted(set(re.findall(r"\\[A-Za-z]+", latex)) & set(macros))


def _verify(eq: Equation, symbols: list[str], expanded: list[str], intro: str) -> str:
    label = f"eq. ({eq.number})" if eq.number else f"the unnumbered display {eq.index + 1}"
    where = f" in §{eq.section}" if eq.section else ""
    parts = [f"Check that {label}{where} matches this LaTeX."]
    if expanded:
        parts.append(
            f"It is shown with the paper's macros expanded ({', '.join(expanded[:6])}); the PDF shows the "
            "typeset form."
        )
    rows = eq.latex.count("\\\\") + 1 if "\\begin{" in eq.latex else 1
    if rows > 1:
        parts.append(f"It has {rows} rows" + (f" ({eq.number})." if eq.number and "–" in eq.number else "."))
    if symbols:
        parts.append("Symbols the text uses just before it: " + ", ".join(f"${s}$" for s in symbols) + ".")
    if not intro:
        parts.append("No introducing sentence could be quoted: read the paragraph before it.")
    return " ".join(parts)


def _note(ft: FullText, eq: Equation, key: bool, dropped: list[Dropped]) -> FormulaNote | None:
    try:
        latex = expand_macros(eq.latex, ft.macros)
    except MacroBudgetError as e:
        dropped.append(Dropped("formula", eq.latex[:80], str(e)))
        return None
    if not is_grounded(eq.latex, ft.text) or not formula_grounded(latex, ft.text, ft.macros):
        dropped.append(Dropped("formula", latex[:80], "not found in the full text after macro expansion"))
        return None
    intro, after, before = _intro_and_after(ft, eq)
    if intro and not is_grounded(intro, ft.text):
        dropped.append(Dropped("introducing sentence", intro[:80], "not verbatim in the full text"))
        intro = ""
    if after and not is_grounded(after, ft.text):
        dropped.append(Dropped("explanation", after[:80], "not verbatim in the full text"))
        after = ""
    symbols = []
    for s in _symbols(before, eq.latex, ft.macros):
        if formula_grounded(s, ft.text, ft.macros):
            symbols.append(s)
        else:
            dropped.append(Dropped("symbol", s[:80], "not found in the full text after macro expansion"))
    expanded = _used_macros(eq.latex, ft.macros) if latex != eq.latex else []
    return FormulaNote(
        latex=latex,
        number=eq.number,
        section=eq.section,
        path=eq.path,
        where=equation_where(eq),
        intro=intro,
        after=after,
        symbols=tuple(symbols),
        verify=_verify(eq, symbols, expanded, intro),
        is_key=key,
        index=eq.index,
        expanded=tuple(expanded),
    )


def _skip_reason(eq: Equation) -> str | None:
    """Why a display is never shown (a bare number, a table, pure notation): `equations.candidate_reason`."""
    return candidate_reason(eq)


def _key_index(ft: FullText) -> int | None:
    """The index of the key equation: the best-scored candidate at or above the threshold that is
    grounded (what `equations.key_equation` shows)."""
    for score, eq, _reasons in score_equations(ft):
        if score < MIN_SCORE:
            return None
        if is_grounded(eq.latex, ft.text) and _skip_reason(eq) is None:
            return eq.index
    return None


def formula_notes(ft: FullText, limit: int = 12) -> FormulaNotes:
    """Notes on the paper's best `limit` display equations (the key one always among them), in document
    order. Bare numbers, table rows and pure notation are never shown; they and anything that fails the
    grounding check are listed in `.dropped` with the reason."""
    dropped = [Dropped("display", eq.latex[:80], why) for eq in ft.equations if (why := _skip_reason(eq))]
    key = _key_index(ft)
    ranked = [eq for _s, eq, _r in score_equations(ft) if _skip_reason(eq) is None]
    ranked.sort(key=lambda e: e.index != key)  # stable: the key equation first, then by score
    notes: list[FormulaNote] = []
    omitted = 0
    for eq in ranked:
        if len(notes) >= limit:
            omitted += 1
            continue
        note = _note(ft, eq, eq.index == key, dropped)
        if note:
            notes.append(note)
    notes.sort(key=lambda n: n.index)
    return FormulaNotes(notes, dropped, omitted)


# ---------------------------------------------------------------- the breakdown -------------------------


def _method(ft: FullText, picker: _Picker, key: Equation | None) -> tuple[str, tuple[Sentence, ...]]:
    """The method section and its first sentences: a section named like a method, else the one holding
    the key equation (outermost heading first)."""
    bodies = {h: b for h, b in reversed(ft.sections) if h and h != "Abstract"}
    order = [h for h, _b in _sections(ft, _METHOD_SECTION, _NOT_METHOD)]
    if key is not None:
        order += [h for h in (*key.path, key.section) if h in bodies and not _appendix(h)]
    for heading in order:
        got = picker.pick(((s, f"§{heading}") for s in _section_sentences(bodies[heading])), 3)
        if got:
            return heading, got
    return "", ()


def _arxiv_id(c: Candidate) -> str:
    bare = str(c.meta.get("id") or ItemKey(c.key).arxiv_id or c.key)
    return f"{bare}v{c.version}" if c.version and not re.search(r"v\d+$", bare) else bare


def breakdown(c: Candidate, ft: FullText) -> Breakdown:
    """The page's sections for one paper, every sentence quoted from its abstract or full text."""
    abstract = c.text or next((b for h, b in ft.sections if h == "Abstract"), "")
    abstract = re.sub(r"^\s*Abstract\b[\s.:]*", "", abstract)
    picker = _Picker(abstract, ft)
    abstract_sentences = [s for s in sentences(abstract) if len(s.split()) >= 4]
    overview = picker.pick(((s, "abstract") for s in abstract_sentences), 3)

    intro_secs = _sections(ft, _INTRO_SECTION)
    contributions = picker.pick(
        [(s, "abstract") for s in abstract_sentences if _CONTRIBUTION.search(s)]
        + _pool(ft, intro_secs, _CONTRIBUTION),
        4,
    )

    notes_dropped: list[Dropped] = []
    key_i = _key_index(ft)
    key_eq = ft.equations[key_i] if key_i is not None else None
    key_note = _note(ft, key_eq, True, notes_dropped) if key_eq is not None else None
    method_section, method = _method(ft, picker, key_eq)

    results = picker.pick(((q.text, q.where) for q in headline_results(ft, abstract, limit=4)), 4)

    implications = picker.pick(
        [(s, "abstract") for s in abstract_sentences if _IMPLICATION.search(s)]
        + _pool(ft, _sections(ft, _IMPLICATION_SECTION), _IMPLICATION),
        3,
    )

    limit_pool: list[tuple[str, str]] = []  # sections named for limitations first: all their sentences
    limit_secs = sorted(_sections(ft, _LIMIT_SECTION), key=lambda hb: not _NAMED_LIMITS.search(hb[0]))
    for h, b in limit_secs:
        limit_pool += _pool(ft, [(h, b)], None if _NAMED_LIMITS.search(h) else _LIMITATION)
    limitations = picker.pick(limit_pool, 4)

    problems = "; ".join(ft.problems)
    source_note = ft.failed or (f"conversion problems: {problems}" if problems else "")
    published = c.published.date().isoformat() if c.published else ""
    if published and c.meta.get("published_estimated"):
        published += " (estimated from the arXiv id)"
    return Breakdown(
        title=c.title,
        url=c.url,
        arxiv_id=_arxiv_id(c) if ItemKey(c.key).is_arxiv or c.meta.get("id") else "",
        authors=tuple(c.authors),
        categories=tuple(c.categories),
        published=published,
        comment=str(c.meta.get("comment") or ""),
        source_used=SOURCE_USED.get(ft.source, ft.source),
        source_note=source_note,
        overview=overview,
        contributions=contributions,
        method_section=method_section,
        method=method,
        key_equation=key_note,
        results=results,
        implications=implications,
        limitations=limitations,
        limitations_note="" if limitations else NO_LIMITATIONS,
        dropped=tuple(picker.dropped + notes_dropped),
    )


__all__ = [
    "NO_LIMITATIONS",
    "Breakdown",
    "Dropped",
    "FormulaNote",
    "FormulaNotes",
    "Sentence",
    "breakdown",
    "formula_notes",
]


# ---------------------------------------------------------------- stored --------------------------------


def page_data(b: Breakdown, notes: FormulaNotes) -> dict[str, Any]:
    """The breakdown and formula notes as plain JSON data, as the digest stores them for the item page."""
    return {
        "breakdown": asdict(b),
        "notes": [asdict(n) for n in notes],
        "dropped": [asdict(d) for d in notes.dropped],
        "omitted": notes.omitted,
    }


def page_from_data(data: dict[str, Any]) -> tuple[Breakdown, FormulaNotes]:
    """`page_data` read back: equal to the breakdown and notes it was made from."""
    b = dict(data["breakdown"])
    for name in ("overview", "contributions", "method", "results", "implications", "limitations"):
        b[name] = tuple(Sentence(**s) for s in b[name])
    b["authors"], b["categories"] = tuple(b["authors"]), tuple(b["categories"])
    b["key_equation"] = _note_from_data(b["key_equation"]) if b["key_equation"] else None
    b["dropped"] = tuple(Dropped(**d) for d in b["dropped"])
    notes = FormulaNotes(
        (_note_from_data(n) for n in data["notes"]), (Dropped(**d) for d in data["dropped"]), data["omitted"]
    )
    return Breakdown(**b), notes


def _note_from_data(data: dict[str, Any]) -> FormulaNote:
    tuples = {name: tuple(data[name]) for name in ("path", "symbols", "expanded")}
    return FormulaNote(**{**data, **tuples})
