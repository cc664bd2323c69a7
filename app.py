"""Touchpoint: the frame. Page config, navigation, the shared sidebar (store summary and filters),
then the chosen page."""

from __future__ import annotations

import streamlit as st

from cx import metrics
from cx.engine import read_snapshot
from cx.errors import TouchpointError
from pages import _meeting
from pages._ui import (cached_currencies, freeze_startup_objects, get_store, show_error, sidebar_filters,
                       sidebar_store_summary)

freeze_startup_objects()  # once per process: the imports above stay out of the collector's full passes

st.set_page_config(page_title="Touchpoint — CX analytics", page_icon="📊", layout="wide")

from pages._access import access_controls, require_access  # noqa: E402 - after the page config, before anything renders

require_access()  # a login screen when .streamlit/secrets.toml configures access; nothing else renders

try:
    store = get_store()  # opens (creates, migrates) the store once per process
except TouchpointError as exc:  # held by another process, damaged, or from a newer version
    show_error(exc)
    st.stop()
_currencies = cached_currencies(store.data_version())  # money carries the orders' one currency, if one
metrics.set_display_currency(_currencies[0] if len(_currencies) == 1 else None)

overview = st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                   default=True)
trends = st.Page("pages/trends.py", title="Trends", icon=":material/show_chart:", url_path="trends")
segments = st.Page("pages/segments.py", title="Segments & channels", icon=":material/grid_view:", url_path="segments")
journey = st.Page("pages/journey.py", title="Journey", icon=":material/route:", url_path="journey")
churn = st.Page("pages/churn.py", title="Churn & value", icon=":material/trending_down:", url_path="churn")
data = st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data")
voice_page = st.Page("pages/voice.py", title="Voice of the customer", icon=":material/forum:", url_path="voice")
settings = st.Page("pages/settings.py", title="Settings", icon=":material/tune:", url_path="settings")
decks_page = st.Page("pages/decks.py", title="Decks", icon=":material/slideshow:", url_path="decks")
# Analysis pages get the shared sidebar filters; Manage pages do not.
ANALYSIS_PAGES = [overview, trends, segments, journey, churn, voice_page]
ANALYSIS = {p.url_path for p in ANALYSIS_PAGES}

page = st.navigation({"Analysis": ANALYSIS_PAGES, "Manage": [data, settings, decks_page]})
# Streamlit forgets a widget's value after a run that does not draw it (the Manage pages draw no filters,
# and each analysis page only its own options): assigning each shared filter's and page option's value back
# to its key keeps the analyst's choices for the way back.
for _key in [k for k in st.session_state if str(k).startswith(("flt_", "opt_"))]:
    st.session_state[_key] = st.session_state[_key]
_meeting.before_page(page)  # presentation mode, deck stepping
with st.sidebar:
    if page.url_path in ANALYSIS or page.url_path == "":
        st.session_state["filters"] = sidebar_filters(store)
        st.divider()
    sidebar_store_summary(store)
    access_controls()  # who is logged in, and Log out (only when access is configured)
with read_snapshot(store):  # every query of the page reads one committed state: never half an import
    page.run()
_meeting.after_page(page, analysis=page.url_path in ANALYSIS or page.url_path == "")  # share, present, export
