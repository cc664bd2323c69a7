"""Decks of saved views, kept in the store's settings table."""

from __future__ import annotations

import pytest

from cx import decks
from cx.decks import DeckError, View


def test_a_deck_keeps_views_in_order_and_survives_reopening_the_store(store):
    decks.create_deck(store, "  Monday   review ")
    decks.add_view(store, "Monday review", View("overview", "range=last_30", "Headline KPIs"))
    decks.add_view(store, "Monday review", View("trends", "metric=nps&f.channel=web&f.channel=app&present=1"))
    d = decks.get_deck(store, "Monday review")
    assert [v.page for v in d.views] == ["overview", "trends"]
    # Mode keys are dropped, keys sorted, repeated keys kept; the title defaults to the page name.
    assert d.views[1].query == "f.channel=web&f.channel=app&metric=nps"
    assert d.views[1].title == "Trends"
    assert d.views[1].params == {"f.channel": ["web", "app"], "metric": "nps"}
    assert store.get_setting("decks")[0]["views"][0] == {"page": "overview", "query": "range=last_30",
                                                         "title": "Headline KPIs"}


def test_views_can_be_reordered_renamed_and_removed(store):
    decks.create_deck(store, "QBR")
    for page in ("overview", "trends", "segments"):
        decks.add_view(store, "QBR", View(page))
    assert [v.page for v in decks.move_view(store, "QBR", 2, -1).views] == ["overview", "segments", "trends"]
    assert [v.page for v in decks.move_view(store, "QBR", 0, -1).views] == ["overview", "segments", "trends"]
    assert [v.page for v in decks.move_view(store, "QBR", 0, +5).views] == ["segments", "trends", "overview"]
    assert decks.rename_view(store, "QBR", 1, "NPS over time").views[1].title == "NPS over time"
    assert [v.page for v in decks.remove_view(store, "QBR", 0).views] == ["trends", "overview"]
    with pytest.raises(DeckError, match="no view number 3"):
        decks.remove_view(store, "QBR", 2)


def test_deck_names_are_unique_and_required(store):
    decks.create_deck(store, "QBR")
    with pytest.raises(DeckError, match="already exists"):
        decks.create_deck(store, "qbr")
    with pytest.raises(DeckError, match="needs a name"):
        decks.create_deck(store, "   ")
    with pytest.raises(DeckError, match="limit is 80"):
        decks.create_deck(store, "x" * 81)
    decks.create_deck(store, "Weekly")
    with pytest.raises(DeckError, match="already exists"):
        decks.rename_deck(store, "Weekly", "QBR")
    decks.rename_deck(store, "Weekly", "Weekly ops")
    decks.delete_deck(store, "QBR")
    assert [d.name for d in decks.load_decks(store)] == ["Weekly ops"]
    with pytest.raises(DeckError, match="no deck called"):
        decks.get_deck(store, "QBR")


def test_a_query_with_odd_characters_round_trips(store):
    decks.create_deck(store, "D")
    d = decks.add_view(store, "D", View("segments", "f.region=S%C3%A3o+Paulo&f.segment=A%26B&metric=csat"))
    assert d.views[0].params == {"f.region": "São Paulo", "f.segment": "A&B", "metric": "csat"}
