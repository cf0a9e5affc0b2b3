"""The email renderer and the equation images.

Real inputs: the demo's two digests (the whole pipeline run on the bundled snapshot into a temporary
SQLite store, then loaded back from it) and the display equations of the recorded papers in
tests/fixtures/papers (see its PROVENANCE.md), read by `feedsvc.cards.fulltext`. Cards marked
"constructed" are hand-made hostile inputs. The screenshot test opens the HTML part in headless Chromium.
"""

from __future__ import annotations

import base64
import html
import io
import re
import subprocess
import threading
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image as PILImage

from feedsvc.cards.equations import key_equation
from feedsvc.cards.fulltext import from_html, from_source
from feedsvc.demo import SNAPSHOT_DAY, run_demo
from feedsvc.models import LINK_MARK, Card, Digest, Discussion, Quote, Rendered, SourceReport
from feedsvc.models import VOTES as MODEL_VOTES
from feedsvc.render import equation_image
from feedsvc.render.email import CONTENT_WIDTH, feedback_link, render_email
from feedsvc.render.equation_image import latex_to_png, normalize, png_size
from feedsvc.store import queries
from feedsvc.store.db import make_engine, session_factory

PAPERS = Path(__file__).parent / "fixtures" / "papers"
BASE = "https://feeds.example.org"
VOTES = tuple(MODEL_VOTES)  # every vote the model names, "more like this" included
CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# --- helpers ----------------------------------------------------------------------------------------


class Page(HTMLParser):
    """The parsed HTML part: its visible text, tags, attributes, and whether every tag is closed."""

    def __init__(self, doc: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(doc)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.chunks).split())

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for a in self.attrs("a")]


def flat(s: str) -> str:
    return " ".join(s.split())


@pytest.fixture(scope="module")
def demo_digests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Digest]:
    """The demo's digests as the store gives them back."""
    data = tmp_path_factory.mktemp("demo") / "data"
    result = run_demo(data, semantic="off")
    engine = make_engine(f"sqlite:///{data / 'feedsvc.db'}")
    try:
        with session_factory(engine)() as session:
            digests = {}
            for built in result.built:
                row = queries.find_digest(session, built.profile, SNAPSHOT_DAY)
                assert row is not None
                digests[built.profile] = queries.load_digest(session, row)
    finally:
        engine.dispose()
    assert len(digests) == 2 and all(d.cards for d in digests.values())
    return digests


@pytest.fixture(scope="module")
def math_digest(demo_digests: dict[str, Digest]) -> Digest:
    """The demo digest whose cards quote key equations (the full-text profile)."""
    d = next(d for d in demo_digests.values() if any(q.is_math for c in d.cards for q in c.punch))
    assert sum(q.is_math for c in d.cards for q in c.punch) >= 3
    return d


def card(**kw) -> Card:  # constructed
    base = dict(
        key="arxiv:2411.00001",
        kind="paper",
        title="A constructed card",
        url="https://arxiv.org/abs/2411.00001",
        domain="Testing",
        time_cost="~5min",
        intuition="Plain intuition.",
        punch_intro="From the abstract:",
        punch=(Quote("It improves by 12%.", "abstract"),),
        significance="Some significance.",
        why="Your *Testing* thread.",
        thread="Testing",
        score=0.5,
    )
    base.update(kw)
    return Card(**base)


def digest(cards: tuple[Card, ...], **kw) -> Digest:  # constructed
    base = dict(
        profile="tester",
        day=date(2024, 11, 28),
        title="Daily Feed - 2024-11-28",
        summary="Today's picks.",
        cards=cards,
        papers_wanted=3,
        videos_wanted=1,
        talk_check="not run.",
        sources=(SourceReport("arxiv", "ok", 10, 5, 1, "scanned 10 items."),),
    )
    base.update(kw)
    return Digest(**base)


def with_data_uris(r: Rendered) -> str:
    doc = r.html
    for im in r.images:
        doc = doc.replace(f"cid:{im.cid}", "data:image/png;base64," + base64.b64encode(im.png).decode())
    return doc


