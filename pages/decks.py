"""Decks: saved views arranged for a meeting, presented one per screen or exported as PPTX / PDF."""

from __future__ import annotations

from urllib.parse import unquote_plus

import streamlit as st

from cx import decks
from cx.errors import TouchpointError
from pages import _meeting
from pages._ui import get_store, show_error

st.title("Decks")
st.caption("A deck is an ordered list of saved views (a page with its filters, date range and options). "
           "Add views from any analysis page with **Add to deck** in the sidebar, arrange them here, then "
           "present them one per screen (← → keys step through) or export them as slides.")
store = get_store()
_meeting.finish_deck_export()


def _act(fn, *args) -> None:
    try:
        fn(store, *args)
    except TouchpointError as exc:
        st.session_state["decks_error"] = exc


all_decks = decks.load_decks(store)
with st.expander("New deck", expanded=not all_decks, icon=":material/add:"):
    with st.form("decks_new", clear_on_submit=True, border=False):
        name = st.text_input("Name", max_chars=decks.MAX_NAME, placeholder="e.g. Monday CX review")
        if st.form_submit_button("Create deck", type="primary"):
            try:
                decks.create_deck(store, name)
                st.session_state["decks_pick"] = " ".join(name.split())
                st.rerun()
            except TouchpointError as exc:
                show_error(exc)

if not all_decks:
    st.info("No decks yet. Create one above, or open **Overview**, **Trends** or **Segments**, set the filters "
            "you want, and use **Add to deck** in the sidebar.", icon=":material/slideshow:")
    st.stop()

names = [d.name for d in all_decks]
if st.session_state.get("decks_pick") not in names:
    st.session_state["decks_pick"] = st.query_params.get("deck") if st.query_params.get("deck") in names else names[0]
pick = st.selectbox("Deck", names, key="decks_pick")
deck = decks.get_deck(store, pick)
if (err := st.session_state.pop("decks_error", None)) is not None:
    show_error(err)

with st.container(horizontal=True):
    if st.button("Present", icon=":material/slideshow:", type="primary", disabled=not deck.views, key="decks_present",
                 help="From the first view, full screen, one view per screen; ← and → step, Esc leaves."):
        _meeting.go_to_view(deck, 0)
    if st.button("Export PPTX", icon=":material/download:", disabled=not deck.views, key="decks_pptx",
                 help="Opens each view in turn, then builds the file; keep this tab open until it is ready."):
        _meeting.start_deck_export(deck, "pptx")
    if st.button("Export PDF", icon=":material/picture_as_pdf:", disabled=not deck.views, key="decks_pdf"):
        _meeting.start_deck_export(deck, "pdf")
    with st.popover("Rename or delete", icon=":material/edit:"):
        new_name = st.text_input("New name", value=deck.name, key="decks_rename", max_chars=decks.MAX_NAME)
        if st.button("Rename", key="decks_rename_btn"):
            try:
                st.session_state["decks_pick"] = decks.rename_deck(store, deck.name, new_name).name
                st.rerun()
            except TouchpointError as exc:
                show_error(exc)
        if st.checkbox(f"Yes, delete “{deck.name}” and its {len(deck.views)} views", key="decks_del_ok"):
            if st.button("Delete deck", type="primary", key="decks_del_btn"):
                decks.delete_deck(store, deck.name)
                st.session_state.pop("decks_pick", None)
                st.rerun()

if not deck.views:
    st.info(f"“{deck.name}” has no views yet. Open an analysis page, set its filters and options, and use "
            "**Add to deck** in the sidebar.", icon=":material/playlist_add:")
    st.stop()

pages = _meeting._pages()
st.subheader(f"{len(deck.views)} view{'s' if len(deck.views) != 1 else ''}")
for i, view in enumerate(deck.views):
    with st.container(border=True, key=f"decks_view_{i}"):
        c0, c1, c2 = st.columns([0.5, 6, 3.5], vertical_alignment="center")
        c0.markdown(f"**{i + 1}**")
        with c1:
            title = st.text_input("Title", value=view.title, key=f"decks_title_{deck.name}_{i}_{view.title}",
                                  label_visibility="collapsed", max_chars=decks.MAX_NAME)
            if title != view.title:
                _act(decks.rename_view, deck.name, i, title)
                st.rerun()
            page_title = pages.get(view.page, {}).get("title") or f"{view.page} (page not available)"
            st.caption(f"{page_title} · " + (unquote_plus(view.query).replace("&", " · ") or "default filters"))
        with c2, st.container(horizontal=True, horizontal_alignment="right"):
            if st.button("", icon=":material/arrow_upward:", key=f"decks_up_{i}", disabled=i == 0, help="Earlier"):
                _act(decks.move_view, deck.name, i, -1)
                st.rerun()
            if st.button("", icon=":material/arrow_downward:", key=f"decks_down_{i}",
                         disabled=i == len(deck.views) - 1, help="Later"):
                _act(decks.move_view, deck.name, i, +1)
                st.rerun()
            if st.button("", icon=":material/open_in_new:", key=f"decks_open_{i}", help="Open this view"):
                _meeting.go_to_view(deck, i, present=False)
            if st.button("", icon=":material/delete:", key=f"decks_remove_{i}", help="Remove from the deck"):
                _act(decks.remove_view, deck.name, i)
                st.rerun()
