"""The optional LLM judgement of the top picks (issue 13): off by default, never required.

For each of the first `top` picks (`FEEDSVC_LLM_JUDGE_TOP`, default 20) the LLM reads the reader's thread
(its name, `about` and keywords) and the paper's title and an abstract excerpt, and answers with JSON
(`JUDGE_SCHEMA`): a one-line reason and a grade, 2 = a top pick for this reader, 1 = related, 0 = not
relevant. The judged picks are re-ordered by (grade, descending; original rank, ascending) among the places
they held; a pick that could not be judged (time-out, a reply that is not the schema, the server down)
keeps its place, and one log line per list says how many and why. After `GIVE_UP` failures in a row the
rest of the list is not asked about, so a dead endpoint costs at most that many requests. Picks beyond
`top` keep their order. The grade and reason become an evidence line of the pick ("LLM judge: 2 (...)"),
shown by `/why`. `choose` then takes a digest's picks from the judged list within the thread quotas.

It asks through `Chat` (`feedsvc.cards.llm.ChatClient`: structured output, retries, deadlines, no
secrets in messages). Imports only feedsvc.models, feedsvc.config and feedsvc.rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from feedsvc.config import Settings
from feedsvc.models import FeedsvcError, Profile, Scored, Thread
from feedsvc.rank import diversity

log = logging.getLogger(__name__)

GRADES = (0, 1, 2)
GIVE_UP = 2  # failures in a row after which the rest of a list is not asked about
EXCERPT_CHARS = 1200  # of the abstract: enough to judge relevance, short enough for a small context
MAX_TOKENS = 160  # a one-line reason and a grade
REASON_CHARS = 200  # of the reason, as the evidence line shows it

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "description": "One short sentence: why the paper is or is not for this reader.",
        },
        "grade": {
            "type": "integer",
            "enum": list(GRADES),
            "description": "2 = a top pick for this reader, 1 = related, 0 = not relevant.",
        },
    },
    "required": ["reason", "grade"],
    "additionalProperties": False,
}

_SYSTEM = (
    "You judge whether a research paper belongs in a researcher's daily reading, from their stated "
    'interests. Answer with one JSON object with a string field "reason" (one short sentence) and an '
    'integer field "grade": 2 if the paper is a top pick for this reader (squarely on one of their '
    "interests, the kind of work they say they prefer), 1 if it is related (the right area, but not what "
    "they asked for), 0 if it is not relevant. Judge the paper only by its title and abstract."
)


class Answer(Protocol):
    @property
    def data(self) -> Mapping[str, Any]: ...


class Chat(Protocol):
    """An LLM endpoint that answers with JSON following a schema (`feedsvc.cards.llm.ChatClient`); it
    raises a `FeedsvcError` with a one-line message when no usable answer came."""

    model: str

    def complete(
        self,
        messages: list[dict[str, str]],
        schema: Mapping[str, Any],
        name: str = ...,
        *,
        max_tokens: int | None = ...,
    ) -> Answer: ...


@dataclass(frozen=True)
class Verdict:
    grade: int
    reason: str

    @property
    def evidence(self) -> str:
        return f"LLM judge: {self.grade} ({self.reason})" if self.reason else f"LLM judge: {self.grade}"


def top_to_judge(settings: Settings) -> int:
    """How many top picks the judge grades: 0 when it is off (`FEEDSVC_LLM_JUDGE` unset, or no LLM
    endpoint configured)."""
    return settings.llm_judge_top if settings.llm_judge and settings.llm_base_url.strip() else 0


def _excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def reader_text(thread: Thread) -> str:
    """What the judge is told of the reader: the thread's name, `about` and keywords."""
    parts = [f"Interest thread: {thread.name}"]
    if thread.about.strip():
        parts.append(f"In their words: {' '.join(thread.about.split())}")
    if thread.keywords:
        parts.append("Keywords: " + ", ".join(thread.keywords))
    return "\n".join(parts)


def messages_for(reader: str, s: Scored) -> list[dict[str, str]]:
    """The prompt: the reader, then the paper's title and an abstract excerpt (nothing else of it)."""
    c = s.candidate
    user = f"The reader\n{reader}\n\nThe paper\nTitle: {' '.join(c.title.split())}\n"
    user += f"Abstract: {_excerpt(c.text)}"
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def verdict_of(data: Mapping[str, Any]) -> Verdict:
    """The grade and reason of an answer; a `FeedsvcError` naming the problem when it has no valid grade."""
    grade = data.get("grade")
    if isinstance(grade, str) and grade.strip() in ("0", "1", "2"):
        grade = int(grade.strip())
    if isinstance(grade, bool) or grade not in GRADES:
        raise FeedsvcError(f"the answer's grade {str(grade)[:20]!r} is not 0, 1 or 2")
    reason = data.get("reason")
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    if len(reason) > REASON_CHARS:
        reason = reason[:REASON_CHARS].rsplit(" ", 1)[0] + " …"
    return Verdict(int(grade), reason)