def check_png(png: bytes) -> tuple[int, int]:
    """A valid PNG with ink on it; its size."""
    size = png_size(png)
    assert size is not None
    with PILImage.open(io.BytesIO(png)) as im:
        im.verify()
    with PILImage.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == size
        lo, hi = im.convert("L").getextrema()
        assert lo < 100 and hi > 200, "an equation image is dark ink on a light background"
    return size


# --- both parts carry every card -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["seed-reader", "graph-learning"])
def test_every_card_is_in_both_parts(demo_digests: dict[str, Digest], profile: str) -> None:
    d = demo_digests[profile]
    r = render_email(d, BASE)
    assert (r.channel, r.mime) == ("email", "multipart/alternative")
    papers = sum(c.kind == "paper" for c in d.cards)
    videos = sum(c.kind == "video" for c in d.cards)
    assert r.subject == f"{d.title}: {papers} paper{'s' * (papers != 1)}, {videos} video{'s' * (videos != 1)}"
    page = Page(r.html)
    text, body = page.text, flat(r.body)
    hrefs = page.hrefs()
    alts = {a["alt"] for a in page.attrs("img")}
    for c in d.cards:
        for field in (c.title, c.domain, c.time_cost, c.intuition, c.significance, c.punch_intro):
            assert flat(field) in text and flat(field) in body
        why = flat(c.why)
        assert why in body and why.replace("*", "") in text  # *thread* is <em> in HTML
        assert c.url in hrefs and f"<{c.url}>" in r.body
        for q in c.punch:
            if q.is_math:
                assert q.text.strip() in r.body.replace("\n    ", "\n")  # LaTeX, indented, in the text part
                assert flat(q.text) in alts or flat(q.text) in text
            else:
                assert flat(q.text) in text and flat(q.text) in body
            assert q.where in text and q.where in body
        deeper = f"{BASE}/item/{c.key}"
        assert deeper in hrefs and f"<{deeper}>" in r.body
        for vote in VOTES:
            link = feedback_link(vote, c.key)
            assert link in hrefs and f"<{link}>" in r.body
            assert r.html.count(link) == 1 and r.body.count(link) == 1
    archive = f"{BASE}/d/{d.profile}/{d.day.isoformat()}"
    assert archive in hrefs and f"<{archive}>" in r.body
    assert f"{LINK_MARK}unsubscribe" in hrefs and f"<{LINK_MARK}unsubscribe>" in r.body
    for s in d.sources:
        assert flat(s.note) in text and flat(s.note) in body
    assert flat(d.talk_check).replace("*", "") in text and flat(d.talk_check) in body


def test_placeholders_survive_a_plain_string_replace_in_both_parts(math_digest: Digest) -> None:
    """What the email channel does per recipient: replace each whole placeholder URL with a signed one."""
    r = render_email(math_digest, BASE)
    body, doc = r.body, r.html
    for c in math_digest.cards:
        for vote in VOTES:
            link = feedback_link(vote, c.key)
            assert html.escape(link, quote=True) == link  # nothing in it that HTML escapes differently
            key = unquote(link.removeprefix(f"{LINK_MARK}fb/{vote}/"))
            assert key == c.key
            signed = f"{BASE}/f/token-{vote}-{len(key)}"
            assert body.count(link) == 1 and doc.count(link) == 1
            body, doc = body.replace(link, signed), doc.replace(link, signed)
    for mark, url in ((f"{LINK_MARK}unsubscribe", f"{BASE}/u/t"), (f"{LINK_MARK}settings", f"{BASE}/s/t")):
        assert body.count(mark) == 1 and doc.count(mark) == 1
        body, doc = body.replace(mark, url), doc.replace(mark, url)
    assert LINK_MARK not in body and LINK_MARK not in doc


def test_without_a_base_url_there_are_no_web_links_but_the_placeholders_stay(math_digest: Digest) -> None:
    r = render_email(math_digest)
    assert "/item/" not in r.html + r.body and "/d/" not in r.html + r.body
    assert (
        r.html.count(f"{LINK_MARK}fb/")
        == r.body.count(f"{LINK_MARK}fb/")
        == len(VOTES) * len(math_digest.cards)
    )
    with pytest.raises(ValueError, match="base_url"):
        render_email(math_digest, "javascript:alert(1)")


