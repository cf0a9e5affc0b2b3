"""The optional LLM card writer: prose from any OpenAI-compatible chat-completions endpoint, grounded.

`ChatClient` posts to `{base_url}/chat/completions` (hosted APIs, llama.cpp, vLLM, Ollama) asking for JSON
that follows `CARD_SCHEMA`, with a timeout, retries with back-off (timeouts, network errors, 5xx, 429 with
Retry-After, invalid JSON) and a token count; an endpoint that refuses `json_schema` (HTTP 400 or 422, or
an error naming response_format) is asked once more with `json_object` and the schema, then with plain
`json_object` (`FORMATS`).
`write_card` lets the model write the prose fields only (intuition, punch_intro, significance, why): the
equation and numbers stay the extractive ones. Every generated sentence goes through the gate: its
numbers, `$...$` formulas and "quotations" must occur in the source, and a source sentence must back it
(`support`); failing sentences are dropped (the field is repaired), a field left empty is replaced by the
extractive one, and both are recorded. The card names the fields the LLM wrote (`Card.llm_fields`).
Without an endpoint, or when the request fails, the extractive card is returned with a one-line reason.
The key is sent only in the Authorization header, never put in a message or log. Retries follow
`feedsvc.retry`'s policy (a Retry-After beyond `http_max_wait` is cut to it). The answer is streamed
through `feedsvc.bounded`: past `http_max_bytes` (decoded) or the deadline it is refused, without
retries. Imports only httpx, `feedsvc.models`, `feedsvc.config`, `feedsvc.bounded`, `feedsvc.retry` and
`feedsvc.cards`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from feedsvc.bounded import Refused, fetch_bounded
from feedsvc.cards.extractive import sentences
from feedsvc.cards.grounding import is_grounded, normalise, numbers_in
from feedsvc.cards.grounding_math import formula_grounded
from feedsvc.cards.support import MIN_WORDS, SourceIndex
from feedsvc.config import Settings
from feedsvc.models import VOTES, Card, FeedsvcError, Scored
from feedsvc.retry import GaveUp, RetryPolicy, Transient, retry_after_seconds

log = logging.getLogger(__name__)

FIELDS = ("intuition", "punch_intro", "significance", "why")
MAX_CHARS = {"intuition": 900, "punch_intro": 300, "significance": 400, "why": 400}
EXCERPT_CHARS = 6000
# the structured-output formats asked for in turn when an endpoint refuses one (HTTP 400 or 422):
# OpenAI's `json_schema`; `json_object` with the schema (llama-cpp-python and vLLM constrain decoding to
# it); plain `json_object` (only valid JSON)
FORMATS = ("json_schema", "json_object+schema", "json_object")

CARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intuition": {
            "type": "string",
            "description": "2-3 sentences: the paper's idea in plain words for a nearby researcher.",
        },
        "punch_intro": {
            "type": "string",
            "description": "One sentence introducing the paper's own equation and numbers, shown after it.",
        },
        "significance": {"type": "string", "description": "One sentence: why the result matters."},
        "why": {
            "type": "string",
            "description": "One sentence: why it matches the reader's thread and concepts, without numbers.",
        },
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}

_SYSTEM = (
    "You write short, exact cards about research papers for a busy researcher. Answer with one JSON object "
    'with the string fields "intuition" (2-3 sentences), "punch_intro" (one sentence), "significance" '
    '(one sentence) and "why" (one sentence), nothing else. Rules: quote nothing that is not in the '
    "source; state no number that is not in the source, written exactly as the source writes it; write no "
    "equations (the card already shows the paper's own equation and numbers after punch_intro); do not "
    "invent results, datasets or comparisons."
)


class LlmError(FeedsvcError):
    """The endpoint could not give a usable answer; the message is one line without secrets."""

    def __init__(self, reason: str, tokens: tuple[int, int] = (0, 0)) -> None:
        super().__init__(reason)
        self.tokens = tokens


@dataclass(frozen=True)
class ChatReply:
    """A parsed JSON answer, the tokens spent on all attempts (prompt, completion) and a note."""

    data: dict[str, Any]
    tokens: tuple[int, int]
    note: str = ""  # e.g. the json_object fallback
    attempts: int = 1


@dataclass(frozen=True)
class LlmResult:
    card: Card
    tokens: tuple[int, int] = (0, 0)
    rejected: list[str] = field(default_factory=list)  # "significance: the number 42% is not in the source"
    error: str | None = None
    note: str = ""
    repaired: list[str] = field(default_factory=list)  # "intuition: dropped, the number 3 is not in ..."
    verdicts: dict[str, str] = field(default_factory=dict)  # field -> passed | repaired | replaced
    answer: dict[str, Any] = field(default_factory=dict)  # the model's JSON as it came, before the gate


def redact_url(url: str) -> str:
    """The URL without user info or query (either may carry a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _parse_content(content: object) -> dict[str, Any] | None:
    """The message content as a JSON object (a ```json fence, as local models write, is accepted)."""
    if not isinstance(content, str):
        return None
    m = _FENCE.match(content)
    try:
        data = json.loads(m.group(1) if m else content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ChatClient:
    """An OpenAI-compatible chat-completions client with structured output, retries and token counts."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout: float = 60.0,
        retries: int = 2,
        max_wait: float = 60.0,
        jitter: float = 0.5,
        temperature: float = 0.2,
        max_tokens: int = 512,
        response_format: str = "auto",
        max_bytes: int = 32 << 20,
        deadline: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`timeout` bounds each wait for the endpoint; `deadline` (at least `timeout`) the whole request."""
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.retry = RetryPolicy(max(0, retries) + 1, max_wait, jitter, sleep)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.formats = FORMATS if response_format == "auto" else FORMATS[FORMATS.index(response_format) :]
        self._format_note = ""  # set when the endpoint refused a format: later requests skip it
        self._key = api_key
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, transport=transport)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline = max(deadline, timeout)
        self.tokens_spent = (0, 0)  # (prompt, completion) over all this client's requests, failed ones too

    def __repr__(self) -> str:
        return f"ChatClient({redact_url(self.url)!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())[:160]
        return text.replace(self._key, "[key]") if self._key else text

    def complete(
        self,
        messages: list[dict[str, str]],
        schema: Mapping[str, Any],
        name: str = "card",
        *,
        max_tokens: int | None = None,
    ) -> ChatReply:
        """A JSON object following `schema`; raises `LlmError` (one line) when no usable answer came.
        `max_tokens`: the most the model may write for this answer (default: the client's)."""
        exchange = _Exchange(
            list(self.formats),
            dict(schema),
            name,
            self._format_note,
            max_tokens=max_tokens or self.max_tokens,
        )
        try:
            return self.retry.call(
                f"LLM endpoint {redact_url(self.url)}", lambda: self._try(messages, exchange), defer=False
            )
        except GaveUp as e:
            tries = f"{e.attempts} attempt" + ("s" if e.attempts > 1 else "")
            raise LlmError(f"{e.cause} ({tries})", exchange.tokens) from None
        finally:
            prompt, completion = exchange.tokens
            self.tokens_spent = (self.tokens_spent[0] + prompt, self.tokens_spent[1] + completion)

    def _try(self, messages: list[dict[str, str]], exchange: _Exchange) -> ChatReply:
        """One request (and its json_object re-ask, which is a format negotiation, not a retry): the reply,
        `Transient` for time-outs, network errors, 5xx, 429 and non-JSON answers, else `LlmError`."""
        exchange.tries += 1
        while True:
            body = {
                "model": self.model,
                "messages": messages,
                "response_format": exchange.response_format(),
                "temperature": self.temperature,
                "max_tokens": exchange.max_tokens,
            }
            try:
                r, content = fetch_bounded(
                    self._http, "POST", self.url, json=body, max_bytes=self.max_bytes, deadline=self.deadline
                )
            except Refused as e:
                raise LlmError(f"LLM endpoint {redact_url(self.url)}: {e}", exchange.tokens) from None
            except httpx.TimeoutException:
                raise Transient(f"timed out after {self.timeout:g}s") from None
            except httpx.HTTPError as e:  # connection refused, reset, protocol errors: no secrets in these
                raise Transient(f"network error ({type(e).__name__})") from None
            if _refused_format(r.status_code, content) and len(exchange.formats) > 1:
                refused = exchange.formats.pop(0)
                exchange.note = (
                    f"the endpoint refused response_format {refused} (HTTP {r.status_code}); "
                    f"used {exchange.formats[0]}"
                )
                if self.formats[0] == refused:  # remembered for this client's later requests, told once
                    self.formats, self._format_note = self.formats[1:], exchange.note
                    log.warning("LLM endpoint %s: %s", redact_url(self.url), exchange.note)
                continue
            if r.status_code == 200:
                return self._reply(content, exchange)
            if r.status_code == 429:
                raise Transient(
                    "rate limited (HTTP 429)", retry_after=retry_after_seconds(r.headers.get("retry-after"))
                )
            if r.status_code >= 500:
                raise Transient(f"HTTP {r.status_code}")
            text = content.decode(r.encoding or "utf-8", errors="replace")
            detail = "" if r.status_code in (401, 403) else f": {self._scrub(text)}"
            raise LlmError(f"HTTP {r.status_code} from the LLM endpoint{detail}", exchange.tokens)

    def _reply(self, content: bytes, exchange: _Exchange) -> ChatReply:
        try:
            payload = json.loads(content)
        except ValueError:
            payload = None
        usage = payload.get("usage") if isinstance(payload, dict) else None
        if isinstance(usage, dict):
            prompt, completion = exchange.tokens
            exchange.tokens = (
                prompt + _count(usage.get("prompt_tokens")),
                completion + _count(usage.get("completion_tokens")),
            )
        data = None
        with contextlib.suppress(KeyError, IndexError, TypeError):
            data = _parse_content(payload["choices"][0]["message"]["content"])  # type: ignore[index]
        if data is None:
            raise Transient("the reply is not a JSON object")
        return ChatReply(data, exchange.tokens, exchange.note, exchange.tries)


def _refused_format(status: int, content: bytes) -> bool:
    """The endpoint refused the response format: HTTP 400 or 422, or an error that names response_format
    (llama-cpp-python's server answers an unknown format with a 500 naming it)."""
    return status in (400, 422) or (status >= 500 and b"response_format" in content[:4096])


@dataclass
class _Exchange:
    """What one `complete` call carries across its tries: the formats still to try (the first is asked
    for), the schema, a note, tokens spent, the cap on the tokens the model may write."""

    formats: list[str]
    schema: dict[str, Any]
    name: str
    note: str = ""
    tokens: tuple[int, int] = (0, 0)
    tries: int = 0
    max_tokens: int = 512

    def response_format(self) -> dict[str, Any]:
        fmt = self.formats[0]
        if fmt == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": self.name, "strict": True, "schema": self.schema},
            }
        if fmt == "json_object+schema":
            return {"type": "json_object", "schema": self.schema}
        return {"type": "json_object"}


