"""The web archive's Jinja2 environment (`templates/web/*.j2`): autoescaped HTML and XML, and the
filters that keep scraped data in its place: only http(s) URLs become links, `*emphasis*` written by
feedsvc's own card prose is the only markup made from text, LaTeX becomes sanitised MathML.

Imports `feedsvc.render.markdown` (source labels) and `feedsvc.web.mathml`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from feedsvc.render.markdown import SOURCE_LABELS
from feedsvc.web.mathml import to_mathml

_HTTP = re.compile(r"^https?://[^\s<>\"'\\]+$", re.I)
_EMPHASIS = re.compile(r"\*([^*\n]{1,200})\*")
# inline math as papers write it: `$x_{1}$`, not `$$`, no space just inside the dollars ("$5 and $10" stays)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)([^$]{1,300}?)(?<![\s\\])\$(?![\d$])")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def http_url(url: object) -> str:
    """The URL if it is an absolute http(s) URL, else "" (no javascript:, data: or relative links)."""
    s = str(url or "").strip()
    return s if _HTTP.match(s) else ""


def item_path(key: str) -> str:
    return "/item/" + quote(key, safe=":")


def digest_path(profile: str, day: date) -> str:
    return f"/d/{quote(profile, safe='')}/{day.isoformat()}"


def emphasis(text: object) -> Markup:
    """Escaped text where `*words*` (how card prose marks a thread's name) becomes <em>words</em>."""
    return Markup(_EMPHASIS.sub(r"<em>\1</em>", str(escape(text))))


def prose(text: object) -> Markup:
    """Escaped text whose inline `$...$` formulas become inline MathML (or `<code>` when unreadable)."""
    s = str(text)
    out: list[Markup] = []
    pos = 0
    for m in _INLINE_MATH.finditer(s):
        out.append(escape(s[pos : m.start()]))
        rendered = to_mathml(m.group(1), False)
        code = Markup("<code>") + escape(m.group(0)) + Markup("</code>")
        out.append(Markup(rendered) if rendered else code)
        pos = m.end()
    out.append(escape(s[pos:]))
    return Markup("").join(out)


def mathml(latex: object, display: bool = True) -> Markup | None:
    out = to_mathml(str(latex), display)
    return Markup(out) if out is not None else None


def rfc3339(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{value.isoformat()}T00:00:00Z"


def mask_address(address: str) -> str:
    """`reader@example.org` as `r…r@example.org`: enough to recognise, not to harvest."""
    local, at, domain = address.partition("@")
    if not at:
        return address[:2] + "…"
    shown = local[0] + "…" + local[-1] if len(local) > 2 else local[:1] + "…"
    return f"{shown}@{domain}"


def xml_safe(text: str) -> str:
    """Drop the characters XML 1.0 forbids (control characters a scraped title may carry)."""
    return _NOT_XML.sub("", text)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def css_text() -> str:
    return resources.files("feedsvc.templates").joinpath("web", "style.css.j2").read_text(encoding="utf-8")


def make_environment(root: str = "") -> Environment:
    """The environment for one app; `root` is the path the archive is served under ("" or "/feeds")."""
    env = Environment(
        loader=FileSystemLoader(str(resources.files("feedsvc.templates").joinpath("web"))),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = css_text()
    env.globals.update(
        root=root,
        # a link to a page the static export writes too (`site`), or to one only the app serves (`app_url`)
        site=lambda path: root + path,
        app_url=lambda path: root + path,
        css_href=f"{root}/static/style.css?v={hashlib.sha256(css.encode()).hexdigest()[:12]}",
        item_path=lambda key: root + item_path(key),
        digest_path=lambda profile, day: root + digest_path(profile, day),
        quote=lambda s: quote(str(s), safe=""),
    )
    env.filters.update(
        http_url=http_url,
        emphasis=emphasis,
        prose=prose,
        mathml=mathml,
        rfc3339=rfc3339,
        mask_address=mask_address,
        plural=plural,
        source_label=lambda s: SOURCE_LABELS.get(str(s), str(s)),
    )
    return env


def render(env: Environment, name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)