def test_rendering_is_pure(math_digest: Digest) -> None:
    assert render_email(math_digest, BASE) == render_email(math_digest, BASE)


# --- the HTML part is self-contained and well formed -----------------------------------------------


@pytest.mark.parametrize("profile", ["seed-reader", "graph-learning"])
def test_html_is_balanced_inline_styled_and_self_contained(
    demo_digests: dict[str, Digest], profile: str
) -> None:
    r = render_email(demo_digests[profile], BASE)
    page = Page(r.html)
    assert page.errors == []
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "form", "style", "svg"}
    assert page.attrs("html")[0].get("lang") == "en"
    assert len(page.attrs("h1")) == 1 and len(page.attrs("h2")) == len(demo_digests[profile].cards)
    for _, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), attrs
        assert "url(" not in (attrs.get("style") or "") and "@import" not in (attrs.get("style") or "")
        if "src" in attrs:
            assert (attrs["src"] or "").startswith("cid:")
    for href in page.hrefs():
        assert re.match(r"^(https?://|feedsvc-link:)", href), href
    assert "class=" not in r.html  # every style is inline: no stylesheet to rely on
    assert all(a.get("style") for t, a in page.tags if t in {"td", "p", "h1", "h2", "a", "blockquote"})


def test_every_equation_is_an_inline_image_with_its_latex_as_alt(math_digest: Digest) -> None:
    r = render_email(math_digest, BASE)
    page = Page(r.html)
    imgs = page.attrs("img")
    latex = [flat(q.text) for c in math_digest.cards for q in c.punch if q.is_math]
    assert len(imgs) == len(r.images) == len(set(latex)) >= 3  # the demo's three key equations all render
    cids = [im.cid for im in r.images]
    assert len(set(cids)) == len(cids)
    for im in r.images:
        assert re.fullmatch(r"eq\d+\.[0-9a-f]{12}@feedsvc", im.cid)
        width, _ = check_png(im.png)
        assert width > 100
    by_cid = {im.cid: im for im in r.images}
    for attrs in imgs:
        cid = (attrs["src"] or "").removeprefix("cid:")
        assert cid in by_cid and attrs["alt"] == by_cid[cid].alt and attrs["alt"] in latex
        assert 0 < int(attrs["width"] or 0) <= CONTENT_WIDTH and int(attrs["height"] or 0) > 0


def test_a_formula_mathtext_cannot_draw_is_shown_as_latex_code() -> None:  # constructed card
    cases = r"\pi(x)=\begin{cases}0&x<0\\x&x\geq 0\end{cases}"  # the shape of a real one, 2202.00665
    r = render_email(digest((card(punch=(Quote(cases, "arXiv HTML, eq. (3)", True),)),)))
    page = Page(r.html)
    assert r.images == () and page.attrs("img") == []
    assert flat(cases) in page.text and "<code" in r.html
    assert cases in r.body


# --- hostile scraped strings (constructed) ---------------------------------------------------------


def test_scraped_html_and_links_are_escaped_or_dropped() -> None:  # constructed hostile card
    evil = card(
        key='url:https://x.org/a?b=1&c="d"<e> f.',
        title='<script>alert("t")</script> Title',
        url="javascript:alert(1)",
        domain="<b>bold</b>",
        intuition="<img src=x onerror=alert(1)> & more",
        punch=(
            Quote("</blockquote><script>alert(2)</script>", "abstract"),
            Quote(r"a</code><script>alert(3)</script>\begin{pmatrix}1\end{pmatrix}", "abstract", True),
        ),
        why="*<i>x</i>*",
        discussions=(
            Discussion("Hacker News", "javascript:alert(4)", 10, 2),
            Discussion("Lobsters", "https://lobste.rs/s/abc", 5, 1),
        ),
        talk_for="<svg onload=alert(5)>",
        exploration=True,
    )
    r = render_email(digest((evil,), title="<script>x</script>"), BASE)
    page = Page(r.html)
    assert page.errors == []
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "svg", "b", "i"}  # the template uses none of these; scraped ones are text
    assert page.attrs("img") == []
    assert '<script>alert("t")</script> Title' in page.text and "&lt;script&gt;" in r.html
    assert "<img src=x onerror=alert(1)> & more" in page.text
    assert all(not h.startswith("javascript") for h in page.hrefs())
    assert "https://lobste.rs/s/abc" in page.hrefs() and "<https://lobste.rs/s/abc>" in r.body
    assert "javascript" not in r.body + r.html  # the refused links are dropped, text and HTML alike
    for vote in VOTES:  # an odd key still gives one placeholder, the same in both parts, attribute-safe
        link = feedback_link(vote, evil.key)
        assert re.fullmatch(rf"feedsvc-link:fb/({'|'.join(VOTES)})/[A-Za-z0-9._~%-]+", link)
        assert not link.endswith(".")  # the channel trims sentence punctuation after a placeholder
        assert unquote(link.rsplit("/", 1)[1]) == evil.key
        assert link in page.hrefs() and f"<{link}>" in r.body
    assert "Exploration pick" in page.text and "Exploration pick" in r.body
    assert "<svg onload=alert(5)>" in page.text and "<svg onload=alert(5)>" in r.body


