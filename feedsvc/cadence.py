"""A recipient's cadence: daily or weekly (on a day of the week), at a send time in their time zone.

`parse_cadence` reads what a reader types (the bot's `/settings`, the CLI, the web form) into a `Cadence`,
with a one-line `ValueError` for bad input; `last_due` is the latest send time at or before a moment
(DST-aware through zoneinfo: a time the spring change skips is sent an hour later, a repeated autumn
time once); `describe` says a cadence in a sentence. Pure: imports `feedsvc.models` only, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from feedsvc.models import EVERY, Cadence, Profile

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def profile_cadence(profile: Profile) -> Cadence:
    """What a recipient without a cadence of their own gets: the profile's daily time."""
    return Cadence(send_at=profile.send_at, timezone=profile.timezone)


def check_time(value: str) -> str:
    m = _TIME.match(value.strip())
    if not m:
        raise ValueError(f"send time {value!r} is not HH:MM (24-hour), e.g. 07:30")
    return f"{int(m[1]):02d}:{m[2]}"


def check_zone(value: str) -> str:
    name = value.strip()
    if not name or (name not in available_timezones() and name != "UTC"):
        raise ValueError(f"time zone {value!r} is not an IANA zone name, e.g. Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {value!r} is not an IANA zone name, e.g. Europe/Berlin") from None
    return name


def check_day(value: str) -> int:
    word = value.strip().lower()
    found = [i for i, d in enumerate(DAYS) if len(word) >= 3 and d.startswith(word)]
    if not found:
        raise ValueError(f"day {value!r} is not a day of the week, e.g. monday or mon")
    return found[0]


def parse_cadence(words: Sequence[str], current: Cadence) -> Cadence:
    """`current` changed by `words`, in any order: daily | weekly [DAY] | DAY | HH:MM | a time zone |
    note | no-note. A bare day means weekly on that day. ValueError on anything else."""
    out = current
    for raw in words:
        word = raw.strip()
        low = word.lower()
        if not word:
            continue
        if low in EVERY:
            out = replace(out, every=low)
        elif low in ("note", "no-note", "nonote"):
            out = replace(out, empty_note=low == "note")
        elif _TIME.match(word):
            out = replace(out, send_at=check_time(word))
        elif "/" in word or word.upper() == "UTC":
            out = replace(out, timezone=check_zone("UTC" if word.upper() == "UTC" else word))
        else:
            try:
                out = replace(out, every="weekly", weekday=check_day(word))
            except ValueError:
                raise ValueError(
                    f"{word!r} is not understood: use daily, weekly, a day (mon), a time (07:30), "
                    "a time zone (Europe/Berlin), note or no-note"
                ) from None
    return out


def _at(day: date, cadence: Cadence) -> datetime:
    hour, minute = (int(p) for p in cadence.send_at.split(":"))
    zone = ZoneInfo(cadence.timezone)
    local = datetime.combine(day, time(hour, minute), zone)
    # a time in the spring gap does not exist: zoneinfo keeps the wall time with the earlier offset;
    # the round trip through UTC moves it to the first real time after the gap
    return local.astimezone(ZoneInfo("UTC")).astimezone(zone)


def last_due(cadence: Cadence, now: datetime) -> datetime:
    """The latest send time at or before `now` (aware, in the cadence's zone)."""
    today = now.astimezone(ZoneInfo(cadence.timezone)).date()
    for back in range(0, 9):
        day = today - timedelta(days=back)
        if cadence.every == "weekly" and day.weekday() != cadence.weekday:
            continue
        due = _at(day, cadence)
        if due <= now:
            return due
    raise AssertionError("unreachable: a send time falls in every 8 days")


def next_due(cadence: Cadence, now: datetime) -> datetime:
    """The first send time after `now`."""
    today = now.astimezone(ZoneInfo(cadence.timezone)).date()
    for ahead in range(0, 9):
        day = today + timedelta(days=ahead)
        if cadence.every == "weekly" and day.weekday() != cadence.weekday:
            continue
        due = _at(day, cadence)
        if due > now:
            return due
    raise AssertionError("unreachable: a send time falls in every 8 days")


def describe(cadence: Cadence) -> str:
    """E.g. "weekly on Monday at 08:00 (Europe/Berlin); a quiet week sends nothing"."""
    when = "daily" if cadence.every == "daily" else f"weekly on {DAYS[cadence.weekday].title()}"
    period = "day" if cadence.every == "daily" else "week"
    quiet = "one line saying so" if cadence.empty_note else "nothing"
    return f"{when} at {cadence.send_at} ({cadence.timezone}); a quiet {period} sends {quiet}"
