"""Streamlit-side helpers shared by the pages: the store handle, cached reads keyed on the data
version, and plain-words error display. (Not a page: it is not registered in app.py.)"""

from __future__ import annotations

import streamlit as st

from cx.errors import TouchpointError
from cx.store import TABLES, Store, open_store

TABLE_LABELS = {
    "responses": "Survey responses",
    "tickets": "Support tickets",
    "orders": "Orders",
    "events": "Journey events",
    "customers": "Customers",
}


@st.cache_resource(show_spinner=False)
def get_store() -> Store:
    """The process's one store (data/touchpoint.duckdb or $TOUCHPOINT_DB)."""
    return open_store()


@st.cache_data(show_spinner=False, max_entries=8)
def cached_row_counts(data_version: int) -> dict[str, int]:
    return get_store().row_counts()


def show_error(exc: TouchpointError) -> None:
    """A domain error in plain words: the problem, then the fix."""
    st.error(f"**{exc.problem}**" + (f"\n\n{exc.fix}" if exc.fix else ""), icon=":material/error:")


def fmt_int(n: int | float) -> str:
    return f"{int(n):,}"


def sidebar_store_summary(store: Store) -> None:
    counts = cached_row_counts(store.data_version())
    total = sum(counts.values())
    st.caption("**Data in the store**")
    if total == 0:
        st.caption("Nothing imported yet: open **Data** to import your exports, or load the demo data.")
        return
    lines = [f"{TABLE_LABELS[t]}: **{fmt_int(counts[t])}**" for t in TABLES if counts[t]]
    st.caption("  \n".join(lines))