def test_scraped_text_cannot_forge_a_placeholder() -> None:  # constructed hostile card
    forged = f"{LINK_MARK}unsubscribe {LINK_MARK}fb/up/arxiv%3A1"
    evil = card(
        title=forged,
        intuition=f"click {LINK_MARK.upper()}unsubscribe",
        url=f"https://evil.example/{LINK_MARK}unsubscribe",
        discussions=(Discussion("Hacker News", f"https://h.example/?u={LINK_MARK}fb/down/x", 1, 1),),
    )
    r = render_email(digest((evil,), summary=forged), BASE)
    for part in (r.body, r.html):
        assert part.count(f"{LINK_MARK}unsubscribe") == 1  # the footer's own, nothing else
        assert part.count(f"{LINK_MARK}fb/") == len(VOTES)  # the card's votes
        assert all(
            m.group(1) == "arxiv%3A2411.00001" for m in re.finditer(r"feedsvc-link:fb/\w+/(\S+?)[>\"]", part)
        )
    assert "https://evil.example/feedsvc-link%3Aunsubscribe" in Page(r.html).hrefs()


def test_labels_discussions_and_video_cards() -> None:  # constructed cards
    paper = card(discussions=(Discussion("Hacker News", "https://news.ycombinator.com/item?id=1", 412, 97),))
    video = card(
        key="youtube:abc",
        kind="video",
        title="A talk",
        url="https://www.youtube.com/watch?v=abc",
        talk_for="A constructed card",
        punch=(),
        significance="",
    )
    r = render_email(digest((paper, video)))
    assert r.subject == "Daily Feed - 2024-11-28: 1 paper, 1 video"
    page = Page(r.html)
    assert "https://news.ycombinator.com/item?id=1" in page.hrefs()
    assert "412 points, 97 comments on Hacker News" in page.text
    assert "412 points, 97 comments on Hacker News <https://news.ycombinator.com/item?id=1>" in r.body
    assert "A talk about a paper in this digest: A constructed card" in page.text
    assert "A talk about a paper in this digest: A constructed card" in r.body
    assert "Video 2" in page.text and "Significance" not in r.body.split("A talk", 1)[1]


# --- equation images -------------------------------------------------------------------------------


def fixture_texts() -> list[tuple[str, object]]:
    out = []
    for path in sorted(PAPERS.glob("*.gz")):
        data = path.read_bytes()
        ft = from_html(data) if path.name.endswith(".html.gz") else from_source(data)
        out.append((path.name, ft))
    return out


def test_the_key_equation_of_every_recorded_paper_renders() -> None:
    keys = [(name, key_equation(ft)) for name, ft in fixture_texts()]
    quoted = [(name, q) for name, q in keys if q is not None]
    assert len(quoted) >= 10
    for name, q in quoted:
        png = latex_to_png(q.text)
        assert png is not None, (name, q.text)
        check_png(png)


