"""Streamlit-side helpers shared by the pages: the store handle, cached reads keyed on the data
version, the shared filters, chart styling, and plain-words error display. (Not a page: it is not
registered in app.py.)"""

from __future__ import annotations

import logging
import re
import threading
from datetime import date

import plotly.graph_objects as go
import streamlit as st

from cx import external, insights, metrics
from cx.engine import backend_for, is_external, read_snapshot, snapshot_data_version
from cx.errors import TouchpointError
from cx.filters import COMPARISONS, PRESETS, Filters, data_date_span, dimension_values
from cx.settings import Settings, load_settings
from cx.store import TABLES, Store, open_store


def _leave_pages_directory_mode() -> None:
    """Streamlit starts a server in its old "pages/ directory" mode (this folder is called pages/) and
    leaves it only when app.py first calls st.navigation. Until then, a first visit straight to /data
    after a restart would run that page alone, without app.py: without its sidebar and, worse, without
    its login gate. Every page imports this module first, so the first such run ends here and starts
    again through app.py."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_pages_directory_mode()

_FROZEN = False


def freeze_startup_objects() -> None:
    """Once per process, after the app's imports: collect, then move every object alive so far
    (modules, classes, Streamlit's, Plotly's and Ibis's tables: about 200,000) into the collector's
    permanent generation (``gc.freeze``). They live as long as the process anyway, and otherwise every
    full collection walks them again: about 100 ms, which fell inside one page run in three at 10 M rows
    (the Overview builds many small objects). Objects created later are collected as usual."""
    global _FROZEN
    if not _FROZEN:
        import gc

        gc.collect()
        gc.freeze()
        _FROZEN = True

TABLE_LABELS = {
    "responses": "Survey responses",
    "tickets": "Support tickets",
    "orders": "Orders",
    "events": "Journey events",
    "customers": "Customers",
}
# One colour per metric, everywhere (colour-blind-safe Okabe–Ito hues first).
METRIC_COLOURS = {
    "nps": "#0072B2", "csat": "#009E73", "ces": "#E69F00", "ces_easy": "#E69F00", "responses": "#56B4E9",
    "comment_share": "#56B4E9", "frt_median": "#CC79A7", "frt_mean": "#CC79A7", "frt_p90": "#CC79A7",
    "ttr_median": "#D55E00", "ttr_mean": "#D55E00", "ttr_p90": "#D55E00", "fcr": "#009E73", "reopen_rate": "#D55E00",
    "backlog": "#7F7F7F", "churn_rate": "#C0392B", "retention_rate": "#2E86C1", "revenue": "#6A3D9A",
    "orders": "#6A3D9A", "aov": "#6A3D9A", "purchase_frequency": "#6A3D9A", "clv_historical": "#8E44AD",
}
SERIES_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F", "#F0E442"]
FILTER_LABELS = {"channel": "Channel", "touchpoint": "Touchpoint", "journey_stage": "Journey stage",
                 "segment": "Segment", "region": "Region", "product": "Product"}


def dim_label(dim: str) -> str:
    """A dimension's name for people: its filter label, or the column name in words."""
    return FILTER_LABELS.get(dim, dim.replace("_", " ").capitalize())


@st.cache_resource(show_spinner=False)
def get_store() -> Store:
    """The process's one store (data/touchpoint.duckdb or $TOUCHPOINT_DB)."""
    return open_store()


def backend():
    return backend_for(get_store())


def version() -> int:
    """The cache key of everything computed from the data: the store's data version as the page's
    snapshot sees it (app.py); on an external engine, which has none, a key that changes every few
    minutes (``cx.external.refresh_key``)."""
    if is_external():
        return external.refresh_key()
    return snapshot_data_version(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_row_counts(data_version: int) -> dict[str, int]:
    return external.row_counts(backend()) if is_external() else get_store().row_counts()


@st.cache_data(show_spinner=False, max_entries=8)
def cached_span(data_version: int) -> tuple[date | None, date | None]:
    return data_date_span(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_dimension_values(data_version: int) -> dict[str, list[str]]:
    return dimension_values(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_currencies(data_version: int) -> list[str]:
    return metrics.order_currencies(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_availability(data_version: int) -> dict[str, str | None]:
    return insights.metric_availability(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_batches(data_version: int):
    """The import batches with the rows each still holds (a count over every table: cached per data version)."""
    from cx.ingest import list_batches

    return list_batches(get_store())


def current_settings() -> Settings:
    return load_settings(get_store())


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def cached_overview(data_version: int, filters: Filters, settings: Settings):
    """KPI tiles and what changed, computed together (each metric compared once)."""
    return insights.overview(backend(), get_store(), filters, settings, limit=40,
                             available=cached_availability(data_version))


def cached_kpis(data_version: int, filters: Filters, settings: Settings) -> list[insights.Kpi]:
    return cached_overview(data_version, filters, settings)[0]


def cached_changes(data_version: int, filters: Filters, settings: Settings) -> list[insights.Change]:
    return cached_overview(data_version, filters, settings)[1]


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def cached_nps_mix(data_version: int, filters: Filters) -> dict:
    return insights.nps_mix(backend(), filters)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def cached_trend(data_version: int, metric: str, grain: str, by: str | None, filters: Filters, settings: Settings,
                 top_n: int):
    where, ignored = insights.applicable_where(backend(), metric, filters.where)
    df = metrics.trend(backend(), metric, grain=grain, by=by, start=filters.start, end=filters.end, where=where,
                       top_n=top_n, alpha=settings.alpha, min_n=settings.min_n, ces_easy_min=settings.ces_easy_min)
    return df, ignored


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def cached_segments(data_version: int, metric: str, by: tuple[str, ...], filters: Filters, settings: Settings):
    where, ignored = insights.applicable_where(backend(), metric, filters.where)
    df = metrics.segment_table(backend(), metric, by=by, start=filters.start, end=filters.end, where=where,
                               alpha=settings.alpha, min_n=settings.min_n, ces_easy_min=settings.ces_easy_min)
    return df, ignored


def analysis_context():
    """(filters, settings, data version, metrics with data) for an analysis page; stops the page with
    an empty state that says what to import when there is nothing to analyse."""
    filters = st.session_state.get("filters")
    v = version()
    available = cached_availability(v)
    names = [n for n in metrics.REGISTRY if not available.get(n)]
    if filters is None or filters.start is None or not names:
        st.info("No data yet: import survey responses, tickets, orders or customers on the **Data** page, or load "
                "the demo data there.", icon=":material/upload_file:")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
        st.stop()
    return filters, current_settings(), v, names


# Characters Markdown (and Streamlit's :colour[…], :icon: and $math$ extensions) gives a meaning to
# inside a line (line breaks are flattened, so headings and lists cannot start).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()!|<>~:$])")


def md_text(text: object) -> str:
    """Text from a file, the data or a link, made literal for any Streamlit element that renders
    Markdown (st.markdown, captions, alerts, labels): a segment called "[log in](https://evil.example)"
    shows as those characters, never as a link or an image that loads from elsewhere."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def show_error(exc: TouchpointError) -> None:
    """A domain error in plain words: the problem, then the fix (both literal: they quote file names,
    column names and values)."""
    st.error(f"**{md_text(exc.problem)}**" + (f"\n\n{md_text(exc.fix)}" if exc.fix else ""), icon=":material/error:")


def fmt_int(n: int | float) -> str:
    return f"{int(n):,}"


def sidebar_store_summary(store: Store) -> None:
    counts = cached_row_counts(version())
    total = sum(counts.values())
    st.caption("**Data in the engine**" if is_external() else "**Data in the store**")
    if total == 0:
        st.caption("The engine's tables are empty." if is_external() else
                   "Nothing imported yet: open **Data** to import your exports, or load the demo data.")
        return
    lines = [f"{TABLE_LABELS[t]}: **{fmt_int(counts[t])}**" for t in TABLES if counts[t]]
    st.caption("  \n".join(lines))


# -- shared filters ------------------------------------------------------------------------------
_FILTER_KEYS = ("range", "from", "to", "compare")


def _params_dict() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params.keys()}


def prepare_default_overview() -> None:
    """Fill the caches the Overview reads on a visit with no filters in the URL: the sidebar's numbers,
    then the page's, for the current data version. The same cached functions and arguments as the page,
    so it finds them. Run by ``make run``'s launcher before the first visit (pages/_serve.py) and in the
    background after the data changed (``prepare_overview_in_background``)."""
    freeze_startup_objects()
    store = get_store()
    with read_snapshot(store):
        v = version()
        known = cached_dimension_values(v)
        first, last = cached_span(v)
        cached_row_counts(v)
        cached_currencies(store.data_version())
        cached_availability(v)
        if first is None:  # an empty store: the Overview shows what to import, nothing to prepare
            return
        # As sidebar_filters builds them for a visit without filters in the URL.
        default, _ = Filters.from_query_params({}, known)
        filters = Filters(preset=default.preset, compare=default.compare).resolved(first, last)
        settings = current_settings()
        cached_overview(v, filters, settings)
        cached_nps_mix(v, filters)


PREPARE_THREAD = "touchpoint-prepare"


def try_prepare_default_overview() -> bool:
    """``prepare_default_overview``, a failure only logged: it runs in the background, and the page
    computes the same numbers itself and explains any error. True when the Overview is ready."""
    try:
        prepare_default_overview()
    except Exception as exc:  # noqa: BLE001 - a background convenience must never surface as a crash
        logging.getLogger("touchpoint").warning("The Overview could not be prepared ahead of a visit: %s", exc)
        return False
    return True


def prepare_overview_in_background() -> threading.Thread:
    """After an import or a batch removal: the default Overview of the new data version, computed in a
    background thread so whoever opens it next (at 10 M responses 1.5 s of queries) gets a cache hit."""
    thread = threading.Thread(target=try_prepare_default_overview, name=PREPARE_THREAD, daemon=True)
    thread.start()
    return thread


def sidebar_filters(store: Store) -> Filters:
    """Draw the shared filters (state survives page switches) and mirror them in the URL."""
    v = store.data_version()
    known = cached_dimension_values(v)
    first, last = cached_span(v)
    if not st.session_state.get("flt_init"):
        from_url, notices = Filters.from_query_params(_params_dict(), known)
        st.session_state["flt_range"] = from_url.preset
        if from_url.preset == "custom":
            st.session_state["flt_dates"] = (from_url.start, from_url.end)
        st.session_state["flt_compare"] = from_url.compare
        for dim in known:
            st.session_state[f"flt_dim_{dim}"] = list(dict(from_url.dims).get(dim, ()))
        st.session_state["flt_notices"] = notices
        st.session_state["flt_init"] = True
    st.caption("**Filters**")
    preset = st.selectbox("Date range", list(PRESETS), format_func=PRESETS.get, key="flt_range")
    start = end = None
    if preset == "custom":
        default = st.session_state.get("flt_dates") or (first or date.today(), last or date.today())
        picked = st.date_input("From – to", value=default, min_value=None, key="flt_dates_input")
        if isinstance(picked, (tuple, list)) and len(picked) == 2:
            start, end = picked
            st.session_state["flt_dates"] = (start, end)
        elif st.session_state.get("flt_dates"):
            start, end = st.session_state["flt_dates"]
    st.radio("Compare with", list(COMPARISONS), format_func=COMPARISONS.get, key="flt_compare", horizontal=False)
    f = Filters(preset=preset, start=start, end=end, compare=st.session_state["flt_compare"])
    dated = f.resolved(first, last)
    if dated.start and dated.end:
        st.caption(f"{dated.start:%d %b %Y} – {dated.end:%d %b %Y}"
                   + (f", compared with {_cmp_text(dated)}." if dated.comparison() else "."))
    core = [d for d in known if d in FILTER_LABELS]
    more = [d for d in known if d not in FILTER_LABELS]

    def pick(dim: str) -> None:
        nonlocal f
        chosen = st.multiselect(dim_label(dim), known[dim],
                                key=f"flt_dim_{dim}", placeholder="All")
        if chosen:
            f = f.with_dim(dim, chosen)

    for dim in core:
        pick(dim)
    if more:
        active = sum(bool(st.session_state.get(f"flt_dim_{d}")) for d in more)
        with st.expander(f"More filters{f' ({active} set)' if active else ''}", expanded=bool(active)):
            for dim in more:
                pick(dim)
    for notice in st.session_state.get("flt_notices", []):
        st.info(md_text(notice), icon=":material/link_off:")
    _mirror(f)
    return f.resolved(first, last)


def _cmp_text(f: Filters) -> str:
    lo, hi = f.comparison()
    return f"{lo:%d %b %Y} – {hi:%d %b %Y}"


def _mirror(f: Filters) -> None:
    """Write the filters into the URL, leaving page options (other keys) alone."""
    wanted = f.to_query_params()
    current = _params_dict()
    for key in list(current):
        if (key in _FILTER_KEYS or key.startswith("f.")) and key not in wanted:
            del st.query_params[key]
    for key, value in wanted.items():
        values = value if isinstance(value, list) else [value]
        if current.get(key) != values:
            st.query_params[key] = values if isinstance(value, list) else value


def page_option(key: str, options: list, default, *, label: str, fmt=None, widget=st.selectbox, **kw):
    """A page option that is also in the URL (``?metric=nps``), so a link reproduces the view;
    an unknown value in the URL falls back to the default with a notice."""
    state_key = f"opt_{key}"
    if state_key not in st.session_state:
        url_value = st.query_params.get(key)
        if url_value is not None and url_value not in [str(o) for o in options]:
            st.info(f"The link's {label.lower()} “{md_text(url_value)}” is not available; showing {fmt(default) if fmt else default}.",
                    icon=":material/link_off:")
            url_value = None
        st.session_state[state_key] = next((o for o in options if str(o) == url_value), default)
    if st.session_state[state_key] not in options:
        st.session_state[state_key] = default
    value = widget(label, options, format_func=fmt or str, key=state_key, **kw)
    if str(value) != st.query_params.get(key):
        st.query_params[key] = str(value)
    return value


# -- charts and tables ---------------------------------------------------------------------------
def show_chart(fig: go.Figure, key: str) -> None:
    """Every chart on every page goes through here, so chart-level controls (image export,
    presentation sizing) live in one place. ``key`` is unique on the page, prefixed by it."""
    from pages import _meeting  # image downloads, presentation sizing, recording for slide exports

    presenting = _meeting.presenting()
    if presenting:
        _meeting.present_figure(fig)
    # The toolbar shows while the pointer is over the chart ("hover"), not always: always shown, it covers the
    # end of the title on half-width charts. None when presenting.
    st.plotly_chart(fig, width="stretch", config={"displaylogo": False,
                                                  "displayModeBar": False if presenting else "hover"}, key=key)
    _meeting.chart_tools(fig, key)


# What a table shows in a cell with no value: Streamlit's own default is the word "None".
MISSING = "—"


def show_table(frame, *, raw: bool = False, **kw):
    """A table the width of the page, without pandas' index, its missing values shown as a dash (an empty
    cell for ``raw`` rows of a file, where a dash could be mistaken for the file's own text)."""
    return st.dataframe(frame, hide_index=True, width="stretch", placeholder="" if raw else MISSING, **kw)


def table_download(frame, file_stem: str, key: str, label: str = "Download CSV", sheet: str | None = None) -> None:
    """Formula-safe CSV and XLSX downloads of a table (see cx.export); the XLSX is built on click.
    ``frame`` may be a function returning the table (it runs outside the page script, so it must not
    use Streamlit): then the table itself is read only when a download is clicked, for exports too
    large to build on every rerun. ``sheet``: the XLSX sheet's name."""
    from cx.export import to_csv_bytes, to_xlsx_bytes

    get = frame if callable(frame) else (lambda: frame)
    with st.container(horizontal=True):
        st.download_button(label, (lambda: to_csv_bytes(get())) if callable(frame) else to_csv_bytes(frame),
                           file_name=f"{file_stem}.csv", mime="text/csv", key=key)
        st.download_button("Download XLSX", lambda: to_xlsx_bytes(get(), sheet or "Touchpoint"),
                           file_name=f"{file_stem}.xlsx",
                           mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key=f"{key}_xlsx")


def style_figure(fig: go.Figure, *, title: str, x_title: str | None, y_title: str | None, height: int = 380) -> go.Figure:
    """House style: a title, labelled axes, readable type; the Streamlit theme supplies light/dark colours."""
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=16)),
        height=height, margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, title=None),
        font=dict(size=13), hovermode="x unified",
    )
    fig.update_xaxes(title_text=x_title, showgrid=False)
    fig.update_yaxes(title_text=y_title, zeroline=False)
    return fig


# Where a point's label may go, tried in this order (Plotly textposition names).
LABEL_SPOTS = ("top center", "bottom center", "middle right", "middle left", "top right", "top left",
               "bottom right", "bottom left")


def label_positions(x, y, labels, *, width: float = 860, height: float = 380, font_px: float = 11,
                    marker_px: float = 12) -> tuple[list[str], list[str]]:
    """Text positions for the labels of a scatter chart so that they do not overlap each other or the
    markers: each label (in the given order, most important first) takes the first spot around its
    point that collides with nothing placed so far, else the first that only covers a marker; a label
    with no spot clear of the other labels is left to the hover text (its text becomes ""). Geometry is
    estimated in pixels for a plot ``width`` × ``height`` with Plotly's autorange padding; labels "" are
    not placed. Returns (textposition, text) per point."""
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    if not xs:
        return [], []

    def scale(vals, size):
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or 1.0
        lo, hi = lo - 0.08 * span, hi + 0.08 * span  # roughly Plotly's padding around markers
        return [(v - lo) / (hi - lo) * size for v in vals]

    px, py = scale(xs, width), scale(ys, height)
    r = marker_px / 2 + 2
    boxes = [(a - marker_px / 2, b - marker_px / 2, a + marker_px / 2, b + marker_px / 2) for a, b in zip(px, py)]

    def overlap(b1, b2) -> float:
        w = min(b1[2], b2[2]) - max(b1[0], b2[0])
        h = min(b1[3], b2[3]) - max(b1[1], b2[1])
        return w * h if w > 0 and h > 0 else 0.0

    positions, texts = ["top center"] * len(xs), [""] * len(xs)
    labels_placed: list[tuple] = []
    for i, label in enumerate(labels):
        if not label:
            continue
        w, h = len(str(label)) * font_px * 0.62, font_px * 1.35
        a, b, d = px[i], py[i], r * 0.7
        spots = {"top center": (a - w / 2, b + r, a + w / 2, b + r + h),
                 "bottom center": (a - w / 2, b - r - h, a + w / 2, b - r),
                 "middle right": (a + r, b - h / 2, a + r + w, b + h / 2),
                 "middle left": (a - r - w, b - h / 2, a - r, b + h / 2),
                 "top right": (a + d, b + d, a + d + w, b + d + h), "top left": (a - d - w, b + d, a - d, b + d + h),
                 "bottom right": (a + d, b - d - h, a + d + w, b - d),
                 "bottom left": (a - d - w, b - d - h, a - d, b - d)}
        # First a spot clear of every label and marker; failing that, one clear of labels (over a marker).
        for obstacles in ([b for j, b in enumerate(boxes) if j != i], labels_placed):
            free = [spot for spot in LABEL_SPOTS
                    if spots[spot][0] >= -20 and spots[spot][2] <= width + 20 and spots[spot][1] >= -10
                    and spots[spot][3] <= height + 10 and not any(overlap(spots[spot], o) for o in obstacles)]
            if free:
                positions[i], texts[i] = free[0], str(label)
                boxes.append(spots[free[0]])
                labels_placed.append(spots[free[0]])
                break
    return positions, texts


def unit_axis(metric: str) -> str:
    m = metrics.REGISTRY[metric]
    return {"points": "NPS (points)", "percent": f"{m.label} (%)", "hours": f"{m.label} (hours)",
            "currency": f"{m.label} ({metrics.display_currency() or 'currency'})", "count": m.label, "score": f"{m.label} (1–7)",
            "ratio": m.label}[m.unit]
