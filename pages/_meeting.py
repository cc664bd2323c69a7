"""Streamlit side of meetings: chart image downloads, presentation mode, decks, the shareable link and
slide exports of the current page or a deck. (Not a page: app.py calls ``before_page`` and
``after_page`` around the chosen page; ``pages._ui.show_chart`` calls ``chart_tools``.)

Exports use the very figures the pages draw: ``show_chart`` records each figure of the run, so a
page export holds what is on screen, and a deck export steps through the deck's views (as in
presentation mode), recording each view's figures, then builds the file.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from cx import decks, images, slides
from cx.errors import TouchpointError

ROOT = Path(__file__).resolve().parents[1]
MODE_KEYS = ("present", "deck", "slide")
MIME = {"pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pdf": "application/pdf"}

PRESENT_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="collapsedControl"],
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"],
[data-testid="stStatusWidget"], [data-testid="stMainMenu"], footer { display: none !important; }
[data-testid="stMainBlockContainer"], .block-container { padding-top: 1.2rem !important; padding-bottom: 1rem !important;
  max-width: 100% !important; padding-left: 3vw !important; padding-right: 3vw !important; }
[data-testid="stMain"] [data-testid="stSelectbox"], [data-testid="stMain"] [data-testid="stMultiSelect"],
[data-testid="stMain"] [data-testid="stRadio"], [data-testid="stMain"] [data-testid="stCheckbox"],
[data-testid="stMain"] [data-testid="stSlider"], [data-testid="stMain"] [data-testid="stExpander"],
[data-testid="stMain"] [data-testid="stDownloadButton"], [data-testid="stMain"] [data-testid="stPopover"],
[data-testid="stMain"] [data-testid="stPageLink"], [data-testid="stMain"] [data-testid="stDataFrame"] {
  display: none !important; }
[data-testid="stMain"] h1 { font-size: 2.8rem !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2rem !important; }
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p, [data-testid="stMain"] [data-testid="stCaptionContainer"] {
  font-size: 1.35rem !important; line-height: 1.5 !important; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * { font-size: 2.6rem !important; line-height: 1.2 !important; }
[data-testid="stMetricLabel"] p { font-size: 1.3rem !important; }
.st-key-present_bar p { font-size: 1.1rem !important; }
</style>
"""


# -- charts -----------------------------------------------------------------------------------------
def presenting() -> bool:
    return st.query_params.get("present") == "1"


def chart_tools(fig: go.Figure, key: str) -> None:
    """Record the figure for page and deck exports, and offer PNG/SVG downloads (not while presenting)."""
    st.session_state.setdefault("_meeting_charts", []).append((key, go.Figure(fig)))
    if not presenting():
        _image_menu(fig, key)


def present_figure(fig: go.Figure) -> go.Figure:
    """Large type for a projector; the figure on screen otherwise unchanged."""
    fig.update_layout(font=dict(size=18), title_font=dict(size=26), legend_font=dict(size=17),
                      height=max(int(fig.layout.height or 380), 520))
    fig.update_xaxes(tickfont=dict(size=16), title_font=dict(size=18))
    fig.update_yaxes(tickfont=dict(size=16), title_font=dict(size=18))
    return fig


@st.fragment
def _image_menu(fig: go.Figure, key: str) -> None:
    # A fragment: picking a format reruns this menu only, not the page; the image is drawn on demand.
    with st.popover("Image", icon=":material/image:", help="Download this chart as PNG or SVG"):
        fmt = st.radio("Format", ["png", "svg"], format_func=str.upper, horizontal=True, key=f"{key}_imgfmt")
        if st.button("Prepare image", key=f"{key}_imgbtn", icon=":material/photo_camera:"):
            try:
                with st.spinner(f"Drawing the chart as {fmt.upper()}…"):
                    st.session_state[f"{key}_img"] = (fmt, images.chart_image(fig, fmt))
            except TouchpointError as exc:
                st.session_state.pop(f"{key}_img", None)
                _error(exc)
        ready = st.session_state.get(f"{key}_img")
        if ready and ready[0] == fmt:
            title = (fig.layout.title.text or key) if fig.layout.title else key
            st.download_button(f"Download {fmt.upper()}", ready[1], file_name=f"{_slug(title)}.{fmt}",
                               mime=images.FORMATS[fmt], key=f"{key}_imgdl", on_click="ignore",
                               icon=":material/download:", type="primary")


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in str(text))
    return "-".join(p for p in out.split("-") if p)[:60] or "chart"


