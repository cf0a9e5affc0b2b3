"""Canonical keys for the URL forms items really arrive in."""

from __future__ import annotations

import pytest

from feedsvc.identity import arxiv_id, bare_arxiv_id, canonical_key, normalise_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://arxiv.org/abs/2411.17700", ("2411.17700", None)),
        ("http://arxiv.org/abs/1605.08386v1", ("1605.08386", 1)),  # the API's <id>
        ("https://arxiv.org/pdf/2411.17700v2", ("2411.17700", 2)),
        ("https://arxiv.org/pdf/2411.17700v2.pdf", ("2411.17700", 2)),
        ("https://arxiv.org/html/2407.14503v1#S3", ("2407.14503", 1)),
        ("https://ar5iv.labs.arxiv.org/html/1606.09375", ("1606.09375", None)),
        ("https://ar5iv.org/abs/2012.15000", ("2012.15000", None)),
        ("https://export.arxiv.org/abs/2202.00665", ("2202.00665", None)),
        ("https://doi.org/10.48550/arXiv.2310.03240", ("2310.03240", None)),
        ("oai:arXiv.org:2411.17700v1", ("2411.17700", 1)),  # RSS guid
        ("Show HN: our paper (arXiv:2211.09817)", ("2211.09817", None)),
        ("http://arxiv.org/abs/astro-ph/0601001v1", ("astro-ph/0601001", 1)),
        ("https://arxiv.org/abs/math.CO/0601001", ("math.CO/0601001", None)),
        ("https://example.org/abs/2411.17700", None),
    ],
)
def test_arxiv_ids(text: str, expected: tuple[str, int | None] | None) -> None:
    assert arxiv_id(text) == expected


def test_bare_id_accepts_plain_versioned_ids_and_refuses_junk() -> None:
    assert bare_arxiv_id("1801.01290v2") == "1801.01290"
    assert bare_arxiv_id(" 1801.01290 ") == "1801.01290"
    with pytest.raises(ValueError):
        bare_arxiv_id("soft actor critic")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://www.youtube.com/watch?v=cRGKc-nAWho", "youtube:cRGKc-nAWho"),
        ("https://youtu.be/klW65MWJ1PY?t=42", "youtube:klW65MWJ1PY"),
        ("https://m.youtube.com/watch?feature=share&v=cRGKc-nAWho", "youtube:cRGKc-nAWho"),
        ("https://www.youtube.com/shorts/cRGKc-nAWho", "youtube:cRGKc-nAWho"),
        ("https://arxiv.org/pdf/2602.17632v1", "arxiv:2602.17632"),
        ("HTTP://WWW.Example.COM/post/?utm_source=hn&id=3#comments", "url:https://example.com/post?id=3"),
    ],
)
def test_canonical_keys(url: str, key: str) -> None:
    assert canonical_key(url) == key


def test_an_arxiv_id_in_a_title_wins_over_a_blog_url() -> None:
    assert canonical_key("https://blog.example.org/x", "Paper (arXiv:2602.15182)") == "arxiv:2602.15182"


def test_normalise_url_keeps_meaningful_query_and_port() -> None:
    assert normalise_url("http://example.org:8080/a/") == "https://example.org:8080/a"
    assert normalise_url("https://example.org/a?b=1&utm_medium=x") == "https://example.org/a?b=1"


def test_titles_match_across_sources_exactly_or_nearly() -> None:
    from feedsvc.identity import match_title, title_fingerprint

    index = {
        title_fingerprint(
            "SMAC: Score-Matched Actor-Critics for Robust Offline-to-Online Transfer"
        ): "arxiv:2602.17632"
    }
    assert (
        match_title("SMAC – score-matched actor-critics for robust offline-to-online transfer", index)
        == "arxiv:2602.17632"
    )
    assert (
        match_title("SMAC: Score-Matched Actor-Critic for Robust Offline-to-Online Transfer [pdf]", index)
        == "arxiv:2602.17632"
    )
    assert match_title("Score matching for robust transfer learning in vision", index) is None
    assert (
        match_title("SMAC", {"smac": "arxiv:1"}) == "arxiv:1"
        and match_title("SMAC v2", {"smac": "arxiv:1"}) is None
    )


