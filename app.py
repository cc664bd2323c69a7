"""Touchpoint: the frame. Page config, navigation, the shared sidebar (store summary and filters),
then the chosen page."""

from __future__ import annotations

import streamlit as st

from pages._ui import get_store, sidebar_filters, sidebar_store_summary

st.set_page_config(page_title="Touchpoint — CX analytics", page_icon="📊", layout="wide")

store = get_store()  # opens (creates, migrates) the store once per process

overview = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                   default=True)
trends = st.Page("pages/trends.py", title="Trends", icon=":material/show_chart:", url_path="trends")
segments = st.Page("pages/segments.py", title="Segments & channels", icon=":material/grid_view:", url_path="segments")
data = st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data")
voice_page = st.Page("pages/voice.py", title="Voice of the customer", icon=":material/forum:", url_path="voice")
settings = st.Page("pages/settings.py", title="Settings", icon=":material/tune:", url_path="settings")
ANALYSIS = {overview.url_path, trends.url_path, segments.url_path}
ANALYSIS.add(voice_page.url_path)

page = st.navigation({"Analysis": [overview, trends, segments, voice_page], "Manage": [data, settings]})
with st.sidebar:
    if page.url_path in ANALYSIS or page.url_path == "":
        st.session_state["filters"] = sidebar_filters(store)
        st.divider()
    sidebar_store_summary(store)
page.run()
