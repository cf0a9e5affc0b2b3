"""The extractive card writer: every field is taken from the item itself, so nothing can be invented.

Domain from categories and thread; time cost from the page count in the arXiv comment, else from the
text's length. Prose by rhetorical role (`roles.RoleModel`): the intuition is the opening sentence (the
problem or task) and the sentence likeliest to state the paper's idea, each verbatim, at most 50 words;
the concrete punch is the abstract's own math and its stated result (at most 40 words), quoted verbatim
and checked by `grounding.is_grounded`; significance is a sentence of consequence, or nothing. "Why it
matches" is a sentence from the ranker's names (thread, shared concepts, closest library and voted
papers), on a talk's card saying first that it is a talk on its paper; its numbers go to the card's
`evidence`, unchanged. Imports only `feedsvc.models` and `feedsvc.cards`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from feedsvc.cards.fulltext import inert_latex
from feedsvc.cards.grounding import is_grounded, normalise
from feedsvc.cards.roles import own_work_index, shipped_model
from feedsvc.models import VOTES, Card, Quote, Scored, ends_a_sentence

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

# A sentence boundary: end punctuation, space, then something that starts a sentence (not after "e.g.",
# "et al." or "vs.", nor inside a decimal); or, where the abstract lost the space ("... depend heavily on
# it.To make this ..."), end punctuation between a word of two or more lowercase letters and a capitalised
# word.
_SENTENCE = re.compile(
    r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bet al\.)(?<!\bvs\.)(?<=[.!?])\s+(?=[A-Z\d$\\(\[])"
    r"|(?<=[a-z][a-z][.!?])(?=[A-Z][a-z])"
)
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


_CLAUSE = re.compile(r"(?<=[,;:])\s+|\s+(?=--\s|\u2014)")
# a sentence of consequence: what the result makes possible or means, not a step of the method
_CONSEQUENCE = re.compile(
    r"\b(?:this (?:suggests|shows|opens|enables|implies|paves|highlights|indicates|demonstrates)|"
    r"(?:these|our) (?:results|findings) (?:suggest|show|indicate|highlight|demonstrate|open|imply)|"
    r"implications?|paves? the way|opens? (?:up )?(?:new|the|a)|sheds? light|we (?:believe|hope|expect)|"
    r"(?:could|can|will|may) (?:be used|enable|help|benefit|serve|facilitate|open)|"
    r"promising (?:direction|avenue|step)|first step|future (?:work|research))\b",
    re.I,
)
INTUITION_WORDS = 50
RESULT_WORDS = 40
# the shortest start of a sentence the result line shows: shorter cuts are lead-ins ("To make this
# practical,"), not a result
MIN_CUT_WORDS = 10


# a phrase that leads into the clause after it ("For identity-conditioned classification, ..."): a cut
# that ends on one, or keeps only the sentence's opening one, leaves a lead-in, not a statement
_LEAD_IN = re.compile(
    r"^(?:through|by|for|to|when|whenever|while|although|though|because|since|if|unless|in|on|at|with|"
    r"without|using|as|after|before|given|unlike|compared|despite|under|across|from|via|based|among|"
    r"between|including|such as|especially|particularly|whether)\b",
    re.I,
)
# the fewest words the last clause of a cut keeps: fewer is a list item or a name ("..., conservativity")
MIN_LAST_CLAUSE_WORDS = 4


def _opens_brackets(text: str) -> bool:
    return any(text.count(o) > text.count(c) for o, c in ("()", "[]", "{}"))


# a clause that starts with its subject: what a sentence opening with a lead-in must reach before a cut
_SUBJECT = re.compile(
    r"^(?:we|our|it|its|this|these|they|their|such|the|a|an|[A-Z][\w-]*\s+(?:is|are|was|were|can|has|have))\b"
)


# "..., and domain shifts": the next item of a list; "..., and it beats ...": a clause of its own
_LIST_GOES_ON = re.compile(r"(?:and|or|nor|as well as)\s+(?!(?:we|it|they|this|these|our|its|their|there)\b)")


# what may follow a comma where a clause ends: a conjunction, a relative or participle clause, a phrase
# that qualifies the whole ("..., with ...", "..., respectively"); a comma before anything else is inside
# a list or a noun phrase ("more accurate, more parameter-efficient models")
_CLAUSE_OPENER = re.compile(
    r"(?:and|but|or|yet|so|while|whereas|which|where|who|whose|when|whereby|although|though|because|since|"
    r"as|thus|thereby|hence|then|e\.g\.|i\.e\.|respectively|even|without|with|by|using|via|at|in|on|for|"
    r"from|to|over|under|than|compared|relative|despite|leading|yielding|resulting|making|enabling|"
    r"allowing|achieving|outperforming|improving|reducing|reaching|surpassing|demonstrating|showing|"
    r"providing|suggesting|indicating|including|especially|particularly|notably)\b",
    re.I,
)


def _dangling_that(clause: str) -> bool:
    """Whether `clause` ends in a "that" whose own clause has not begun: "we find that NDC", "we observe
    that for many scenarios"."""
    if not re.search(r"\bthat\b", clause, re.I):
        return False
    after = re.split(r"\bthat\b", clause, flags=re.I)[-1].strip()
    return len(after.split()) < 5 or bool(_LEAD_IN.match(after))