def judge_one(client: Chat, reader: str, s: Scored) -> Verdict:
    """The LLM's verdict on one pick; raises `FeedsvcError` (one line) when there is none."""
    answer = client.complete(messages_for(reader, s), JUDGE_SCHEMA, "judgement", max_tokens=MAX_TOKENS)
    return verdict_of(answer.data)


def _verdicts(
    head: Sequence[Scored],
    readers: Mapping[str, str],
    client: Chat,
    on_judged: Callable[[Scored, Verdict | None], None] | None,
) -> tuple[list[Verdict | None], list[str]]:
    """A verdict (or None) per pick of `head`, and the problems met; stops asking after `GIVE_UP`
    failures in a row."""
    verdicts: list[Verdict | None] = []
    problems: list[str] = []
    in_a_row = 0
    for s in head:
        verdict = None
        if in_a_row < GIVE_UP:
            try:
                verdict = judge_one(client, readers.get(s.thread, f"Interest thread: {s.thread}"), s)
                in_a_row = 0
            except FeedsvcError as e:
                problems.append(f"{s.candidate.key}: {e}")
                in_a_row += 1
        verdicts.append(verdict)
        if on_judged is not None:
            on_judged(s, verdict)
    return verdicts, problems


def reorder(head: Sequence[Scored], verdicts: Sequence[Verdict | None]) -> list[Scored]:
    """The judged picks sorted by (grade desc, rank asc) into the places they held, each with its verdict
    as an evidence line; the picks without a verdict keep their places."""
    places = [i for i, v in enumerate(verdicts) if v is not None]
    ordered = sorted(places, key=lambda i: (-verdicts[i].grade, i))  # type: ignore[union-attr]
    out = list(head)
    for place, i in zip(places, ordered, strict=True):
        s, v = head[i], verdicts[i]
        out[place] = replace(s, reasons=(*s.reasons, v.evidence))  # type: ignore[union-attr]
    return out


def judge_picks(
    picks: Sequence[Scored],
    profile: Profile,
    client: Chat | None,
    *,
    top: int,
    on_judged: Callable[[Scored, Verdict | None], None] | None = None,
) -> list[Scored]:
    """`picks` with the first `top` re-ordered by the LLM's grades (the rest as they were); unchanged when
    there is no client. Never raises: a pick that could not be judged keeps its place, and one warning
    says how many and the first cause. `on_judged` is told of each verdict (None: not judged)."""
    if client is None or top < 1 or not picks:
        return list(picks)
    head, tail = list(picks[:top]), list(picks[top:])
    readers = {t.name: reader_text(t) for t in profile.threads}
    verdicts, problems = _verdicts(head, readers, client, on_judged)
    if problems:
        skipped = sum(v is None for v in verdicts) - len(problems)
        log.warning(
            "LLM judge (%s, profile %s): %d of %d picks not judged, kept in place%s; first: %s",
            client.model,
            profile.name,
            len(problems) + skipped,
            len(head),
            f" ({skipped} not asked after {GIVE_UP} failures in a row)" if skipped else "",
            problems[0],
        )
    return reorder(head, verdicts) + tail


def choose(picks: Sequence[Scored], profile: Profile, k: int) -> list[Scored]:
    """The first `k` of the judged `picks` in their order, within the threads' quotas (then from any thread
    when one runs short); an exploration pick keeps its slot."""
    explore = [i for i, s in enumerate(picks) if s.exploration][: min(k, 1)]
    room = k - len(explore)
    quota = diversity.quotas({t.name: t.share for t in profile.threads}, max(room, 0))
    chosen: list[int] = []
    for respect_quota in (True, False):
        for i, s in enumerate(picks):
            if len(chosen) >= room:
                break
            if s.exploration or i in chosen or (respect_quota and quota.get(s.thread, 0) < 1):
                continue
            chosen.append(i)
            quota[s.thread] = quota.get(s.thread, 0) - 1
    keep = set(chosen + explore)
    return [s for i, s in enumerate(picks) if i in keep]