def client_from_settings(settings: Settings, **kw: Any) -> ChatClient | None:
    """The configured client; None when `llm_base_url` is empty (the extractive writer then does it all)."""
    if not settings.llm_base_url.strip():
        return None
    return ChatClient(
        settings.llm_base_url.strip(),
        settings.llm_model,
        settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout,
        retries=settings.llm_retries,
        max_wait=settings.http_max_wait,
        jitter=settings.http_jitter,
        max_bytes=settings.http_max_bytes,
        deadline=settings.http_deadline,
        max_tokens=settings.llm_max_tokens,
        response_format="json_object+schema" if settings.llm_response_format == "json_object" else "auto",
        **kw,
    )


# --- the prompt ------------------------------------------------------------------------------------------


def _excerpt(text: str, limit: int) -> str:
    text = normalise(text)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " …"


def build_messages(s: Scored, extractive: Card, source_text: str) -> list[dict[str, str]]:
    c = s.candidate
    abstract = normalise(c.text)
    parts = [f"Title: {c.title}", f"Abstract: {_excerpt(abstract, EXCERPT_CHARS)}"]
    rest = EXCERPT_CHARS - len(abstract)
    if source_text and normalise(source_text) != abstract and rest > 500:
        parts.append(f"Full-text excerpt: {_excerpt(source_text, rest)}")
    punch = "\n".join(f"- {'$' + q.text + '$' if q.is_math else q.text}" for q in extractive.punch)
    parts.append(f"The card shows, verbatim after punch_intro:\n{punch or '- (nothing)'}")
    if s.thread:
        parts.append(f"The reader's thread: {s.thread}")
    if s.matched:
        parts.append("Concepts the paper shares with the thread: " + ", ".join(s.matched))
    if s.nearest_seed:
        parts.append(f"Closest paper in the reader's library: {s.nearest_seed}")
    if s.nearest_vote is not None:
        title, vote = s.nearest_vote
        verb = VOTES[vote].verb if vote in VOTES else vote
        parts.append(f"Closest paper the reader voted on: {title}, which they {verb}")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


