"""Telegram: equations as Unicode, the HTML renderer within Telegram's rules, and the channel against a
test double of the Bot API over loopback HTTP with python-telegram-bot's real request layer.

Digests are the demo's (built from the recorded snapshot by `run_demo`); cards marked "constructed"
are hostile or oversized on purpose. Every part is checked twice: by the double's Telegram-HTML parser
and, independently, by the standard library's `html.parser`. Waits go to recording test doubles of
sleep and clock (`FakeSleep`, `FakeTime`), so no test waits or measures time.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import itertools
import json
import logging
import re
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fakes import FakeSleep
from telegram import Bot
from telegram_double import HtmlError, TelegramDouble, parse_html, utf16_len

from feedsvc.cards.equations import key_equation
from feedsvc.cards.fulltext import from_html, from_source
from feedsvc.deliver.telegram import (
    Callback,
    TelegramChannel,
    callback_data,
    key_hash,
    parse_callback,
    vote_keyboard,
)
from feedsvc.demo import run_demo
from feedsvc.models import Card, DeliveryError, Digest, Discussion, Quote, Recipient, SourceReport
from feedsvc.render import telegram as render
from feedsvc.render.math_text import SUBSCRIPTS, SUPERSCRIPTS, latex_to_unicode
from feedsvc.render.telegram import render_telegram

PAPERS = Path(__file__).parent / "fixtures" / "papers"
BASE = "https://feeds.example.org"
CHAT = 4242
GREEK = {
    "alpha": "α",
    "beta": "β",
    "theta": "θ",
    "Lambda": "Λ",
    "sigma": "σ",
    "Delta": "Δ",
    "pi": "π",
    "lambda": "λ",
    "mu": "μ",
    "phi": "ϕ",
    "epsilon": "ϵ",
    "nabla": "∇",
    "partial": "∂",
    "sum": "∑",
}


# --- shared material ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Digest]:
    """The demo's two digests (seed-reader: abstract-only cards; graph-learning: key equations)."""
    result = run_demo(tmp_path_factory.mktemp("demo") / "data", semantic="off")
    return {b.profile: b.digest for b in result.built}


def fixture_equations() -> list[tuple[str, str, bool]]:
    """(paper file, LaTeX, is the card's key equation) for every display equation of the fixture papers."""
    found = []
    for path in sorted(PAPERS.glob("*.gz")):
        data = path.read_bytes()
        ft = from_html(gzip.decompress(data)) if path.name.endswith(".html.gz") else from_source(data)
        found += [(path.name, eq.latex, False) for eq in ft.equations]
        key = key_equation(ft)
        if key is not None:
            found.append((path.name, key.text, True))
    return found