@pytest.mark.parametrize(
    ("url", "scheme", "value"),
    [
        ("https://arxiv.org/abs/2411.17700v2", "arxiv", "2411.17700"),
        ("http://arxiv.org/abs/astro-ph/0601001v1", "arxiv", "astro-ph/0601001"),
        ("https://doi.org/10.48550/arXiv.2310.03240", "arxiv", "2310.03240"),
        ("https://youtu.be/klW65MWJ1PY?t=42", "youtube", "klW65MWJ1PY"),
        (
            "https://news.ycombinator.com/item?id=42183221",
            "url",
            "https://news.ycombinator.com/item?id=42183221",
        ),
    ],
)
def test_item_keys_take_apart_into_what_built_them(url: str, scheme: str, value: str) -> None:
    from feedsvc.identity import ItemKey

    key = canonical_key(url)
    assert isinstance(key, ItemKey) and (key.scheme, key.value) == (scheme, value)
    built = {"arxiv": ItemKey.arxiv, "youtube": ItemKey.youtube, "url": ItemKey.url}[scheme](value)
    assert built == key and ItemKey.parse(str(key)) == key
    assert key == f"{scheme}:{value}" and hash(key) == hash(f"{scheme}:{value}")  # the stored text
    assert key.arxiv_id == (value if scheme == "arxiv" else None)
    assert key.youtube_id == (value if scheme == "youtube" else None)


def test_item_key_constructors_write_todays_stored_format() -> None:
    from feedsvc.identity import ItemKey

    assert ItemKey.arxiv("math.CO/0601001") == "arxiv:math.CO/0601001"
    assert ItemKey.youtube("cRGKc-nAWho") == "youtube:cRGKc-nAWho"
    assert ItemKey.url("http://www.example.org/a/?utm_source=x") == "url:https://example.org/a"
    assert ItemKey.external("W2963403868") == "id:W2963403868"
    assert ItemKey.titled("Soft Actor-Critic: Off-Policy RL") == "title:soft-actor-critic-off-policy-rl"
    assert ItemKey.arxiv("2411.17700").page_url() == "https://arxiv.org/abs/2411.17700"
    assert ItemKey.youtube("cRGKc-nAWho").page_url() == "https://www.youtube.com/watch?v=cRGKc-nAWho"
    assert ItemKey.url("https://example.org/a").page_url() is None


def test_item_keys_from_anywhere_come_apart_without_raising_but_parse_is_strict() -> None:
    from feedsvc.identity import ItemKey

    odd = ItemKey("h0123456789abcdef")  # a callback's key hash, not a key
    assert (odd.scheme, odd.value, odd.is_arxiv, odd.arxiv_id) == ("", "h0123456789abcdef", False, None)
    assert ItemKey("url:https://example.org/a:b").value == "https://example.org/a:b"  # split at the first ":"
    for junk in ("h0123456789abcdef", "https://example.org/x", "arxiv:", "doi:10.1/x"):
        with pytest.raises(ValueError):
            ItemKey.parse(junk)


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("2411.17700v2", "arxiv:2411.17700"),
        ("arXiv:2411.17700", "arxiv:2411.17700"),
        ("arxiv:2411.17700", "arxiv:2411.17700"),
        ("https://arxiv.org/pdf/2411.17700v1", "arxiv:2411.17700"),
        ("https://www.youtube.com/watch?v=cRGKc-nAWho", "youtube:cRGKc-nAWho"),
        ("url:https://example.org/post", "url:https://example.org/post"),
    ],
)
def test_what_a_reader_types_becomes_the_items_key(typed: str, key: str) -> None:
    from feedsvc.identity import ItemKey

    assert ItemKey.from_reader(typed) == key
