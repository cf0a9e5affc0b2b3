"""The extractive card writer: every field is taken from the item itself, so nothing can be invented.

Domain from categories and thread; time cost from the page count in the arXiv comment, else from the
text's length; intuition from the abstract's opening; the concrete punch from the abstract's own math and
its sentences with numbers, quoted verbatim and checked by `grounding.is_grounded`; significance from
the sentence that states the consequence. Imports only `feedsvc.models` and `feedsvc.cards`.
"""

from __future__ import annotations

import logging
import re

from feedsvc.cards.fulltext import inert_latex
from feedsvc.cards.grounding import is_grounded, normalise
from feedsvc.models import Card, Quote, Scored

log = logging.getLogger(__name__)

CATEGORY_NAMES = {
    "cs.LG": "Machine Learning",
    "stat.ML": "Machine Learning (Statistics)",
    "cs.AI": "Artificial Intelligence",
    "cs.CL": "Computation and Language",
    "cs.CV": "Computer Vision",
    "cs.RO": "Robotics",
    "cs.NE": "Neural and Evolutionary Computing",
    "cs.IT": "Information Theory",
    "cs.GT": "Game Theory",
    "cs.DS": "Data Structures and Algorithms",
    "cs.CE": "Computational Engineering and Finance",
    "cs.CR": "Cryptography and Security",
    "cs.DC": "Distributed Computing",
    "cs.MA": "Multiagent Systems",
    "cs.SY": "Systems and Control",
    "eess.SY": "Systems and Control",
    "eess.SP": "Signal Processing",
    "math.OC": "Optimization and Control",
    "math.PR": "Probability",
    "math.ST": "Statistics Theory",
    "stat.ME": "Statistical Methodology",
    "stat.TH": "Statistics Theory",
    "stat.CO": "Statistical Computation",
    "q-fin.TR": "Market Microstructure / Trading",
    "q-fin.MF": "Mathematical Finance",
    "q-fin.CP": "Computational Finance",
    "q-fin.PM": "Portfolio Management",
    "q-fin.RM": "Risk Management",
    "q-fin.ST": "Statistical Finance",
    "econ.TH": "Economic Theory",
    "econ.EM": "Econometrics",
}