def _is_whole_cut(clauses: Sequence[str], rest: str = "") -> bool:
    """Whether the first `clauses` of a sentence (`rest` the clause after them) read as a statement on
    their own: no bracket or enumeration left open, no dangling "that ..." or unanswered "not only", the
    last clause neither a short list item nor a lead-in to what follows, and past the sentence's opening
    lead-in ("Through experiments on X, Y, and Z, we show ...")."""
    kept, last = " ".join(clauses), clauses[-1]
    return not (
        _opens_brackets(kept)
        or (kept.endswith(",") and not _CLAUSE_OPENER.match(rest))
        or _dangling_that(last)
        or (re.search(r"\bnot only\b", kept, re.I) and not re.search(r"\bbut\b", kept, re.I))
        or (re.search(r"(?:\(|\b)(?:i|1|a)\)", kept) and not re.search(r"(?:\(|\b)(?:ii|2|b)\)", kept))
        or len(last.split()) < MIN_LAST_CLAUSE_WORDS
        or (len(last.split()) < 8 and _LIST_GOES_ON.match(rest))
        or _LEAD_IN.match(last)
        or (_LEAD_IN.match(clauses[0]) and not any(_SUBJECT.match(c) for c in clauses[1:]))
    )


def trim_clauses(sentence: str, max_words: int) -> str:
    """The start of `sentence` in at most `max_words` words, cut after a whole clause that reads as a
    statement (`_is_whole_cut`), or "" when no such cut leaves at least half of `max_words` (a verbatim
    substring, so that it stays grounded)."""
    if len(sentence.split()) <= max_words:
        return sentence
    clauses, best = _CLAUSE.split(sentence), ""
    for n in range(1, len(clauses)):
        kept = " ".join(clauses[:n])
        if len(kept.split()) > max_words:
            break
        if _is_whole_cut(clauses[:n], clauses[n]):
            best = kept
    best = best.rstrip(",;:")
    return best if len(best.split()) >= max_words // 2 else ""


# words that lead into what follows them: a cut at whole words does not end on one ("affected by …")
_FUNCTION_WORD = re.compile(
    r"(?:a|an|the|of|to|in|on|at|by|for|from|with|without|into|onto|over|under|via|as|and|or|but|nor|that|"
    r"which|whose|whether|than|its|their|our|this|these|those|such|both|either|is|are|was|were|be|been)[,;:]?",
    re.I,
)