class TagCheck(HTMLParser):
    """The standard library's view of a part: only Telegram's tags, balanced, http(s) links."""

    ALLOWED = frozenset({"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.ALLOWED:
            self.problems.append(f"tag {tag}")
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self.links.append(href)
            if not re.match(r"https?://", href):
                self.problems.append(f"href {href!r}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing {tag}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")


def check_part(part: str) -> str:
    """Assert a part obeys Telegram's rules by both parsers; its visible text."""
    visible, _ = parse_html(part)  # raises HtmlError like Telegram's "can't parse entities"
    checker = TagCheck()
    checker.feed(part)
    checker.close()
    assert checker.problems == [] and checker.stack == [], (checker.problems, checker.stack, part[:300])
    assert "".join(checker.text) == visible  # the two parsers agree on what the reader sees
    assert utf16_len(part) <= 4096 and utf16_len(visible.strip()) <= 4096
    return visible


def card(**kw: object) -> Card:
    """A constructed card (the default is ordinary; tests make it hostile or huge)."""
    base: dict[str, object] = dict(
        key="arxiv:2411.99999",
        kind="paper",
        title="A constructed card",
        url="https://arxiv.org/abs/2411.99999",
        domain="RL theory",
        time_cost="~20min skim",
        intuition="The idea.",
        punch_intro="From the abstract:",
        punch=(Quote(r"O(H \cdot \log(L/H))", "abstract", True),),
        significance="What changes.",
        why="Your *RL* thread.",
        thread="RL",
        score=0.5,
    )
    base.update(kw)
    return Card(**base)  # type: ignore[arg-type]


def digest_of(*cards: Card) -> Digest:
    return Digest(
        profile="constructed",
        day=date(2024, 11, 28),
        title="Daily Feed - 2024-11-28",
        summary="Constructed.",
        cards=cards,
        papers_wanted=3,
        videos_wanted=0,
        talk_check="not run.",
        sources=(SourceReport("arxiv", "ok", 10, 5, len(cards), "scanned 10 items."),),
    )


class FakeTime:
    """A test double of the clock and sleep together: sleeping advances the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def tg() -> Iterator[TelegramDouble]:
    with TelegramDouble() as double:
        yield double


def channel(tg: TelegramDouble, **kw: object) -> TelegramChannel:
    options: dict[str, object] = dict(
        base_url=tg.api_url, chat_interval=0.0, global_rate=0.0, sleep=FakeSleep(), jitter=0.0
    )  # exact waits; the jitter is tested in test_retry.py
    options.update(kw)
    return TelegramChannel(tg.token, **options)  # type: ignore[arg-type]


# --- equations as Unicode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latex", "expected"),
    [
        ("x^2", "x²"),
        ("x_i", "xᵢ"),
        ("x_{ij}", "xᵢⱼ"),
        ("x_{s,i}", "x_(s,i)"),  # no subscript comma: the script in parentheses
        (r"\frac{a}{b}", "a/b"),
        (r"\frac{a+b}{2n}", "(a+b)/(2n)"),
        (r"\sum_{k=0}^{K-1}", "∑ₖ₌₀ᴷ⁻¹"),
        (r"a \le b", "a ≤ b"),
        (r"\mathbb{E}[\|x\|]", "𝔼[‖x‖]"),
        (r"\hat{y}", "ŷ"),
        (r"\mathbb{R}^{n\times K}", "ℝ^(n×K)"),
        (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", "a = b\nc = d"),
        (r"\text{ and }", "and"),
    ],
)
def test_latex_to_unicode_small_cases(latex: str, expected: str) -> None:
    assert latex_to_unicode(latex) == expected


def test_the_demo_key_equations_read_as_unicode(digests: dict[str, Digest]) -> None:
    quotes = [q for d in digests.values() for c in d.cards for q in c.punch if q.is_math]
    assert len(quotes) >= 3  # the graph-learning profile's three full-text cards
    for q in quotes:
        out = latex_to_unicode(q.text)
        assert out and out != q.text and "\\" not in out, (q.text, out)
        for name, letter in GREEK.items():
            if re.search(rf"\\{name}(?![A-Za-z])", q.text):
                assert letter in out, (name, out)
        for letter in re.findall(r"\\mathbb\{([A-Z])\}", q.text):
            assert {"R": "ℝ", "E": "𝔼", "S": "𝕊"}.get(letter, "?") in out
    by_source = {q.text: latex_to_unicode(q.text) for q in quotes}
    # 1606.09375 eq. (5), the layer's filtering of the input maps, read by hand (sub- and superscripts
    # become Unicode small letters where they exist, parenthesised groups where they do not)
    chebnet = next(out for src, out in by_source.items() if src.startswith(r"y_{s,j}"))
    assert chebnet == "y_(s,j) = ∑ᵢ₌₁^(Fᵢₙ)g_(θ_(i,j))(L)x_(s,i) ∈ ℝⁿ,"


def test_every_fixture_equation_converts_without_leftover_latex() -> None:
    equations = fixture_equations()
    assert len(equations) > 400 and sum(1 for e in equations if e[2]) >= 6
    for name, latex, _ in equations:
        out = latex_to_unicode(latex)
        assert out != latex.strip(), (name, latex[:200])  # it parsed: no fallback to the source
        assert not re.search(r"\\[A-Za-z]", out), (name, out[:200])
        for macro, letter in GREEK.items():
            if re.search(rf"\\{macro}(?![A-Za-z])", latex):
                forms = {letter, SUPERSCRIPTS.get(letter, letter), SUBSCRIPTS.get(letter, letter)}
                assert any(f in out for f in forms), (name, macro, out[:200])


@pytest.mark.parametrize(
    "bad",
    [r"\frac{a", "}{", r"\begin{aligned} x", r"x^{2", r"\sqrt[3"],  # constructed broken LaTeX
)
def test_broken_latex_comes_back_as_its_source(bad: str) -> None:
    assert latex_to_unicode(bad) == bad.strip()


def test_absurd_input_never_raises() -> None:  # constructed
    deep = "{" * 3000 + "x" + "}" * 3000
    assert latex_to_unicode(deep) in ("x", deep)
    assert latex_to_unicode("") == ""
    assert latex_to_unicode("x" * 50_000) == "x" * 50_000  # over the input limit: the source


# --- the renderer -------------------------------------------------------------------------------------------


def test_the_demo_digests_render_within_telegrams_rules(digests: dict[str, Digest]) -> None:
    for d in digests.values():
        r = render_telegram(d, BASE)
        assert r.channel == "telegram" and r.mime == "text/html" and len(r.parts) == len(r.part_keys)
        visible = [check_part(p) for p in r.parts]
        assert r.part_keys[0] == "" and r.part_keys[-1] == ""
        assert [k for k in dict.fromkeys(r.part_keys) if k] == [
            c.key for c in d.cards
        ]  # every card, in order
        papers = sum(c.kind == "paper" for c in d.cards)
        videos = sum(c.kind == "video" for c in d.cards)
        assert f"{papers} paper pick{'s' if papers != 1 else ''} + {videos} video pick" in visible[0]
        assert d.shortfall == "" or d.shortfall in visible[0]
        assert f'href="{BASE}/d/{d.profile}/{d.day.isoformat()}"' in r.parts[0]
        assert visible[-1].startswith("Source-discovery note")
        for c in d.cards:
            text = "\n".join(v for v, k in zip(visible, r.part_keys, strict=True) if k == c.key)
            parts = "\n".join(p for p, k in zip(r.parts, r.part_keys, strict=True) if k == c.key)
            assert render.prose(c.title) in text and f'<a href="{c.url}">' in parts
            assert f'href="{BASE}/item/{c.key}"' in parts
            latex = tuple(q.text for q in c.punch if q.is_math)
            assert (render.MATH_OPEN in parts) == bool(latex)
            assert r.equations.get(c.key, ()) == latex  # what the channel's equation button relies on
            for q in c.punch:
                assert (latex_to_unicode(q.text) if q.is_math else render.prose(q.text)) in text
        assert "$" not in visible[1]  # inline math in the first card's title is Unicode now


def test_without_a_base_url_there_are_no_web_links(digests: dict[str, Digest]) -> None:
    r = render_telegram(digests["graph-learning"])
    assert "/item/" not in r.body and "/d/graph-learning" not in r.body
    assert render_telegram(digests["graph-learning"]) == r  # pure


def test_hostile_strings_come_out_as_text() -> None:  # constructed hostile card
    evil = card(
        title='<script>alert("x")</script> & <b>',
        url="javascript:alert(1)",
        intuition="<img src=x onerror=alert(1)> a<b & c>d &amp; &#0; 𝔼 \ud83d\ude00 lone \ud800",
        punch=(Quote("a<b and <script>", "abstract", True), Quote('<i>5%</i> & "quoted"', "abstract")),
        why="</b><a href='javascript:x'>",
        discussions=(
            Discussion("Hacker News", "javascript:alert(1)", 3, 4),
            Discussion("Lobsters", 'https://lobste.rs/s/x"onmouseover="y', 5, 6),
        ),
        domain="<u>d</u>",
    )
    r = render_telegram(digest_of(evil), BASE)
    for part in r.parts:
        check_part(part)
    body = r.body
    assert not re.search(r"<(script|img)\b", body) and not re.search(r"<a\s[^>]*javascript", body)
    card_text = "".join(parse_html(p)[0] for p, k in zip(r.parts, r.part_keys, strict=True) if k)
    assert '<script>alert("x")</script> & <b>' in card_text  # the reader sees the title as it was
    assert "<img src=x onerror=alert(1)> a<b & c>d &amp; &#0; 𝔼 😀 lone \ufffd" in card_text
    assert 'href="https://lobste.rs/s/x&quot;onmouseover=&quot;y"' in body  # attribute stays one attribute


def test_a_huge_card_splits_between_paragraphs_and_cuts_only_what_cannot_fit() -> None:  # constructed
    long_intuition = "𝔼&<x> " * 3000  # 18,000 characters, each astral 𝔼 two UTF-16 units, escapes grow it
    huge = card(
        intuition=long_intuition,
        significance="S" * 3000,
        punch=tuple(Quote(f"Sentence {i} with 12% more. " * 20, "abstract") for i in range(6)),
        discussions=tuple(
            Discussion("Hacker News", f"https://news.ycombinator.com/item?id={i}", i, i) for i in range(40)
        ),
    )
    small = card(key="arxiv:2411.00001", title="Small")
    r = render_telegram(digest_of(huge, small), BASE)
    mine = [p for p, k in zip(r.parts, r.part_keys, strict=True) if k == huge.key]
    assert len(mine) >= 4 and r.part_keys.count(small.key) == 1
    visible = [check_part(p) for p in mine]
    joined = "\n\n".join(visible)
    assert joined.count(render.CUT_NOTE) == 1  # only the intuition is longer than a whole message
    kept = joined.split("Intuition: ", 1)[1].split(render.CUT_NOTE, 1)[0]
    assert long_intuition.startswith(kept) and len(kept) > 1000  # a prefix, cut at a character boundary
    for needle in ["S" * 3000, "Sentence 5", "39 points, 39 comments", "Deeper"]:
        assert needle in joined
    order = [
        joined.index(s)
        for s in (
            "Intuition:",
            "Concrete punch:",
            "Significance:",
            "Why it matches:",
            "Discussion:",
            "Deeper:",
        )
    ]
    assert order == sorted(order)


# --- the double itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<script>x</script>", 'Unsupported start tag "script"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("a & b", "Character entity expected"),
        ("x > y", "Unescaped '>'"),
        ('<a href="javascript:alert(1)">x</a>', "Unsupported URL"),
        ("<blockquote><blockquote>x</blockquote></blockquote>", "can't be nested"),
        ("<pre><b>x</b></pre>", "can't contain other entities"),
        ("<br>", 'Unsupported start tag "br"'),
    ],
)
def test_the_double_refuses_what_telegram_refuses(text: str, reason: str) -> None:
    with pytest.raises(HtmlError, match=re.escape(reason)):
        parse_html(text)


def test_the_double_counts_visible_utf16_and_answers_in_telegrams_shape(tg: TelegramDouble) -> None:
    visible, entities = parse_html('&lt;&amp;&#128512; <b>b</b> <a href="https://x.org/?a=1&amp;b=2">l</a>')
    assert visible == "<&😀 b l"
    assert {"type": "text_link", "offset": 7, "length": 1, "url": "https://x.org/?a=1&b=2"} in entities
    url = f"{tg.base_url}{tg.token}/sendMessage"
    fits = httpx.post(url, data={"chat_id": CHAT, "text": "&lt;" * 4096, "parse_mode": "HTML"})
    assert fits.status_code == 200 and fits.json()["result"]["text"] == "<" * 4096  # 16,384 raw, 4,096 seen
    too_long = httpx.post(url, data={"chat_id": CHAT, "text": "😀" * 2049})  # 4,098 UTF-16 units
    assert too_long.status_code == 400
    assert too_long.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message is too long",
    }
    bad_html = httpx.post(url, data={"chat_id": CHAT, "text": "<b>x", "parse_mode": "HTML"}).json()
    assert bad_html["description"].startswith("Bad Request: can't parse entities: ")
    button = {"inline_keyboard": [[{"text": "x", "callback_data": "d" * 65}]]}
    data = httpx.post(url, data={"chat_id": CHAT, "text": "x", "reply_markup": json.dumps(button)}).json()
    assert data["description"] == "Bad Request: BUTTON_DATA_INVALID"
    markup = httpx.post(url, data={"chat_id": CHAT, "text": "x", "reply_markup": "{not json"}).json()
    assert markup["description"] == "Bad Request: can't parse reply keyboard markup JSON object"
    assert httpx.post(f"{tg.base_url}wrong:token/getMe").status_code == 401


def test_python_telegram_bot_reads_the_doubles_updates(tg: TelegramDouble) -> None:
    tg.enqueue_message(CHAT, "/start abc")
    tg.enqueue_callback(CHAT, "f:7:u:arxiv:2411.18612", message_id=1)

    async def run() -> None:
        async with Bot(tg.token, base_url=tg.base_url) as bot:
            assert bot.username == "feedsvc_test_bot"
            await bot.set_my_commands([("start", "Subscribe"), ("stop", "Unsubscribe")])
            assert [c.command for c in await bot.get_my_commands()] == ["start", "stop"]
            updates = await bot.get_updates(timeout=5)
            message, query = updates[0].message, updates[1].callback_query
            assert message is not None and message.text == "/start abc"
            assert message.entities[0].type == "bot_command" and message.chat.id == CHAT
            assert query is not None and query.data == "f:7:u:arxiv:2411.18612"
            assert await query.answer("Noted") is True
            again = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
            assert again == ()  # confirmed, and the empty long poll ends after the double's short wait
            tg.enqueue_message(CHAT, "/stop")
            await bot.delete_webhook(drop_pending_updates=True)
            assert await bot.get_updates(timeout=0) == ()

    asyncio.run(run())
    assert tg.answered[0]["text"] == "Noted"
    assert [c.method for c in tg.calls].count("getUpdates") == 3


# --- callback data ------------------------------------------------------------------------------------------


def test_callback_data_round_trips_within_64_bytes() -> None:
    assert callback_data(7, "up", "arxiv:2411.18612") == "f:7:u:arxiv:2411.18612"
    assert callback_data(7, "equation", "arxiv:2411.18612") == "e:7:arxiv:2411.18612"
    assert parse_callback("f:7:d:arxiv:2411.18612") == Callback(7, "down", key="arxiv:2411.18612")
    assert parse_callback("e:7:youtube:abcdefghijk") == Callback(7, "equation", key="youtube:abcdefghijk")
    long_key = "url:https://example.org/" + "ü" * 80
    for action in ("up", "down", "more", "less", "equation"):
        data = callback_data(123456789, action, long_key)
        assert len(data.encode()) <= 64
        parsed = parse_callback(data)
        assert parsed == Callback(123456789, action, key_hash=key_hash(long_key))  # type: ignore[arg-type]
    for junk in ["", "f:7:x:arxiv:1", "f:-1:u:arxiv:1", "e:7:nokey", "f:7:u:" + "a:" * 40, None, "hello"]:
        assert parse_callback(junk) is None
    with pytest.raises(ValueError):
        callback_data(7, "delete", "arxiv:1")


def test_the_vote_keyboard_marks_the_chosen_vote() -> None:
    plain = vote_keyboard(7, "arxiv:1", has_equation=True)
    labels = [[b.text for b in row] for row in plain.inline_keyboard]
    assert labels == [["👍", "👎", "More like this", "Less like this"], ["∑ Equation image"]]
    voted = vote_keyboard(7, "arxiv:1", has_equation=False, voted="down")
    assert [[b.text for b in row] for row in voted.inline_keyboard] == [
        ["👍", "👎 ✓", "More like this", "Less like this"]
    ]
    assert [parse_callback(b.callback_data).action for b in voted.inline_keyboard[0]] == [
        "up",
        "down",
        "more",
        "less",
    ]


# --- the channel against the double -------------------------------------------------------------------------


def test_parts_arrive_in_order_with_keyboards(tg: TelegramDouble, digests: dict[str, Digest]) -> None:
    d = digests["graph-learning"]
    r = render_telegram(d, BASE)
    progress: list[tuple[int, str]] = []
    with channel(tg) as ch:
        ids = ch.send(
            r, Recipient(d.profile, "telegram", str(CHAT), 7), on_part=lambda n, m: progress.append((n, m))
        )
    sent = tg.messages(CHAT)
    assert [m.params["text"] for m in sent] == list(r.parts)
    assert all(
        m.params["parse_mode"] == "HTML" and m.params["link_preview_options"] == {"is_disabled": True}
        for m in sent
    )
    assert ids.split(",") == [str(m.answer["result"]["message_id"]) for m in sent]
    assert progress == [(i + 1, mid) for i, mid in enumerate(ids.split(","))]
    math_keys = {c.key for c in d.cards if any(q.is_math for q in c.punch)}
    for message, key in zip(sent, r.part_keys, strict=True):
        if not key:
            assert "reply_markup" not in message.params
            continue
        buttons = [b for row in message.params["reply_markup"]["inline_keyboard"] for b in row]
        callbacks = [parse_callback(b["callback_data"]) for b in buttons]
        assert {c.action for c in callbacks} == (
            {"up", "down", "more", "less"} | ({"equation"} if key in math_keys else set())
        )
        assert all(c.recipient_id == 7 and c.key == key for c in callbacks)


def test_a_flood_answer_is_waited_out_and_nothing_is_sent_twice(tg: TelegramDouble, digests) -> None:
    r = render_telegram(digests["seed-reader"])
    sleep = FakeSleep()
    tg.fail_next(1, "flood", chat_id=CHAT, retry_after=3)
    with channel(tg, sleep=sleep) as ch:
        ch.send(r, Recipient("seed-reader", "telegram", str(CHAT), 1))
    assert sleep.calls == [3.0]
    assert [m.params["text"] for m in tg.messages(CHAT)] == list(r.parts)
    assert [c.status for c in tg.calls_to("sendMessage")].count(429) == 1


def test_a_flood_wait_beyond_max_wait_is_left_to_the_caller(tg: TelegramDouble, digests) -> None:
    r = render_telegram(digests["seed-reader"])
    sleep = FakeSleep()
    with channel(tg, sleep=sleep, max_wait=60) as ch, pytest.raises(DeliveryError) as caught:
        ch.send(
            r,
            Recipient("seed-reader", "telegram", str(CHAT), 1),
            on_part=lambda n, _: tg.fail_next(1, "flood", chat_id=CHAT, retry_after=120) if n == 2 else None,
        )
    assert caught.value.retry_after == 120 and caught.value.sent_parts == 2 and not caught.value.gone
    assert sleep.calls == [] and len(tg.messages(CHAT)) == 2


def test_a_blocked_bot_means_the_recipient_is_gone(tg: TelegramDouble, digests) -> None:
    r = render_telegram(digests["seed-reader"])
    tg.block(CHAT)
    with channel(tg) as ch, pytest.raises(DeliveryError) as caught:
        ch.send(r, Recipient("seed-reader", "telegram", str(CHAT), 1))
    assert caught.value.gone and caught.value.sent_parts == 0 and "blocked" in str(caught.value)
    tg.forget(CHAT + 1)
    with channel(tg) as ch, pytest.raises(DeliveryError) as caught:
        ch.send(r, Recipient("seed-reader", "telegram", str(CHAT + 1), 1))
    assert caught.value.gone and "chat not found" in str(caught.value).lower()


@pytest.mark.parametrize("fault", ["bad_gateway", "drop"])
def test_a_failure_midway_resumes_without_duplicates(tg: TelegramDouble, digests, fault: str) -> None:
    d = digests["graph-learning"]
    r = render_telegram(d, BASE)
    recipient = Recipient(d.profile, "telegram", str(CHAT), 9)
    sleep = FakeSleep()
    progress: list[int] = []

    def on_part(n: int, _: str) -> None:
        progress.append(n)
        if n == 2:  # the third part meets a network that stays down through every retry
            tg.fail_next(4, fault, chat_id=CHAT)

    with channel(tg, sleep=sleep) as ch:
        with pytest.raises(DeliveryError) as caught:
            ch.send(r, recipient, on_part=on_part)
        assert caught.value.sent_parts == 2 and not caught.value.gone
        assert sleep.calls == [1.0, 2.0, 4.0]  # the back-off between the four tries
        rest = ch.send(r, recipient, start=caught.value.sent_parts, on_part=lambda n, _: progress.append(n))
    assert progress == list(range(1, len(r.parts) + 1))
    texts = [m.params["text"] for m in tg.messages(CHAT)]
    assert texts == list(r.parts)  # every part once, in order
    assert len(rest.split(",")) == len(r.parts) - 2


def test_a_dropped_connection_is_retried(tg: TelegramDouble) -> None:
    r = render_telegram(digest_of(card()))
    sleep = FakeSleep()
    tg.fail_next(2, "drop", chat_id=CHAT)
    with channel(tg, sleep=sleep) as ch:
        ch.send(r, Recipient("constructed", "telegram", str(CHAT), 1))
    assert sleep.calls == [1.0, 2.0] and len(tg.messages(CHAT)) == len(r.parts)


def test_the_rate_limiter_spaces_messages_per_chat_and_overall(tg: TelegramDouble) -> None:
    r = render_telegram(digest_of(card(), card(key="arxiv:2", title="Two")))  # 4 parts
    fake = FakeTime()
    sent_at: list[tuple[str, float]] = []
    with channel(tg, chat_interval=1.0, global_rate=4.0, sleep=fake.sleep, clock=fake.clock) as ch:
        for chat in ("111", "222"):
            ch.send(
                r,
                Recipient("constructed", "telegram", chat, 1),
                on_part=lambda n, _, c=chat: sent_at.append((c, fake.now)),
            )
    assert len(sent_at) == 2 * len(r.parts) == len(tg.messages())
    for chat in ("111", "222"):
        times = [t for c, t in sent_at if c == chat]
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))  # one per second per chat
    everything = [t for _, t in sent_at]
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(everything))  # 4 per second overall
    assert fake.sleeps[:3] == [1.0, 1.0, 1.0] and fake.sleeps[3] == pytest.approx(
        0.25
    )  # second chat: global gap


def test_photo_keyboard_edit_and_callback_answer(tg: TelegramDouble) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    with channel(tg) as ch:
        photo_id = ch.send_photo(CHAT, png, "Eq. (2): " + "x" * 2000)
        photo = tg.calls_to("sendPhoto")[0]
        assert photo.ok and photo.files["photo"] == png and utf16_len(photo.params["caption"]) == 1024
        ids = ch.send(render_telegram(digest_of(card())), Recipient("constructed", "telegram", str(CHAT), 5))
        card_message = int(ids.split(",")[1])
        ch.edit_keyboard(CHAT, card_message, vote_keyboard(5, "arxiv:2411.99999", True, voted="up"))
        ch.edit_keyboard(
            CHAT, card_message, vote_keyboard(5, "arxiv:2411.99999", True, voted="up")
        )  # unchanged
        stored = tg.message(CHAT, card_message)
        assert stored is not None and stored["reply_markup"]["inline_keyboard"][0][0]["text"] == "👍 ✓"
        query = tg.enqueue_callback(CHAT, "f:5:u:arxiv:2411.99999", message_id=card_message)
        ch.answer_callback(query["callback_query"]["id"], "Thanks")
        with pytest.raises(DeliveryError, match=r"(?i)query is too old"):
            ch.answer_callback("no-such-query")
    assert photo_id == "1" and tg.answered[0]["text"] == "Thanks"


def test_the_token_never_reaches_the_logs(tg: TelegramDouble, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tg.fail_next(1, "blocked", chat_id=CHAT)
    with channel(tg) as ch, pytest.raises(DeliveryError) as caught:
        ch.send(render_telegram(digest_of(card())), Recipient("constructed", "telegram", str(CHAT), 1))
    assert tg.token not in caplog.text and tg.token not in str(caught.value)
    assert "bot<token>/sendMessage" in caplog.text  # httpx did log the URL, with the token replaced


def test_a_card_split_in_parts_gets_one_keyboard_under_its_last_part(tg: TelegramDouble) -> None:
    big = card(intuition="word " * 1500, significance="more " * 1000)  # constructed: about 12,500 characters
    r = render_telegram(digest_of(big))
    assert r.part_keys.count(big.key) >= 2
    with channel(tg) as ch:
        ch.send(r, Recipient("constructed", "telegram", str(CHAT), 1))
    marked = [("reply_markup" in m.params, k) for m, k in zip(tg.messages(CHAT), r.part_keys, strict=True)]
    card_flags = [flag for flag, k in marked if k == big.key]
    assert card_flags[-1] and not any(card_flags[:-1])
    assert not any(flag for flag, k in marked if not k)


def test_a_bad_address_is_refused_before_any_call(tg: TelegramDouble) -> None:
    with channel(tg) as ch, pytest.raises(DeliveryError) as caught:
        ch.send(render_telegram(digest_of(card())), Recipient("constructed", "telegram", "not a chat", 1))
    assert caught.value.gone and tg.calls == []


def test_html_escape_is_the_escape_used() -> None:
    assert render.esc("<a & b>") == html.escape("<a & b>", quote=False)
    assert render.href('https://x.org/"><script>') == html.escape('https://x.org/"><script>', quote=True)
    assert render.href("javascript:alert(1)") is None and render.href("https://x.org/" + "a" * 3000) is None
