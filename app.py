"""Touchpoint: the frame. Page config, navigation, the shared sidebar, then the chosen page."""

from __future__ import annotations

import streamlit as st

from pages._ui import get_store, sidebar_store_summary

st.set_page_config(page_title="Touchpoint — CX analytics", page_icon="📊", layout="wide")

store = get_store()  # opens (creates, migrates) the store once per process

PAGES = {
    "Data": [
        st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data", default=True),
    ],
}
page = st.navigation(PAGES)
with st.sidebar:
    sidebar_store_summary(store)
page.run()