def trim_words(sentence: str, max_words: int) -> str:
    """`trim_clauses`, else the first `max_words` whole words, less any function words they end on."""
    if cut := trim_clauses(sentence, max_words):
        return cut
    words = sentence.split()[:max_words]
    while len(words) > 1 and _FUNCTION_WORD.fullmatch(words[-1]):
        words.pop()
    return " ".join(words).rstrip(",;:")


# a sentence's opening connective ("To address this issue, ", "Specifically, "): no content of its own
_CONNECTIVE = re.compile(
    r"^(?:to (?:this end|address|tackle|overcome|solve|do so|that end)|in this (?:paper|work|article)|"
    r"specifically|in particular|here|thus|therefore|hence|instead|finally|moreover|furthermore|"
    r"additionally|consequently|in addition|as a result|concretely|more specifically)\b[^,]{0,60},\s+",
    re.I,
)


def without_connective(sentence: str) -> str:
    """`sentence` without an opening connective clause, when the rest still reads as a sentence."""
    rest = _CONNECTIVE.sub("", sentence, count=1)
    return rest if len(rest.split()) >= 5 else sentence


# the opening sentence's share of the intuition: it states the problem or task in most abstracts
PROBLEM_WORDS = 22
# how much more the sentence saying what the paper does ("we propose", `roles.own_work_index`) counts
# than the role model's idea probability alone when picking the idea sentence
OWN_WORK_BONUS = 0.2
# between two pieces of the intuition that are not adjacent in the abstract
GAP = " … "


def intuition_pieces(
    parts: Sequence[str], roles: Sequence[Mapping[str, float]], max_words: int = INTUITION_WORDS
) -> list[tuple[int, str]]:
    """The problem and the paper's own idea as (sentence index, verbatim text) pieces in abstract order, in
    at most `max_words` words: the idea sentence (of those that do not state a result, the role model's
    likeliest, `OWN_WORK_BONUS` added to the "we propose" sentence), the opening sentence (at most
    `PROBLEM_WORDS`), then the sentence after the idea in the room left, unless it states a result. Each
    piece is a sentence, without an opening connective ("To this end,") past the first sentence, cut
    after a whole clause when it does not fit."""
    if not parts:
        return []
    own = own_work_index(parts)
    ideas = [k for k in range(len(parts)) if not _states_a_result(roles[k])] or range(len(parts))
    idea = max(ideas, key=lambda k: roles[k]["idea"] + (OWN_WORK_BONUS if k == own else 0.0))
    room, chosen = max_words, {}
    for k, cap in ((idea, max_words), (0, PROBLEM_WORDS), (idea + 1, max_words)):
        if k in chosen or k >= len(parts) or (k == idea + 1 and _states_a_result(roles[k])):
            continue
        text = without_connective(parts[k]) if k else parts[k]
        n = min(cap, room, len(text.split()))
        if n < 6 and n < len(text.split()):  # no fragment of a few words
            continue
        chosen[k] = trim_words(text, n)
        room -= len(chosen[k].split())
    return sorted(chosen.items())


def _states_a_result(role: Mapping[str, float]) -> bool:
    """Whether the role model finds a sentence likelier to state the result than the problem or the idea:
    the result line's, not the intuition's."""
    return role["result"] > max(role["idea"], role["problem_task"])


def intuition_text(
    parts: Sequence[str], roles: Sequence[Mapping[str, float]], max_words: int = INTUITION_WORDS
) -> str:
    """The intuition (`intuition_pieces`): pieces that run on in the abstract joined by a space, the others
    by `GAP`, so that each part between gaps occurs verbatim in the abstract; a trailing " …" when the
    last piece stops before its sentence ends."""
    source, text = " ".join(parts), ""
    for budget in range(max_words, max_words - 4, -1):  # a gap is a word too: at most two, and the end
        runs: list[str] = []
        last = -2
        for k, piece in intuition_pieces(parts, roles, budget):
            if k == last + 1 and f"{runs[-1]} {piece}" in source:
                runs[-1] = f"{runs[-1]} {piece}"
            else:
                runs.append(piece)
            last = k
        text = GAP.join(runs)
        if runs and not ends_a_sentence(runs[-1]):
            text += GAP.rstrip()
        if len(text.split()) <= max_words:
            break
    return text