def _error(exc: TouchpointError) -> None:
    st.error(f"**{exc.problem}**" + (f"\n\n{exc.fix}" if exc.fix else ""), icon=":material/error:")


# -- pages and views --------------------------------------------------------------------------------
def _pages() -> dict[str, dict]:
    """url path → {"title", "script"} of every page app.py registered (so new pages need nothing here)."""
    ctx = get_script_run_ctx()
    out = {}
    for info in (ctx.pages_manager.get_pages().values() if ctx else []):
        path = info.get("url_pathname", "")
        # The default page is served at the root; it is saved in decks under its file's name.
        out[path or Path(info["script_path"]).stem] = {"title": info.get("page_name", ""),
                                                       "script": info["script_path"], "default": not path}
    return out


def page_key(page) -> str:
    """The name a page is saved under in decks: its URL path (the default page: its file name)."""
    return page.url_path or next((k for k, v in _pages().items() if v["default"]), "overview")


def _view_params() -> dict[str, str | list[str]]:
    return {k: (v if len(v) > 1 else v[0]) for k in st.query_params.keys()
            if k not in MODE_KEYS and (v := st.query_params.get_all(k))}


def current_link(url_path: str) -> str:
    """The address of this view: page, filters and options (the mode keys left out)."""
    parts = urlsplit(st.context.url or "http://localhost:8501")
    prefix = str(st.get_option("server.baseUrlPath") or "").strip("/")
    base = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    path = "/" if _pages().get(url_path, {}).get("default") else f"/{url_path}"
    query = decks.view_query(_view_params())
    return base + path + (f"?{query}" if query else "")


def _reset_view_state() -> None:
    """Forget filter and option widgets so the next run reads them from the URL again."""
    for k in list(st.session_state.keys()):
        if k.startswith(("flt_", "opt_")):
            del st.session_state[k]


def go_to_view(deck: decks.Deck, index: int, *, present: bool = True) -> None:
    view = deck.views[index]
    page = _pages().get(view.page)
    if page is None:
        st.warning(f"The view “{view.title}” opens the page “{view.page}”, which this app no longer has.")
        return
    _reset_view_state()
    params = dict(view.params)
    if present:
        params.update(present="1", deck=deck.name, slide=str(index + 1))
    st.switch_page(page["script"], query_params=params)


# -- the frame: before and after the page ----------------------------------------------------------
def before_page(page) -> None:
    """Runs before the page: forget the last run's charts; in presentation mode, hide the chrome and
    draw the presenter's bar; during a deck export, show its progress and step through the views."""
    st.session_state["_meeting_charts"] = []
    st.session_state["_meeting_run"] = st.session_state.get("_meeting_run", 0) + 1
    job = st.session_state.get("deck_export")
    if job and job.pop("goto_decks", False):
        decks_page = _pages().get("decks")
        if decks_page:
            st.switch_page(decks_page["script"])
    while job and job.get("goto") is not None:
        i = job.pop("goto")
        view = job["views"][i]
        if view["page"] in _pages():
            go_to_view(decks.Deck(job["deck"], tuple(decks.View(**v) for v in job["views"])), i)  # reruns
        # A view of a page the app no longer has: an empty slide that says so, then the next view.
        job["slides"].append(slides.Slide(view["title"], footer=f"This view opens the page “{view['page']}”, "
                                                               "which this version of Touchpoint does not have."))
        if len(job["slides"]) < len(job["views"]):
            job["goto"] = len(job["slides"])
        elif (decks_page := _pages().get("decks")) is not None:
            job["ready"] = True
            st.switch_page(decks_page["script"])
    if not presenting():
        return
    st.html(PRESENT_CSS)
    with st.container(key="present_bar", horizontal=True, vertical_alignment="center"):
        deck_name = st.query_params.get("deck")
        deck = None
        if deck_name:
            try:
                deck = decks.get_deck(_store(), deck_name)
            except TouchpointError as exc:
                _error(exc)
        if deck and deck.views:
            try:
                i = min(max(int(st.query_params.get("slide", "1")) - 1, 0), len(deck.views) - 1)
            except ValueError:
                i = 0
            back = st.button("Previous", icon=":material/arrow_back:", key="present_prev", shortcut="Left",
                             disabled=i == 0 or bool(job))
            st.markdown(f"**{deck.name}** · {i + 1} / {len(deck.views)} · {deck.views[i].title}")
            fwd = st.button("Next", icon=":material/arrow_forward:", key="present_next", shortcut="Right",
                            disabled=i == len(deck.views) - 1 or bool(job))
            if back:
                go_to_view(deck, i - 1)
            if fwd:
                go_to_view(deck, i + 1)
        if st.button("Exit presentation", icon=":material/close_fullscreen:", key="present_exit", shortcut="Esc",
                     disabled=bool(job)):
            for k in MODE_KEYS:
                if k in st.query_params:
                    del st.query_params[k]
            st.rerun()
    if job:
        done = len(job["slides"])
        st.progress(done / len(job["views"]),
                    text=f"Exporting “{job['deck']}”: view {min(done + 1, len(job['views']))} of {len(job['views'])}…")
        _export_ticker()