# --- grounding -------------------------------------------------------------------------------------------

_FORMULA = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$]+?)(?<!\\)\$", re.S)
_QUOTATION = re.compile(r"\"([^\"]{3,})\"|“([^”]{3,})”")


def _number_in(number: str, source: str) -> bool:
    n = number.replace(" ", "")
    body = re.escape(n[:-1]) + r"\s?" + re.escape(n[-1]) if n.endswith("%") else re.escape(n)
    return re.search(r"(?<![\d.,])" + body + r"(?![\d])", source) is not None


def grounding_problem(text: str, source: str, macros: Mapping[str, str] | None = None) -> str | None:
    """Why `text` is not grounded in `source` (the first problem, in words), or None when it is."""
    src = normalise(source).replace("\\%", "%")
    rest = text
    for m in _FORMULA.finditer(text):
        formula = m.group(1) if m.group(1) is not None else m.group(2)
        if not (is_grounded(formula, source) or formula_grounded(formula, source, dict(macros or {}))):
            return f"the formula ${formula.strip()[:60]}$ is not in the source"
        rest = rest.replace(m.group(0), " ")
    for m in _QUOTATION.finditer(rest):
        quoted = m.group(1) if m.group(1) is not None else m.group(2)
        if not is_grounded(quoted, source):
            return f'the quotation "{quoted.strip()[:60]}" is not in the source'
        rest = rest.replace(m.group(0), " ")
    for n in numbers_in(rest):
        if not _number_in(n, src):
            return f"the number {n} is not in the source"
    return None


