"""The one retry policy for every outbound call (sources, YouTube, the LLM, Telegram, SMTP), on tenacity.

A call site wraps one try in a function that raises `Transient(cause, retry_after=...)` for a failure
worth another try (its own errors for the rest) and hands it to `RetryPolicy.call`. The policy makes at
most `attempts` tries; between them it waits the server's Retry-After, else an exponential back-off
(1 s, 2 s, 4 s ...) capped at `max_wait`, of which up to the `jitter` fraction is drawn off at random so
that clients failing together do not retry together. Every wait is logged the same way:
"retrying <what> in 2.3s (attempt 2/4): <cause>". No wait is longer than `max_wait`: a longer
Retry-After either ends the tries (`defer=True`: the caller records the pause, capped at `LONGEST_PAUSE`,
and tries again in a later run) or is cut to `max_wait` (`defer=False`); either cap is logged. When the
tries run out, `GaveUp` carries the last cause, the number of tries and the pause to record. Waits go
through the injected `sleep`, so tests never wait. Imports nothing from feedsvc (Settings only for its type).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

if TYPE_CHECKING:
    from feedsvc.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

LONGEST_PAUSE = 86_400.0  # a Retry-After handed back to the caller: at most a day (as source back-off)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A `Retry-After` header (seconds or an HTTP-date) as seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Transient(Exception):
    """One try failed in a way worth another: `cause` (one line), and the wait the server asked for."""

    def __init__(self, cause: str, *, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class GaveUp(Exception):
    """No more tries: the last `cause`, how many `attempts` were made, and `retry_after`, the pause to
    record (capped at `LONGEST_PAUSE`; `capped` says it was). `too_long`: the server asked for more than
    `max_wait`."""

    def __init__(
        self, cause: str, attempts: int, retry_after: float | None, too_long: bool, capped: bool = False
    ) -> None:
        super().__init__(cause)
        self.cause = cause
        self.attempts = attempts
        self.retry_after = retry_after
        self.too_long = too_long
        self.capped = capped


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries, waits capped at `max_wait`, back-off jittered by up to `jitter` of itself."""

    attempts: int = 4
    max_wait: float = 60.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = field(default=random.random, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, retries: int | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> RetryPolicy:
        """The policy from `http_retries` (or `retries`), `http_max_wait` and `http_jitter`."""
        tries = settings.http_retries if retries is None else retries
        return cls(max(0, tries) + 1, settings.http_max_wait, settings.http_jitter, sleep)

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (1-based): 2^(attempt-1) s capped, minus jitter."""
        base = float(min(2 ** (attempt - 1), self.max_wait))
        return base * (1.0 - min(max(self.jitter, 0.0), 1.0) * self.rand())

    def call(self, what: str, attempt: Callable[[], T], *, defer: bool = True) -> T:
        """`attempt()` until it returns, raises something other than `Transient`, or the policy gives up
        (then `GaveUp`). `what` names the call in the log line ("GET https://…", "LLM endpoint …")."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Transient),
            stop=lambda state: self._stop(state, defer),
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=lambda state: self._log(what, state),
            retry_error_callback=lambda state: self._give_up(what, state, defer),
        )
        return retrying(attempt)

    # --- tenacity's hooks ------------------------------------------------------------------------------

    def _too_long(self, state: tenacity.RetryCallState) -> bool:
        """Whether the last failure's Retry-After would take the waits beyond `max_wait` in total."""
        wanted = _transient(state).retry_after
        return wanted is not None and state.idle_for + wanted > self.max_wait

    def _stop(self, state: tenacity.RetryCallState, defer: bool) -> bool:
        return state.attempt_number >= self.attempts or (defer and self._too_long(state))

    def _wait(self, state: tenacity.RetryCallState) -> float:
        wanted = _transient(state).retry_after
        if wanted is None:
            return self.backoff(state.attempt_number)
        if wanted > self.max_wait:
            log.warning("Retry-After %.0fs capped at the %.0fs wait limit", wanted, self.max_wait)
        return min(wanted, self.max_wait)

    def _log(self, what: str, state: tenacity.RetryCallState) -> None:
        pause = state.next_action.sleep if state.next_action else 0.0
        cause = _transient(state).cause
        log.warning(
            "retrying %s in %.1fs (attempt %d/%d): %s",
            what,
            pause,
            state.attempt_number + 1,
            self.attempts,
            cause,
        )

    def _give_up(self, what: str, state: tenacity.RetryCallState, defer: bool) -> Any:
        last = _transient(state)
        too_long = defer and self._too_long(state)
        pause = last.retry_after
        capped = pause is not None and pause > LONGEST_PAUSE
        if capped:
            log.warning("%s: Retry-After %.0fs capped at %.0fs", what, pause, LONGEST_PAUSE)
            pause = LONGEST_PAUSE
        raise GaveUp(last.cause, state.attempt_number, pause, too_long, capped) from None


def _transient(state: tenacity.RetryCallState) -> Transient:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, Transient)
    return exc