# words of an outcome: a comparison, an improvement, a target reached (result lines, full-text headlines)
OUTCOME = re.compile(
    r"\b(?:outperform\w*|versus|vs\.|than|compared|surpass\w*|improv\w*|reduc\w*|achiev\w*|reach\w*|"
    r"beats?|exceed\w*|state-of-the-art|speed-?ups?|faster|gain\w*|better|worse|lower|higher)\b",
    re.I,
)


# a link, where the code is, or that it is released: never the result
_NOT_A_CLAIM = re.compile(
    r"https?://|www\.|github\.com|available at|project (?:page|website)|"
    r"\b(?:code|data|datasets?|models?|weights|checkpoints|implementation)\b[^.]{0,60}"
    r"\b(?:(?:will be|are|is) released|open[- ]sourced?|(?:publicly|freely|made) available)\b",
    re.I,
)
# how much likelier the role model must find a sentence stating the problem or task than stating the
# result before the result line leaves it out ("Existing methods struggle to ...")
PROBLEM_MARGIN = 0.1


# how much each word of an outcome (up to three) and a quantitative claim add to the role model's result
# probability when choosing the result line's sentences (5-fold cross-validated in docs/benchmarks.md)
OUTCOME_CUE = 0.1


def result_sentences(
    parts: Sequence[str], roles: Sequence[Mapping[str, float]], shown: str = "", max_words: int = RESULT_WORDS
) -> list[str]:
    """The stated result in at most `max_words` words, in abstract order: the sentences likeliest to state
    the result (the role model's probability, plus `OUTCOME_CUE` for each word of an outcome, up to
    three, and for a quantitative claim); two sentences at most, each whole or cut after a whole clause
    at `MIN_CUT_WORDS` or more (a sentence that cannot be is passed over for the next). A sentence that
    `shown` (the intuition) already shows, or a link or a release note, is left out unless nothing else
    is left; so is one the role model finds likelier (by `PROBLEM_MARGIN`) to state the problem, unless
    only such sentences are left."""
    numbers = {parts.index(h) for h in headline_sentences(" ".join(parts), limit=3) if h in parts}

    def likelihood(k: int) -> float:
        outcome = min(3, len(OUTCOME.findall(parts[k]))) + (k in numbers)
        return roles[k]["result"] + OUTCOME_CUE * outcome

    order = sorted(range(len(parts)), key=lambda k: -likelihood(k))
    room, chosen = max_words, {}
    unshown = [k for k in order if not _holds(shown, parts[k]) and not _NOT_A_CLAIM.search(parts[k])]
    fresh = [k for k in unshown if roles[k]["problem_task"] <= likelihood(k) + PROBLEM_MARGIN]
    for k in fresh or unshown or order:
        n = min(room, len(parts[k].split()))
        piece = trim_clauses(parts[k], n)
        if piece == parts[k] or len(piece.split()) >= MIN_CUT_WORDS:  # whole clauses, not a lead-in
            chosen[k] = piece
            room -= len(piece.split())
        if len(chosen) == 2:
            break
    return [chosen[k] for k in sorted(chosen)]


def significance_sentence(parts: Sequence[str], shown: Sequence[str]) -> str:
    """A sentence stating a consequence (what the result means or enables) that no field in `shown`
    already holds, or "" when none does."""
    return next((p for p in parts[1:] if _CONSEQUENCE.search(p) and not any(_holds(t, p) for t in shown)), "")


