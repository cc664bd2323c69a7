"""Touchpoint: the frame. Page config, navigation, the shared sidebar (store summary and filters),
then the chosen page."""

from __future__ import annotations

import streamlit as st

from cx.engine import read_snapshot
from cx.errors import TouchpointError
from pages._ui import get_store, show_error, sidebar_filters, sidebar_store_summary

st.set_page_config(page_title="Touchpoint — CX analytics", page_icon="📊", layout="wide")

from pages._access import access_controls, require_access  # noqa: E402 - after the page config, before anything renders

require_access()  # a login screen when .streamlit/secrets.toml configures access; nothing else renders

try:
    store = get_store()  # opens (creates, migrates) the store once per process
except TouchpointError as exc:  # held by another process, damaged, or from a newer version
    show_error(exc)
    st.stop()

overview = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                   default=True)
trends = st.Page("pages/trends.py", title="Trends", icon=":material/show_chart:", url_path="trends")
segments = st.Page("pages/segments.py", title="Segments & channels", icon=":material/grid_view:", url_path="segments")
data = st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data")
settings = st.Page("pages/settings.py", title="Settings", icon=":material/tune:", url_path="settings")
ANALYSIS = {overview.url_path, trends.url_path, segments.url_path}

page = st.navigation({"Analysis": [overview, trends, segments], "Manage": [data, settings]})
with st.sidebar:
    if page.url_path in ANALYSIS or page.url_path == "":
        st.session_state["filters"] = sidebar_filters(store)
        st.divider()
    sidebar_store_summary(store)
    access_controls()  # who is logged in, and Log out (only when access is configured)
with read_snapshot(store):  # every query of the page reads one committed state: never half an import
    page.run()
