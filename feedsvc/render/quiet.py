"""The one line a reader who asked for it receives when nothing cleared the bar that day (or week), in
each channel's form: email (with the settings and unsubscribe links), Telegram, and a Markdown file with
the digest's front matter. Pure: imports `feedsvc.models` and the email renderer's link placeholders.
"""

from __future__ import annotations

import html

from feedsvc.models import Digest, Rendered
from feedsvc.render.email import SETTINGS, UNSUBSCRIBE


def quiet_line(digest: Digest) -> str:
    period = "this week" if digest.span == "week" else "today"
    return f"Nothing cleared the bar {period} for {digest.profile}."


def render_quiet(channel: str, digest: Digest) -> Rendered:
    """`digest` (one without cards) as its one-line note on `channel`."""
    line = quiet_line(digest)
    if channel == "email":
        body = f"{line}\n\nDelivery settings: <{SETTINGS}>\nUnsubscribe: <{UNSUBSCRIBE}>\n"
        return Rendered("email", body, mime="text/plain", subject=f"{digest.title}: nothing cleared the bar")
    if channel == "telegram":
        text = html.escape(line)
        return Rendered("telegram", text, mime="text/html", parts=(text,), part_keys=("",))
    span = "" if digest.span == "day" else f"span: {digest.span}\n"
    front = f'---\ntitle: "{digest.title}"\ndate: {digest.day.isoformat()}\nprofile: "{digest.profile}"\n'
    return Rendered("markdown", f"{front}{span}---\n\n{line}\n", mime="text/markdown")