def test_most_display_equations_of_the_recorded_html_render() -> None:
    """The arXiv HTML versions (what the pipeline reads first): at least 95% render; the rest are
    cases and matrices, which mathtext cannot lay out, and they come back as None, not an error."""
    eqs = [e.latex for name, ft in fixture_texts() if name.endswith(".html.gz") for e in ft.equations]
    assert len(eqs) > 150
    failed = [e for e in eqs if latex_to_png(e) is None]
    assert len(failed) / len(eqs) <= 0.05, failed
    assert all(re.search(r"\\begin\{(cases|[pb]?matrix)\}", e) for e in failed), failed


def test_normalize_rewrites_what_mathtext_lacks_and_keeps_the_rest() -> None:  # constructed inputs
    rows = normalize(
        r"\begin{aligned} \mathcal{L}(\theta) &\vcentcolon= \operatorname*{arg\,min}_y \tfrac12\|y\|^2"
        r" \label{eq:x} \\ &= \bm{x}^\top \mathbb E[\lVert z\rVert] \nonumber \tag{3} \end{aligned}"
    )
    assert rows is not None and len(rows) == 2
    assert "label" not in "".join(rows) and "tag" not in "".join(rows) and "&" not in "".join(rows)
    assert r"\coloneq" in rows[0] and r"\operatorname{arg\,min}_y" in rows[0] and r"\frac{1}{2}" in rows[0]
    assert r"\boldsymbol{x}^\top" in rows[1] and r"\mathbb{E}" in rows[1] and r"\Vert z\Vert" in rows[1]
    assert normalize(r"x \xrightarrow{n\to\infty} 0") == [r"x \overset{n\to\infty}{\longrightarrow} 0"]
    assert normalize(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}") is None
    assert normalize(r"a \cancel{b}") is None
    for latex in (rows[0], rows[1]):
        assert latex_to_png(latex) is not None


@pytest.mark.parametrize(
    "latex",
    ["", "   ", r"\frac{", "$x$", r"\undefinedmacro{x}", "{" * 300 + "x" + "}" * 300, "x" * 5000, "x^", "}"],
)
def test_what_cannot_be_drawn_gives_none_not_an_error(latex: str) -> None:  # constructed inputs
    assert latex_to_png(latex) is None


def test_a_glyph_no_font_has_gives_none() -> None:  # constructed: a CJK character, not in mathtext's fonts
    assert latex_to_png("x = \u4e2d") is None
    assert latex_to_png("x ∈ ℝ") is not None


def test_concurrent_renders_match_serial_ones() -> None:
    formulas = [rf"\sum_{{k=0}}^{{{n}}} \theta_k \Lambda^k + \frac{{{n}}}{{2}}" for n in range(8)]
    equation_image._render.cache_clear()
    serial = [latex_to_png(f, dpi=100) for f in formulas]
    equation_image._render.cache_clear()
    results: dict[int, bytes | None] = {}

    def draw(i: int) -> None:
        results[i] = latex_to_png(formulas[i], dpi=100)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(len(formulas))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p is not None for p in serial)
    assert [results[i] for i in range(len(formulas))] == serial


# --- what a reader sees --------------------------------------------------------------------------


def screenshot(doc: str, tmp_path: Path, name: str) -> Path:
    page = tmp_path / f"{name}.html"
    page.write_text(doc, encoding="utf-8")
    shot = tmp_path / f"{name}.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=700,2000",
        f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert shot.exists(), f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return shot


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: no screenshot")
def test_screenshot_of_the_demo_email(math_digest: Digest, tmp_path: Path) -> None:
    r = render_email(math_digest, BASE)
    shot = screenshot(with_data_uris(r), tmp_path, "email-demo")
    with PILImage.open(shot) as im:
        assert im.size == (700, 2000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50, "the screenshot is blank"
        # the white card column is there, on the page's grey background
        assert rgb.getpixel((40, 300)) == (255, 255, 255) and rgb.getpixel((3, 300)) != (255, 255, 255)
    # the same page with the images missing differs where the equations are: they were drawn
    blank = screenshot(r.html, tmp_path, "email-no-images")
    with PILImage.open(shot) as a, PILImage.open(blank) as b:
        assert a.convert("RGB").tobytes() != b.convert("RGB").tobytes()
    print(f"screenshot artifact: {shot}")