def _holds(field: str, sentence: str) -> bool:
    """Whether `field` already shows `sentence`: whole, or a sentence or cut piece of the field opens with
    the same six words (the intuition's pieces are joined and ended by "…")."""
    opening = _opening(sentence)
    return sentence in field or any(
        _opening(f) == opening for piece in field.split("…") for f in sentences(piece) if len(f.split()) >= 6
    )


def _opening(text: str) -> str:
    return " ".join(text.split()[:6])


def build_card(s: Scored) -> Card:
    """The card for one ranked candidate, from the candidate's own text."""
    c = s.candidate
    parts = sentences(c.text)
    roles = shipped_model().score(parts)
    intuition = intuition_text(parts, roles) or c.title

    punch: list[Quote] = _math_quotes(c.text)[:2]
    punch += [Quote(text=r, where="abstract") for r in result_sentences(parts, roles, intuition)]
    grounded = []
    for q in punch:
        if is_grounded(q.text, c.text):
            grounded.append(q)
        else:  # cannot happen for extracted text; kept so that a regression is loud, not shown
            log.warning("dropped ungrounded quote on %s: %r", c.key, q.text[:80])
    if any(q.is_math for q in grounded):
        intro = "From the abstract:"
    elif any(_QUANT.search(q.text) for q in grounded):
        intro = "In the paper's own words:"
    else:
        intro = "The abstract states no equation or number; the result in its words:"
    significance = significance_sentence(parts, [intuition, *(q.text for q in grounded)])
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
        why=why_sentence(s),
        thread=s.thread,
        score=s.score,
        writer="extractive",
        exploration=s.exploration,
        evidence=s.reasons,
    )


def talk_card(paper: str, s: Scored) -> Card:
    """The card for a video that is a talk about the paper pick titled `paper`; `s` is the paper's ranking
    with the talk as its candidate, so the why says it is a talk on the paper and why the paper matches."""
    return replace(build_card(s), talk_for=paper, why=talk_why_sentence(paper, s))


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def why_sentence(s: Scored) -> str:
    """Why the pick matches, in words for the reader: the thread, the concepts it shares, the closest paper
    of the thread's library and of the reader's votes. No ranker numbers: those are the card's `evidence`
    (the exploration slot has a notice of its own). "" when the pick has none of these, as a card that stands
    alone."""
    clauses = _match_clauses(s)
    text = ""
    if s.thread:
        text = f"Matches your *{s.thread}* thread" + _after_colon(clauses) + "."
    elif clauses:
        text = ", and ".join(clauses)
        text = text[0].upper() + text[1:] + "."
    return (text + _closest_vote(s)).strip()


def talk_why_sentence(paper: str, s: Scored) -> str:
    """Why a talk about the paper pick titled `paper` is in the digest, for the reader: it is a talk on that
    paper, then why the paper matches (`s` is the paper's ranking, with the talk as its candidate)."""
    text = f"A talk on *{paper}*"
    if s.thread:
        text += f", which matches your *{s.thread}* thread"
    return text + _after_colon(_match_clauses(s)) + "." + _closest_vote(s)


def _match_clauses(s: Scored) -> list[str]:
    """The concepts the pick shares and its closest library paper, a clause each."""
    clauses = []
    if s.matched:
        clauses.append(f"it shares {listed(s.matched)} with {'the thread' if s.thread else 'your interests'}")
    if s.nearest_seed:
        library = "the thread's library" if s.thread else "your library"
        clauses.append(f"its closest paper in {library} is *{s.nearest_seed}*")
    return clauses


def _after_colon(clauses: Sequence[str]) -> str:
    return ": " + ", and ".join(clauses) if clauses else ""


def _closest_vote(s: Scored) -> str:
    """The sentence naming the closest paper the reader voted on, with a leading space; "" when none."""
    if s.nearest_vote is None:
        return ""
    title, vote = s.nearest_vote
    verb = VOTES[vote].verb if vote in VOTES else vote
    return f" Of the papers you voted on, the closest is *{title}*, which you {verb}."


def listed(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