# A sentence boundary: end punctuation, space, then something that starts a sentence. Avoids "e.g. x",
# "et al. (2020)" and decimals.
_SENTENCE = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bet al\.)(?<!\bvs\.)(?<=[.!?])\s+(?=[A-Z\d$\\(\[])")
_INLINE_MATH = re.compile(r"(?<!\\)\$([^$]{3,200})(?<!\\)\$")
_MATH_STATEMENT = re.compile(
    r"=|\\le|\\ge|<|>|\\approx|\\sim|\\in\b|\\propto|\\mathcal\{O\}|O\(|\\Omega\(|\\Theta\("
)
# "r = 0.81", "x=3", "\alpha = 0.5": a value, not a formula; such math is never shown as an equation
_BARE_VALUE = re.compile(r"^\s*\\?[A-Za-z]\w*\s*=\s*[-+\d.,\s%\\]*\$?$|^[-+\d.,\s%=\\]*$")
# a quantitative claim: a percentage, a multiplier, a decimal, or a number next to a unit of comparison
_QUANT = re.compile(
    r"\d+(?:\.\d+)?\s?(?:%|\\%|x\b|×|-fold|fold\b|times\b)"
    r"|\b\d+\.\d+\b"
    r"|\b(?:by|to|of|from|up to|over|than)\s+\d[\d,]*(?:\.\d+)?\b"
    r"|\b\d+(?:\.\d+)?\s?(?:points?|pp|dB|BLEU|ms|seconds?|hours?|GPUs?|tokens?|parameters?|[kKMB]\b)"
)
_YEARLIKE = re.compile(r"^(19|20)\d\d$")
_SIGNIFICANCE_CUES = re.compile(
    r"\b(?:this (?:suggests|shows|opens|enables|implies|provides|paves)|"
    r"we (?:show|prove|demonstrate|establish)|"
    r"implications?|enables?|paves the way|opens|sheds light|outperform|improv|state-of-the-art|"
    r"significantly|first)\b",
    re.I,
)
_PAGES = re.compile(r"(\d{1,3})\s*(?:pages?|pp\.?)\b", re.I)


def sentences(text: str) -> list[str]:
    flat = normalise(text)
    return [s.strip() for s in _SENTENCE.split(flat) if s.strip()]


def domain_label(categories: tuple[str, ...], thread: str) -> str:
    names: list[str] = []
    for cat in categories:
        name = CATEGORY_NAMES.get(cat)
        if name and name not in names:
            names.append(name)
        if len(names) == 2:
            break
    if not names and categories:
        names.append(categories[0])
    return " / ".join([thread, *names]) if thread else " / ".join(names)


def time_cost(comment: str, text: str, kind: str, duration_s: int | None = None) -> str:
    if kind == "video" and duration_s:
        h, rem = divmod(duration_s, 3600)
        return f"{h}h {rem // 60}m" if h else f"{rem // 60}m"
    m = _PAGES.search(comment or "")
    if m and int(m.group(1)) > 0:
        pages = int(m.group(1))
        skim = max(10, 5 * round((8 + pages * 0.6) / 5))
        full = max(20, 5 * round(pages * 3.5 / 5))
        return f"~{skim}min abstract+method skim, ~{full}min full read ({pages} pages)"
    words = len(text.split())
    if words > 1500:  # a full text: about 60 technical words a minute for a careful read
        return f"~{max(10, words // 600)}min skim, ~{max(20, 5 * round(words / 60 / 5))}min full read"
    return f"~{max(2, round(words / 150))}min abstract read; length not stated in the listing"


def _math_quotes(text: str) -> list[Quote]:
    out: list[Quote] = []
    for m in _INLINE_MATH.finditer(text):
        latex = m.group(1).strip()
        if inert_latex(latex) != latex:  # a link or image command: not quoted (it must stay verbatim)
            continue
        if _MATH_STATEMENT.search(latex) and re.search(r"[A-Za-z\\]", latex) and not _BARE_VALUE.match(latex):
            out.append(Quote(text=latex, where="abstract", is_math=True))
    return out


def headline_sentences(text: str, limit: int = 2) -> list[str]:
    """The abstract's sentences carrying a quantitative claim, verbatim, strongest first."""
    found = []
    for s in sentences(text):
        hits = [h for h in _QUANT.findall(s) if not _YEARLIKE.match(h.strip())]
        if hits:
            found.append((len(hits), s))
    found.sort(key=lambda x: -x[0])
    return [s for _, s in found[:limit]]


def _first_words(parts: list[str], max_words: int) -> str:
    out: list[str] = []
    count = 0
    for s in parts:
        n = len(s.split())
        if out and count + n > max_words:
            break
        out.append(s)
        count += n
    return " ".join(out)


def build_card(s: Scored) -> Card:
    """The card for one ranked candidate, from the candidate's own text."""
    c = s.candidate
    parts = sentences(c.text)
    intuition = _first_words(parts[:3], 70) or c.title

    punch: list[Quote] = _math_quotes(c.text)[:2]
    punch += [Quote(text=h, where="abstract") for h in headline_sentences(c.text)]
    grounded = []
    for q in punch:
        if is_grounded(q.text, c.text):
            grounded.append(q)
        else:  # cannot happen for extracted text; kept so that a regression is loud, not shown
            log.warning("dropped ungrounded quote on %s: %r", c.key, q.text[:80])
    if grounded:
        intro = "In the paper's own words:" if not any(q.is_math for q in grounded) else "From the abstract:"
    else:
        intro = "The abstract states no equation or number; the claim in its words:"
        claim = next((p for p in parts[1:] if _SIGNIFICANCE_CUES.search(p)), parts[-1] if parts else "")
        if claim:
            grounded.append(Quote(text=claim, where="abstract"))

    used = {q.text for q in grounded} | set(parts[:3])
    significance = next((p for p in parts[3:] if _SIGNIFICANCE_CUES.search(p) and p not in used), "")
    if not significance:
        significance = next((p for p in reversed(parts) if p not in used), "")
    why = _why(s)
    return Card(
        key=c.key,
        kind=c.kind,
        title=c.title,
        url=c.url,
        domain=domain_label(c.categories, s.thread) + (" (Video)" if c.kind == "video" else ""),
        time_cost=time_cost(str(c.meta.get("comment") or ""), c.text, c.kind, _int(c.meta.get("duration_s"))),
        intuition=intuition,
        punch_intro=intro,
        punch=tuple(grounded),
        significance=significance,
        why=why,
        thread=s.thread,
        score=s.score,
        writer="extractive",
        exploration=s.exploration,
    )


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _why(s: Scored) -> str:
    """The evidence, in words: the thread, the concepts shared, the closest seed or voted paper, the blend."""
    parts = [f"Your *{s.thread}* thread"]
    if s.matched:
        parts.append("shared concepts: " + ", ".join(s.matched))
    text = "; ".join(parts) + "."
    if s.nearest_seed:
        text += f" Close to *{s.nearest_seed}*, in this thread's library."
    for reason in s.reasons:
        if reason.startswith(("closest voted paper", "quality:", "exploration slot")):
            text += " " + reason[0].upper() + reason[1:] + "."
    blend = next((r for r in s.reasons if r.startswith("blend of")), "")
    return text + f" (score {s.score:.3f}" + (f"; {blend}" if blend else "") + ")"