def _store():
    from pages._ui import get_store

    return get_store()


def after_page(page, analysis: bool) -> None:
    """Runs after an analysis page drew completely: the sidebar's share, present, deck and export tools
    (or, during a deck export, the step to the next view)."""
    if _capture_and_advance():
        st.rerun()
    if not analysis or presenting():
        return
    url_path = page_key(page)
    with st.sidebar:
        st.divider()
        st.caption("**Share and present**")
        st.code(current_link(url_path), language=None, wrap_lines=True)
        st.caption("The link opens this page with these filters and options (copy it with the icon).")
        c1, c2 = st.columns(2)
        if c1.button("Present", icon=":material/slideshow:", key="meeting_present", width="stretch",
                     help="Full screen, large type, no sidebar. Leave with Exit presentation or Esc."):
            st.query_params["present"] = "1"
            st.rerun()
        with c2.popover("Add to deck", icon=":material/playlist_add:", width="stretch"):
            _add_to_deck(url_path, page.title)
        with st.popover("Export slides", icon=":material/download:", width="stretch"):
            _export_page(page.title, url_path)


def _add_to_deck(url_path: str, page_title: str) -> None:
    store = _store()
    names = [d.name for d in decks.load_decks(store)]
    new = "➕ New deck…"
    choice = st.selectbox("Deck", names + [new], key="meeting_deck_pick")
    new_name = st.text_input("New deck name", key="meeting_deck_new") if choice == new else None
    title = st.text_input("Title of this view", value=page_title, key="meeting_view_title", max_chars=decks.MAX_NAME)
    if st.button("Add this view", icon=":material/add:", key="meeting_add", type="primary"):
        try:
            name = choice
            if choice == new:
                name = decks.create_deck(store, new_name or "").name
            deck = decks.add_view(store, name, decks.View(url_path, decks.view_query(_view_params()), title))
            st.success(f"Added as view {len(deck.views)} of “{name}”. Arrange it on the Decks page.")
        except TouchpointError as exc:
            _error(exc)


# -- slide exports ----------------------------------------------------------------------------------
def _slide_for(title: str, url_path: str, charts: list[go.Figure]) -> slides.Slide:
    from pages._ui import FILTER_LABELS, cached_changes, cached_kpis, current_settings, version

    filters = st.session_state.get("filters")
    if filters is None or filters.start is None:
        return slides.Slide(title, charts, footer="No data in the store for this view.")
    v, settings = version(), current_settings()
    metric = st.query_params.get("metric")
    return slides.Slide(title, charts, slides.key_numbers(cached_kpis(v, filters, settings), metric),
                        slides.filters_footer(filters, FILTER_LABELS),
                        slides.change_notes(cached_changes(v, filters, settings), metric),
                        link=current_link(url_path))


