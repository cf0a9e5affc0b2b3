"""The Markdown renderer: the seed digest's anatomy, every card present, nothing scraped left unescaped."""

from __future__ import annotations

import json
import re
from datetime import date

from feedsvc.models import Card, Digest, Quote, SourceReport
from feedsvc.render.email import render_email
from feedsvc.render.markdown import render_markdown
from feedsvc.render.telegram import render_telegram


def card(**kw) -> Card:
    base = dict(
        key="arxiv:2411.18612",
        kind="paper",
        title="Robust Offline RL",
        url="https://arxiv.org/abs/2411.18612",
        domain="RL theory / Machine Learning",
        time_cost="~20min skim, ~70min full read (20 pages)",
        intuition="The problem and the idea.",
        punch_intro="From the abstract:",
        punch=(Quote(r"O(H \cdot \log(L/H))", "abstract", True), Quote("It improves by 12%.", "abstract")),
        significance="What changes.",
        why="Your *RL* thread.",
        thread="RL",
        score=0.12,
    )
    base.update(kw)
    return Card(**base)


def digest(cards: tuple[Card, ...], **kw) -> Digest:
    base = dict(
        profile="seed-reader",
        day=date(2024, 11, 28),
        title="Daily Feed - 2024-11-28",
        summary='Today\'s picks: "quoted" things',
        cards=cards,
        papers_wanted=3,
        videos_wanted=2,
        talk_check="not run.",
        sources=(SourceReport("arxiv", "ok", 1504, 357, 3, "scanned 1504 items."),),
    )
    base.update(kw)
    return Digest(**base)


def test_the_seed_anatomy() -> None:
    cards = (card(), card(key="arxiv:2", title="Second", url="https://arxiv.org/abs/2"))
    md = render_markdown(digest(cards)).body
    front = md.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
    assert fields["title"] == '"Daily Feed - 2024-11-28"' and fields["date"] == "2024-11-28"
    assert json.loads(fields["summary"]) == 'Today\'s picks: "quoted" things'
    assert "\n2 paper picks + 0 video picks (same bundle on every channel).\n" in md
    assert "**Author-talk check:** not run." in md
    assert md.count("\n## [") == 2
    assert (
        "## [Robust Offline RL](https://arxiv.org/abs/2411.18612)\n"
        "**Domain:** RL theory / Machine Learning | "
        "**Time cost:** ~20min skim, ~70min full read (20 pages)" in md
    )
    for field in ("**Intuition:**", "**Concrete punch:**", "**Significance:**", "**Why it matches:**"):
        assert md.count(field) == 2
    assert "$$\nO(H \\cdot \\log(L/H))\n$$" in md
    assert "> It improves by 12%." in md
    assert md.rstrip().endswith("- **arXiv:** scanned 1504 items.")
    assert "### Source-discovery note" in md


def test_card_bodies_say_why_in_words_and_leave_the_rankers_numbers_to_why_and_the_web() -> None:
    why = "Matches your *RL* thread: it shares offline RL with the thread."
    evidence = (
        "blend of lexical 0.41, semantic 0.63 (weights lexical 0.40, semantic 0.60)",
        "quality: theory",
    )
    for channel, body in every_body(digest((card(why=why, evidence=evidence, score=0.5123),))).items():
        assert "offline RL with the thread" in body, channel
        for number in ("0.41", "0.63", "0.60", "0.512", "quality: theory", "blend of"):
            assert number not in body, (channel, number)


def every_body(d: Digest) -> dict[str, str]:
    email = render_email(d, "https://feeds.example")
    return {
        "markdown": render_markdown(d).body,
        "telegram": "\n".join(render_telegram(d, "https://feeds.example").parts),
        "email text": email.body,
        "email html": email.html or "",
    }


def test_a_quote_cut_before_its_sentence_ends_is_marked_in_every_body() -> None:
    cut = "It improves on the baseline by 12% on four benchmarks"
    punch = (Quote(cut, "abstract"), Quote("It needs no labels.", "abstract"))
    for channel, body in every_body(digest((card(punch=punch),))).items():
        assert f"{cut} …" in body, channel
        assert "It needs no labels. …" not in body, channel


def test_a_card_without_a_why_has_no_why_heading_on_any_channel() -> None:
    bodies = every_body(digest((card(), card(key="arxiv:2", title="Second", why=""))))
    for channel, body in bodies.items():
        assert body.count("Why it matches:") == 1, channel  # the first card's, not the second's
        assert "Your " in body and "RL" in body, channel
    assert "**Why it matches:** Your *RL* thread.\n" in bodies["markdown"]


def test_fewer_picks_say_why() -> None:
    md = render_markdown(
        digest((card(),), shortfall="1 of 3 paper picks: nothing else cleared the bar.")
    ).body
    assert "1 paper pick + 0 video picks" in md
    assert "**Fewer picks than asked for:** 1 of 3 paper picks" in md


def test_html_and_script_in_scraped_text_are_escaped() -> None:  # constructed hostile strings
    evil = card(
        title='<script>alert("x")</script> [click](javascript:alert(1))',
        url="javascript:alert(1)",
        intuition="<img src=x onerror=alert(1)> & more",
        punch=(Quote("a<b and <script>", "abstract", True), Quote("<b>bold</b> 5%", "abstract")),
        why="<iframe>",
    )
    md = render_markdown(digest((evil,))).body
    assert not re.search(r"<(script|img|iframe|b)\b", md, re.I)
    assert "](#)" in md  # a non-http link target is refused
    assert "&lt;script&gt;" in md and "\\[click\\]" in md
    assert "$$\na< b and < script>\n$$" in md  # the same formula in LaTeX, no tag for a viewer


def test_rendering_is_pure() -> None:
    d = digest((card(),))
    assert render_markdown(d) == render_markdown(d)
