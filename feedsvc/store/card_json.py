"""A card as a digest entry stores it (the `card` JSON column of `digest_entries`), and back.

The one encoding of a stored card: `card_to_json` when a digest is saved, `card_from_json` wherever a
stored card is read (`queries`, `archive`). The JSON object has `Card`'s fields under the same names;
tuples become lists, and the quotes and discussions objects with their own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from feedsvc.models import Card, Discussion, Quote


def card_to_json(card: Card) -> dict[str, Any]:
    """`card` as the JSON object stored for it."""
    return _lists(asdict(card))


def card_from_json(data: Mapping[str, Any]) -> Card:
    """A stored card (a digest entry's JSON) as the `Card` it was saved from."""
    fields = dict(data)
    fields["punch"] = tuple(Quote(**q) for q in fields.get("punch", []))
    fields["discussions"] = tuple(Discussion(**d) for d in fields.get("discussions", []))
    fields["llm_fields"] = tuple(fields.get("llm_fields", ()))
    fields["evidence"] = tuple(fields.get("evidence", ()))  # cards stored before it have none
    return Card(**fields)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