@dataclass(frozen=True)
class FieldVerdict:
    """What the gate did with one generated field: "passed" (shown as written), "repaired" (shown without
    the sentences that failed) or "replaced" (the extractive field is shown); `problems` says why."""

    verdict: str
    text: str = ""
    problems: tuple[str, ...] = ()


# the prompt's own labels: a small model copies them into its answer ("The card shows, verbatim after ...")
_PROMPT_ECHO = re.compile(
    r"punch_intro|the card shows|verbatim after|the reader'?s thread|full-text excerpt", re.I
)


def _sentence_problem(
    sentence: str, source: str, index: SourceIndex, macros: Mapping[str, str] | None
) -> str:
    problem = grounding_problem(sentence, source, macros)
    if problem:
        return problem
    if _PROMPT_ECHO.search(sentence):
        return f'the sentence "{sentence[:60]}" echoes the prompt'
    backing = index.support(sentence)
    if backing.supported:
        return ""
    if backing.words < MIN_WORDS:
        return f'"{sentence[:60]}" is a fragment, not a sentence'
    return (
        f'the sentence "{sentence[:60]}" has no source sentence behind it '
        f"(at best {backing.share:.0%} of its content words)"
    )


def gate_field(
    value: object, name: str, source: str, index: SourceIndex, macros: Mapping[str, str] | None = None
) -> FieldVerdict:
    """The gate on one generated field: each sentence must be grounded (numbers, formulas, quotations occur
    in `source`) and supported (`index` has a sentence behind it); failing sentences are dropped."""
    if not isinstance(value, str) or not value.strip():
        return FieldVerdict("replaced", problems=("missing from the answer",))
    if len(value) > MAX_CHARS[name]:
        return FieldVerdict("replaced", problems=(f"too long ({len(value)} characters)",))
    kept: list[str] = []
    problems: list[str] = []
    for sentence in sentences(value):
        problem = _sentence_problem(sentence, source, index, macros)
        if problem:
            problems.append(problem)
        else:
            kept.append(sentence)
    if not kept:
        return FieldVerdict("replaced", problems=tuple(problems))
    return FieldVerdict("repaired" if problems else "passed", normalise(" ".join(kept)), tuple(problems))


