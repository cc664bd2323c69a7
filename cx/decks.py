"""Decks: named, ordered lists of saved views for meetings, kept in the store's ``settings`` table.

A view is a page of the app plus the query string that reproduces it (filters, date range and the
page's options, exactly as the page mirrors them into its URL), with a title the analyst can edit.
Opening a view replays that query string through the same validation as any shared link, so a view
whose values the data no longer has opens with a notice, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlencode

from cx.errors import TouchpointError
from cx.store import Store

SETTING_KEY = "decks"
MAX_DECKS = 50
MAX_VIEWS = 40
MAX_NAME = 80
# Query keys that belong to the app's own modes, never to a saved view.
MODE_KEYS = frozenset({"present", "deck", "slide"})


class DeckError(TouchpointError):
    """A deck or view that cannot be saved as asked (unknown, duplicate, empty name, too many)."""


@dataclass(frozen=True)
class View:
    """One screen of a deck: ``page`` (the page's URL path, e.g. "trends"), ``query`` (its URL query
    string without the mode keys) and the ``title`` shown on the slide."""

    page: str
    query: str = ""
    title: str = ""

    @property
    def params(self) -> dict[str, str | list[str]]:
        """The query as a dict; keys given several times (``f.channel=web&f.channel=app``) map to lists."""
        out: dict[str, str | list[str]] = {}
        for k, v in parse_qsl(self.query, keep_blank_values=False):
            if k in out:
                prev = out[k]
                out[k] = (prev if isinstance(prev, list) else [prev]) + [v]
            else:
                out[k] = v
        return out

    def as_dict(self) -> dict[str, str]:
        return {"page": self.page, "query": self.query, "title": self.title}


@dataclass(frozen=True)
class Deck:
    name: str
    views: tuple[View, ...] = field(default=())


def view_query(params: dict[str, str | list[str]]) -> str:
    """A canonical query string of a view: mode keys dropped, keys sorted, repeated keys kept."""
    pairs: list[tuple[str, str]] = []
    for k in sorted(params):
        if k in MODE_KEYS:
            continue
        v = params[k]
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            pairs.append((k, str(item)))
    return urlencode(pairs)


def _clean_name(name: str, what: str = "deck") -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise DeckError(f"A {what} needs a name.", fix=f"Type a name for the {what}.")
    if len(name) > MAX_NAME:
        raise DeckError(f"That {what} name is {len(name)} characters long; the limit is {MAX_NAME}.",
                        fix="Use a shorter name.")
    return name


def load_decks(store: Store) -> list[Deck]:
    """Every saved deck, in the order they were created."""
    raw = store.get_setting(SETTING_KEY, []) or []
    decks = []
    for d in raw:
        views = tuple(View(str(v.get("page", "")), str(v.get("query", "")), str(v.get("title", "")))
                      for v in d.get("views", []) if v.get("page"))
        decks.append(Deck(str(d.get("name", "")), views))
    return [d for d in decks if d.name]


def _save(store: Store, decks: list[Deck]) -> list[Deck]:
    store.set_setting(SETTING_KEY, [{"name": d.name, "views": [v.as_dict() for v in d.views]} for d in decks])
    return decks


def get_deck(store: Store, name: str) -> Deck:
    """The deck called ``name``; ``DeckError`` if there is none."""
    for d in load_decks(store):
        if d.name == name:
            return d
    raise DeckError(f"There is no deck called “{name}”.", fix="Pick a deck from the list on the Decks page.")


def _replace_deck(store: Store, name: str, new: Deck | None) -> list[Deck]:
    decks = load_decks(store)
    idx = next((i for i, d in enumerate(decks) if d.name == name), None)
    if idx is None:
        raise DeckError(f"There is no deck called “{name}”.", fix="Pick a deck from the list on the Decks page.")
    if new is None:
        del decks[idx]
    else:
        decks[idx] = new
    return _save(store, decks)


def create_deck(store: Store, name: str) -> Deck:
    """A new empty deck; names are unique (ignoring case) and at most 80 characters."""
    name = _clean_name(name)
    decks = load_decks(store)
    if any(d.name.casefold() == name.casefold() for d in decks):
        raise DeckError(f"A deck called “{name}” already exists.", fix="Choose another name, or add views to that deck.")
    if len(decks) >= MAX_DECKS:
        raise DeckError(f"There are already {MAX_DECKS} decks.", fix="Delete a deck you no longer need.")
    deck = Deck(name)
    _save(store, decks + [deck])
    return deck


def rename_deck(store: Store, name: str, new_name: str) -> Deck:
    new_name = _clean_name(new_name)
    if new_name.casefold() != name.casefold() and any(d.name.casefold() == new_name.casefold()
                                                       for d in load_decks(store)):
        raise DeckError(f"A deck called “{new_name}” already exists.", fix="Choose another name.")
    deck = replace(get_deck(store, name), name=new_name)
    _replace_deck(store, name, deck)
    return deck


def delete_deck(store: Store, name: str) -> None:
    _replace_deck(store, name, None)


def add_view(store: Store, name: str, view: View) -> Deck:
    """``view`` appended to the deck (its query made canonical, its title defaulted to the page name)."""
    deck = get_deck(store, name)
    if len(deck.views) >= MAX_VIEWS:
        raise DeckError(f"“{name}” already has {MAX_VIEWS} views.", fix="Remove a view or start another deck.")
    if not view.page:
        raise DeckError("A view needs a page.", fix="Open an analysis page, then add it.")
    view = View(view.page, view_query(View(view.page, view.query).params),
                _clean_name(view.title or view.page.capitalize(), "view"))
    deck = replace(deck, views=deck.views + (view,))
    _replace_deck(store, name, deck)
    return deck


def _check_index(deck: Deck, index: int) -> None:
    if not 0 <= index < len(deck.views):
        raise DeckError(f"“{deck.name}” has no view number {index + 1}.", fix="Reload the Decks page.")


def move_view(store: Store, name: str, index: int, offset: int) -> Deck:
    """The view at ``index`` moved by ``offset`` places (−1 = earlier), clamped to the deck's ends."""
    deck = get_deck(store, name)
    _check_index(deck, index)
    views = list(deck.views)
    target = max(0, min(len(views) - 1, index + offset))
    views.insert(target, views.pop(index))
    deck = replace(deck, views=tuple(views))
    _replace_deck(store, name, deck)
    return deck


def remove_view(store: Store, name: str, index: int) -> Deck:
    deck = get_deck(store, name)
    _check_index(deck, index)
    deck = replace(deck, views=deck.views[:index] + deck.views[index + 1:])
    _replace_deck(store, name, deck)
    return deck


def rename_view(store: Store, name: str, index: int, title: str) -> Deck:
    deck = get_deck(store, name)
    _check_index(deck, index)
    views = list(deck.views)
    views[index] = replace(views[index], title=_clean_name(title, "view"))
    deck = replace(deck, views=tuple(views))
    _replace_deck(store, name, deck)
    return deck