def _build(fmt: str, title: str, subtitle: str, deck_slides: list[slides.Slide]) -> bytes | None:
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=message)

    try:
        build = slides.build_pptx if fmt == "pptx" else slides.build_pdf
        data = build(title, subtitle, deck_slides, progress)
    except TouchpointError as exc:
        bar.empty()
        _error(exc)
        return None
    bar.progress(1.0, text=f"{fmt.upper()} ready: {len(deck_slides) + 1} slides.")
    return data


def _export_page(page_title: str, url_path: str) -> None:
    charts = [fig for _, fig in st.session_state.get("_meeting_charts", [])]
    st.caption(f"This page as slides: a title slide and one slide with its {len(charts)} chart"
               f"{'s' if len(charts) != 1 else ''}, key numbers, filters and what changed.")
    c1, c2 = st.columns(2)
    fmt = "pptx" if c1.button("PPTX", key="meeting_page_pptx", width="stretch") else \
        "pdf" if c2.button("PDF", key="meeting_page_pdf", width="stretch") else None
    if fmt:
        s = _slide_for(page_title, url_path, charts)
        filters = st.session_state.get("filters")
        data = _build(fmt, page_title, slides.subtitle_for(filters), [s])
        if data:
            st.session_state["meeting_page_file"] = (fmt, data, f"touchpoint-{_slug(page_title)}-{date.today()}.{fmt}")
    ready = st.session_state.get("meeting_page_file")
    if ready:
        st.download_button(f"Download {ready[0].upper()}", ready[1], file_name=ready[2], mime=MIME[ready[0]],
                           key="meeting_page_dl", type="primary", icon=":material/download:", on_click="ignore")


def start_deck_export(deck: decks.Deck, fmt: str) -> None:
    """Step through the deck's views, recording each, then build the file on the Decks page."""
    st.session_state.pop("deck_export_file", None)
    st.session_state["deck_export"] = {"deck": deck.name, "fmt": fmt, "views": [v.as_dict() for v in deck.views],
                                       "slides": []}
    go_to_view(deck, 0)


def _capture_and_advance() -> bool:
    """Record the view that has just run as the next slide and plan the next step; False when this
    run was already recorded (or there is no export)."""
    job = st.session_state.get("deck_export")
    run = st.session_state.get("_meeting_run")
    if not job or job.get("ready") or job.get("captured") == run or len(job["slides"]) >= len(job["views"]):
        return False
    job["captured"] = run
    view = job["views"][len(job["slides"])]
    charts = [fig for _, fig in st.session_state.get("_meeting_charts", [])]
    job["slides"].append(_slide_for(view["title"], view["page"], charts))
    if len(job["slides"]) < len(job["views"]):
        job["goto"] = len(job["slides"])
    else:
        job["ready"] = True
        for k in MODE_KEYS:
            if k in st.query_params:
                del st.query_params[k]
        job["goto_decks"] = True
    return True


@st.fragment(run_every=1.0)
def _export_ticker() -> None:
    # The normal path records a view at the end of its run (after_page). A view whose page stops
    # early never gets there: this timer's next tick, after that run has ended, records it instead.
    job = st.session_state.get("deck_export")
    run = st.session_state.get("_meeting_run")
    if not job or job.get("armed") != run:
        if job:
            job["armed"] = run
        return
    if _capture_and_advance():
        st.rerun(scope="app")


def finish_deck_export() -> None:
    """On the Decks page: build a deck export whose views have all been recorded, with a progress bar."""
    job = st.session_state.get("deck_export")
    if job and job.get("ready"):
        st.session_state.pop("deck_export")
        filters = st.session_state.get("filters")
        data = _build(job["fmt"], job["deck"], slides.subtitle_for(filters), job["slides"])
        if data:
            st.session_state["deck_export_file"] = (job["fmt"], data,
                                                    f"touchpoint-{_slug(job['deck'])}-{date.today()}.{job['fmt']}")
    ready = st.session_state.get("deck_export_file")
    if ready:
        st.download_button(f"Download {ready[2]}", ready[1], file_name=ready[2], mime=MIME[ready[0]],
                           key="deck_export_dl", type="primary", icon=":material/download:", on_click="ignore")