def write_card(
    s: Scored,
    extractive: Card,
    source_text: str,
    client: ChatClient | None,
    *,
    macros: Mapping[str, str] | None = None,
) -> LlmResult:
    """The card with the LLM's grounded prose, or `extractive` unchanged (with `error`) when it cannot help.

    `source_text` is what the card may cite (the abstract, or the full text); numbers, formulas and
    quotations in the generated fields must occur in it (or in the title and abstract), and each sentence
    must have a source sentence behind it (`support`). The `why` field may also cite the reader's thread,
    the matched concepts and the closest library and voted papers. A field that loses some sentences is
    repaired; one that loses all is replaced.
    """
    if client is None:
        return LlmResult(extractive, error="no LLM endpoint configured (FEEDSVC_LLM_BASE_URL is empty)")
    c = s.candidate
    try:
        reply = client.complete(build_messages(s, extractive, source_text), CARD_SCHEMA)
    except LlmError as e:
        log.warning("LLM writer on %s fell back to the extractive card: %s", c.key, e)
        return LlmResult(extractive, tokens=e.tokens, error=str(e))
    verdicts = _gate_reply(s, extractive, source_text, reply.data, macros)
    changes = {n: v.text for n, v in verdicts.items() if v.verdict != "replaced"}
    rejected, repaired = [], []
    for name, v in verdicts.items():
        if v.verdict == "replaced":
            rejected.append(f"{name}: {v.problems[0]}")
            log.warning(
                "LLM writer on %s: %s replaced by the extractive text: %s", c.key, name, v.problems[0]
            )
        repaired += [f"{name}: dropped, {p}" for p in v.problems] if v.verdict == "repaired" else []
    writer = f"llm:{client.model}" if changes else "extractive"
    card = replace(extractive, writer=writer, llm_fields=tuple(changes), **changes)
    return LlmResult(
        card,
        tokens=reply.tokens,
        rejected=rejected,
        note=reply.note,
        repaired=repaired,
        verdicts={n: v.verdict for n, v in verdicts.items()},
        answer=reply.data,
    )


def _gate_reply(
    s: Scored, extractive: Card, source_text: str, data: Mapping[str, Any], macros: Mapping[str, str] | None
) -> dict[str, FieldVerdict]:
    c = s.candidate
    texts = [c.title, c.text, source_text]
    voted = s.nearest_vote[0] if s.nearest_vote is not None else ""
    reader_texts = [*texts, s.thread, *s.matched, s.nearest_seed or "", voted, extractive.why]
    source, reader = "\n".join(texts), "\n".join(reader_texts)
    index, reader_index = SourceIndex(texts), SourceIndex(reader_texts)
    return {
        name: gate_field(
            data.get(name),
            name,
            reader if name == "why" else source,
            reader_index if name == "why" else index,
            macros,
        )
        for name in FIELDS
    }
