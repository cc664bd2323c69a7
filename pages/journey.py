"""Journey: funnels over journey events (conversion, drop-off, time to convert, cohorts, who dropped off)
the touchpoint map (scores by journey stage × touchpoint, pain points) and key drivers (which
experiences go with NPS or churn)."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cx import drivers, funnel, journey, metrics
from cx.engine import is_external
from cx.errors import TouchpointError
from cx.funnel import MODES, FunnelQuery
from cx.settings import Settings
from pages._ui import (METRIC_COLOURS, SERIES_COLOURS, cached_availability, cached_row_counts, current_settings,
                       dim_label, get_store, page_option, show_chart, show_error, show_table, style_figure,
                       table_download, version)

FUNNEL_COLOUR = "#0072B2"
DROPPED_COLOUR = "#BDBDBD"
WINDOWS = ["1h", "1d", "3d", "7d", "14d", "30d", "60d", "90d", "180d"]
MAX_SERIES = 6


# -- cached reads (keyed on the data version, so an import shows at once) -------------------------
@st.cache_data(show_spinner=False, max_entries=8)
def cached_catalog(data_version: int) -> pd.DataFrame:
    return funnel.step_catalog(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def cached_funnel_dims(data_version: int) -> list[str]:
    return funnel.funnel_dimensions(get_store())


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def cached_funnel(data_version: int, q: FunnelQuery) -> pd.DataFrame:
    return funnel.compute_funnel(get_store(), q)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def cached_trend(data_version: int, q: FunnelQuery, grain: str) -> pd.DataFrame:
    return funnel.conversion_trend(get_store(), q, grain)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def cached_times(data_version: int, q: FunnelQuery, step: int, from_first: bool) -> pd.DataFrame:
    return funnel.time_to_convert(get_store(), q, step, from_first=from_first)


@st.cache_data(show_spinner=False, ttl=600, max_entries=8)
def cached_dropped(data_version: int, q: FunnelQuery, step: int) -> pd.DataFrame:
    return funnel.dropped_customers(get_store(), q, step)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def cached_map(data_version: int, rows: str, cols: str, start, end, where: tuple,
               settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells = journey.touchpoint_map(get_store(), rows=rows, cols=cols, start=start, end=end, where=dict(where),
                                   alpha=settings.alpha, min_n=settings.min_n, ces_easy_min=settings.ces_easy_min)
    margins = journey.map_margins(get_store(), cells, start=start, end=end, where=dict(where), min_n=settings.min_n,
                                  ces_easy_min=settings.ces_easy_min)
    return cells, margins


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def cached_sentiment_map(data_version: int, voice_revision: str, rows: str, cols: str, start, end, where: tuple,
                         settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    return journey.sentiment_map(get_store(), rows=rows, cols=cols, start=start, end=end, where=dict(where),
                                 alpha=settings.alpha, min_n=settings.min_n)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=16)
def cached_drivers(data_version: int, voice_revision: str, outcome: str, start, end, where: tuple,
                   settings: Settings) -> pd.DataFrame:
    return drivers.key_drivers(get_store(), outcome=outcome, start=start, end=end, where=dict(where),
                               ces_easy_min=settings.ces_easy_min, min_n=settings.min_n, alpha=settings.alpha)


def fmt_hours(h: float | None) -> str:
    """Hours in the unit a person reads: 45 s, 12 min, 3.4 h, 2.1 d."""
    if h is None or (isinstance(h, float) and math.isnan(h)):
        return "–"
    if h < 1 / 60:
        return f"{h * 3600:.0f} s"
    if h < 1:
        return f"{h * 60:.0f} min"
    if h < 48:
        return f"{h:.1f} h"
    return f"{h / 24:.1f} d"


# -- page -------------------------------------------------------------------------------------------
st.title("Journey")
filters = st.session_state.get("filters")
v = version()
store = get_store()


def funnel_section() -> None:
    if is_external():
        st.info("Funnels read journey events from the DuckDB store; with TOUCHPOINT_ENGINE set to Spark the events "
                "live in the engine. Unset TOUCHPOINT_ENGINE to build funnels.", icon=":material/info:")
        return
    catalog = cached_catalog(v)
    if catalog.empty:
        st.info("No journey events yet. Import an events export (customer, timestamp, step — e.g. a web "
                "analytics or process-mining log) on the **Data** page, or load the demo data there.",
                icon=":material/upload_file:")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
        return
    names = catalog["step"].tolist()
    counts = dict(zip(catalog["step"], catalog["customers"]))
    if "journey_steps" not in st.session_state:
        # A link carries the steps (?steps=A&steps=B…), so a shared funnel opens as it was built.
        from_url = [x for x in st.query_params.get_all("steps") if x in counts][:funnel.MAX_STEPS]
        unknown = [x for x in st.query_params.get_all("steps") if x not in counts]
        if unknown:
            st.info(f"The link's steps {', '.join(repr(x) for x in unknown[:5])} are not in the data; left out.",
                    icon=":material/link_off:")
        st.session_state["journey_steps"] = from_url if len(from_url) >= 2 else names[:min(5, len(names))]
    elif any(x not in counts for x in st.session_state["journey_steps"]):
        # After an import or a removal, steps no longer in the data leave the selection quietly.
        st.session_state["journey_steps"] = [x for x in st.session_state["journey_steps"] if x in counts]
    steps = st.multiselect(
        "Steps, in order", names, key="journey_steps", max_selections=funnel.MAX_STEPS,
        format_func=lambda s: f"{s} ({counts.get(s, 0):,} customers)",
        help="Pick 2 to 20 steps in the order customers should take them. Journey events come first, in typical "
             "journey order; then the timestamps of orders, tickets and survey answers (named after their table).")
    if st.query_params.get_all("steps") != steps:
        st.query_params["steps"] = steps
    c1, c2, c3 = st.columns([3, 1, 2])
    with c1:
        mode = page_option("funnel_mode", list(MODES), "sequential", label="Order", fmt=MODES.get, widget=st.radio,
                           horizontal=True)
    with c2:
        window = page_option("funnel_window", WINDOWS, "14d", label="Conversion window",
                             help="Measured from the first step. Later conversions count as drop-offs.")
    dims = ["(none)"] + cached_funnel_dims(v)
    with c3:
        by = page_option("funnel_by", dims, "(none)", label="Break down by", fmt=dim_label,
                         help="Each customer is counted under the value on their first step's event (first touch).")
    if len(steps) < funnel.MIN_STEPS:
        st.info("Pick at least two steps to see the funnel.", icon=":material/route:")
        return
    where = filters.where if filters else {}
    try:
        q = FunnelQuery.build(steps, mode=mode, window=window, by=None if by == "(none)" else by,
                              start=filters.start if filters else None, end=filters.end if filters else None,
                              where=where)
        with st.spinner("Computing the funnel…"):
            table = cached_funnel(v, q)
    except TouchpointError as exc:
        show_error(exc)
        return
    ignored = table.attrs.get("ignored_filters", [])
    scope = (f"First steps from {q.start:%d %b %Y} to {q.end:%d %b %Y}" if q.start and q.end else "All first steps")
    st.caption(scope + f"; conversion window {window} from the first step"
               + (f". Filters on {', '.join(dim_label(d) for d in ignored)} do not apply to journey events."
                  if ignored else "."))
    if q.by is None:
        _overall_chart(table, q)
    else:
        _breakdown_chart(table, q)
    _step_table(table, q)
    _times(q)
    _trend(q)
    _dropped(q, table)


def _overall_chart(table: pd.DataFrame, q: FunnelQuery) -> None:
    entered = int(table["customers"].iloc[0])
    if entered == 0:
        st.info("No customer did the first step in this date range with these filters. Widen the date range "
                "in the sidebar or pick another first step.")
        return
    # The numbers sit under each bar, where a short bar cannot squeeze them; the step number keeps a
    # repeated step name its own bar.
    labels = [f"{k}. {name}<br><b>{p:.1f}%</b> · {n:,}" for k, name, p, n in
              zip(table["step"], table["step_name"], table["conversion_pct"], table["customers"])]
    fig = go.Figure()
    fig.add_bar(x=labels, y=table["conversion_pct"], name="Converted", marker_color=FUNNEL_COLOUR,
                customdata=table[["customers", "step_conversion_pct", "step_name"]].to_numpy(),
                hovertemplate="%{customdata[2]}: %{y:.1f}% of entrants (%{customdata[0]:,} customers), "
                              "%{customdata[1]:.1f}% of the previous step<extra></extra>")
    lost = 100.0 - table["conversion_pct"]
    fig.add_bar(x=labels, y=lost, name="Dropped off by this step", marker_color=DROPPED_COLOUR,
                customdata=list(zip(entered - table["customers"], table["step_name"])),
                hovertemplate="%{customdata[1]}: %{customdata[0]:,} customers dropped off by here<extra></extra>")
    fig.update_layout(barmode="stack", hovermode="closest")
    style_figure(fig, title=f"Funnel: {entered:,} customers entered", x_title="Step (share and number of entrants)",
                 y_title="Customers who entered (%)", height=420)
    fig.update_yaxes(range=[0, 100])
    show_chart(fig, key="journey_funnel")
    last = table.iloc[-1]
    worst = table.iloc[1:].sort_values("step_conversion_pct").iloc[0]
    st.caption(f"{last['conversion_pct']:.1f}% of the customers who did “{table['step_name'].iloc[0]}” went on to "
               f"“{last['step_name']}” within the window. The biggest loss is before “{worst['step_name']}”: "
               f"{worst['dropoff']:,} customers ({100 - worst['step_conversion_pct']:.1f}% of the step before).")


def _breakdown_chart(table: pd.DataFrame, q: FunnelQuery) -> None:
    col = q.by
    sizes = table[table["step"] == 1].set_index(col)["customers"]
    if sizes.sum() == 0:
        st.info("No customer did the first step in this date range with these filters.")
        return
    shown = sizes.sort_values(ascending=False).index[:MAX_SERIES].tolist()
    fig = go.Figure()
    for i, value in enumerate(shown):
        part = table[table[col] == value]
        fig.add_bar(x=[f"{k}. {name}" for k, name in zip(part["step"], part["step_name"])], y=part["conversion_pct"],
                    name=f"{value} (n {int(sizes[value]):,})",
                    marker_color=SERIES_COLOURS[i % len(SERIES_COLOURS)],
                    customdata=part[["customers"]].to_numpy(),
                    hovertemplate=f"{value}: " + "%{y:.1f}% (%{customdata[0]:,} customers)<extra></extra>")
    fig.update_layout(barmode="group", hovermode="closest")
    style_figure(fig, title=f"Conversion by {dim_label(col).lower()}", x_title="Step",
                 y_title="Customers who entered (%)", height=420)
    fig.update_yaxes(range=[0, 100])
    show_chart(fig, key="journey_funnel_by")
    extra = f" The {len(sizes) - len(shown)} smaller values are in the table." if len(sizes) > len(shown) else ""
    st.caption(f"Share of each {dim_label(col).lower()}'s entrants who reached each step; n is the number who "
               f"entered. A customer's value is the one on their first step.{extra}")
    settings = current_settings()
    groups = funnel.compare_groups(table, col, alpha=settings.alpha, min_n=settings.min_n)
    last = q.steps[-1] if q.mode != "any" else "all the steps"
    differing = groups[groups["differs"]]
    if len(groups) == 2:
        differing = differing.head(1)  # with two values, one sentence says it for both
    for _, g in differing.iterrows():
        word, colour = ("better", "green") if g["conversion_pct"] > g["rest_pct"] else ("worse", "red")
        p = "adjusted p < 0.001" if g["p_adjusted"] < 0.001 else f"adjusted p = {g['p_adjusted']:.3f}"
        st.markdown(f":{colour}[{'▲' if word == 'better' else '▼'}] **{g[col]}** converts {word} than the rest: "
                    f"{g['conversion_pct']:.1f}% reach “{last}” against {g['rest_pct']:.1f}% ({g['entered']:,} "
                    f"entered, {p}).")
    if not groups["differs"].any():
        st.caption(f"No {dim_label(col).lower()} converts significantly differently from the rest (two-proportion "
                   f"tests, Benjamini–Hochberg-adjusted, at least {settings.min_n} entrants).")


def _step_table(table: pd.DataFrame, q: FunnelQuery) -> None:
    show = table.copy()
    for c in ("median_hours", "p90_hours", "median_hours_from_first"):
        show[c] = show[c].map(fmt_hours)
    rename = {"step": "#", "step_name": "Step", "customers": "Customers", "conversion_pct": "% of entrants",
              "step_conversion_pct": "% of previous step", "dropoff": "Dropped off",
              "median_hours": "Median time from previous", "p90_hours": "90% within (from previous)",
              "median_hours_from_first": "Median time from first"}
    if q.by:
        rename[q.by] = dim_label(q.by)
    show_table(show.rename(columns=rename),
               column_config={"% of entrants": st.column_config.NumberColumn(format="%.1f%%"),
                              "% of previous step": st.column_config.NumberColumn(format="%.1f%%"),
                              "Customers": st.column_config.NumberColumn(format="localized"),
                              "Dropped off": st.column_config.NumberColumn(format="localized")})
    table_download(table, "funnel_steps", key="journey_steps_csv", label="Download the step table (CSV)")


def _times(q: FunnelQuery) -> None:
    if not st.toggle("Show how long customers took to convert", key="journey_show_times"):
        return
    n = len(q.steps)
    c1, c2 = st.columns([3, 2])
    label = (lambda k: f"Any {k} of {n} steps") if q.mode == "any" else (lambda k: f"{k}. {q.steps[k - 1]}")
    step = c1.selectbox("Step reached", list(range(2, n + 1)), index=n - 2, format_func=label, key="journey_time_step")
    base = c2.radio("Measured from", ["previous", "first"], format_func=lambda b: f"the {b} step",
                    key="journey_time_from", horizontal=True)
    try:
        with st.spinner("Measuring times to convert…"):
            dist = cached_times(v, replace(q, by=None), step, base == "first")
    except TouchpointError as exc:
        show_error(exc)
        return
    if dist["customers"].sum() == 0:
        st.info("Nobody reached that step in the window.")
        return
    fig = go.Figure(go.Bar(x=dist["bucket"], y=dist["customers"], marker_color=FUNNEL_COLOUR,
                           customdata=dist[["share_pct", "cumulative_pct"]].to_numpy(),
                           hovertemplate="%{x}: %{y:,} customers (%{customdata[0]:.1f}%, "
                                         "%{customdata[1]:.1f}% by then)<extra></extra>"))
    style_figure(fig, title=f"Time to reach “{label(step)}” from the {base} step", x_title="Time taken",
                 y_title="Customers", height=340)
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="journey_times")
    st.caption(f"{int(dist['customers'].sum()):,} customers reached the step within the window; each bar counts "
               "those whose time falls in its range (the lower bound included).")


def _trend(q: FunnelQuery) -> None:
    st.subheader("Conversion by cohort")
    grain = st.selectbox("Cohort of first-step date", list(funnel.TREND_GRAINS), index=1, key="journey_grain",
                         format_func=str.capitalize)
    try:
        with st.spinner("Computing cohorts…"):
            trend = cached_trend(v, replace(q, by=None), grain)
    except TouchpointError as exc:
        show_error(exc)
        return
    if trend.empty:
        st.info("No cohort in this range.")
        return
    done, open_ = trend[trend["complete"]], trend[~trend["complete"]]
    fig = go.Figure()
    fig.add_scatter(x=list(trend["cohort"]) + list(trend["cohort"])[::-1],
                    y=list(trend["ci_high"]) + list(trend["ci_low"])[::-1], fill="toself", mode="lines",
                    line=dict(width=0), fillcolor="rgba(0,114,178,0.15)", name="95% interval", hoverinfo="skip")
    fig.add_scatter(x=done["cohort"], y=done["conversion_pct"], mode="lines+markers", name="Conversion",
                    line=dict(color=FUNNEL_COLOUR), customdata=done[["converted", "entered"]].to_numpy(),
                    hovertemplate="%{x|%d %b %Y}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>")
    if not open_.empty:
        fig.add_scatter(x=open_["cohort"], y=open_["conversion_pct"], mode="markers", name="Window still open",
                        marker=dict(color=FUNNEL_COLOUR, symbol="circle-open", size=9),
                        customdata=open_[["converted", "entered"]].to_numpy(),
                        hovertemplate="%{x|%d %b %Y}: %{y:.1f}% so far (%{customdata[0]:,} of %{customdata[1]:,})"
                                      "<extra></extra>")
    style_figure(fig, title=f"Conversion to “{q.steps[-1] if q.mode != 'any' else 'all steps'}” by {grain} of entry",
                 x_title=f"{grain.capitalize()} of the first step", y_title="Converted within the window (%)",
                 height=360)
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="journey_trend")
    st.caption("Each point is the customers who entered the funnel in that period, with a 95% Wilson interval. "
               "Open circles: the window has not fully elapsed in the data yet, so the rate can still rise.")
    table_download(trend, "funnel_cohorts", key="journey_trend_csv", label="Download the cohorts (CSV)")


def _dropped(q: FunnelQuery, table: pd.DataFrame) -> None:
    st.subheader("Who dropped off")
    n = len(q.steps)
    overall = table.groupby("step")["dropoff"].sum()
    label = (lambda k: f"before any {k} of {n} steps") if q.mode == "any" else \
        (lambda k: f"before {k}. {q.steps[k - 1]} ({int(overall.get(k, 0)):,} customers)")
    step = st.selectbox("Customers who dropped off", list(range(2, n + 1)), format_func=label, key="journey_drop_step")
    try:
        dropped = cached_dropped(v, q, step)
    except TouchpointError as exc:
        show_error(exc)
        return
    st.caption(f"{len(dropped):,} customers reached the step before but not this one within the window: their IDs, "
               "when they entered, their last step and when the window closed, to follow up with.")
    if len(dropped):
        shown = dropped.rename(columns={"customer_id": "Customer", "entered_at": "Entered",
                                        "last_step": "Last step reached", "last_step_at": "Reached at",
                                        "window_ends_at": "Window closed", **({q.by: dim_label(q.by)} if q.by else {})})
        minutes = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
        show_table(shown.head(200),
                   column_config={c: minutes for c in ("Entered", "Reached at", "Window closed")})
        table_download(shown, f"dropped_before_step_{step}", key="journey_dropped_csv",
                       label=f"Download all {len(dropped):,} customers (CSV)")


MAP_VIEWS = {"nps": "NPS", "csat": "CSAT", "ces": "CES", "sentiment": "Sentiment", "volume": "Volume (answers)"}
SENTIMENT_MEASURES = {"negative": "Negative comments (%)", "mean": "Mean sentiment (−1 to +1)"}


def touchpoint_section() -> None:
    settings = current_settings()
    dims = store.dimensions("responses")
    if filters is None or filters.start is None or not cached_row_counts(v).get("responses"):
        st.info("No survey answers yet: import NPS, CSAT or CES responses with a journey stage and a touchpoint "
                "or channel on the **Data** page, or load the demo data there.", icon=":material/upload_file:")
        return
    c1, c2, c3 = st.columns([2, 2, 3])
    rows = c1.selectbox("Rows", dims, index=dims.index("journey_stage") if "journey_stage" in dims else 0,
                        format_func=dim_label, key="journey_map_rows")
    col_dims = [d for d in dims if d != rows]
    cols = c2.selectbox("Columns", col_dims,
                        index=col_dims.index("touchpoint") if "touchpoint" in col_dims else 0,
                        format_func=dim_label, key="journey_map_cols")
    view = c3.radio("Show", list(MAP_VIEWS), format_func=MAP_VIEWS.get, horizontal=True, key="journey_map_view")
    response_cols = set(store.columns("responses"))
    where = tuple(sorted((d, v) for d, v in filters.where.items() if d in response_cols))
    try:
        with st.spinner("Scoring every stage and touchpoint…"):
            cells, margins = cached_map(v, rows, cols, filters.start, filters.end, where, settings)
    except TouchpointError as exc:
        show_error(exc)
        return
    if cells.empty:
        st.info(f"No NPS, CSAT or CES answers with a {dim_label(rows).lower()} and a {dim_label(cols).lower()} in "
                "this range. Widen the dates, or import answers that carry both.")
        return
    senti, senti_margins = _sentiment_cells(rows, cols, where, settings)
    if view == "sentiment":
        measure = st.radio("Sentiment as", list(SENTIMENT_MEASURES), format_func=SENTIMENT_MEASURES.get,
                           horizontal=True, key="journey_map_sentiment_measure")
        _sentiment_heatmap(senti, senti_margins, rows, cols, settings, measure)
    else:
        _map_heatmap(cells, margins, rows, cols, view, settings)
    pains = journey.pain_points(cells)
    senti_pains = journey.sentiment_pain_points(senti)
    st.subheader("Pain points")
    if pains.empty:
        st.caption(f"No cell with at least {settings.min_n} answers scores significantly below the rest of the "
                   f"journey (Benjamini–Hochberg-adjusted p < {settings.alpha}).")
    for sentence in pains["sentence"]:
        st.markdown(f":red[▼] {sentence}")
    for sentence in senti_pains["sentence"]:
        st.markdown(f":red[▼] {sentence}")
    if not senti.empty and senti_pains.empty:
        st.caption(f"No cell with at least {settings.min_n} scored comments is significantly more negative than the "
                   f"rest of the journey (Benjamini–Hochberg-adjusted p < {settings.alpha}).")
    table_download(cells, "touchpoint_map", key="journey_map_csv", label="Download the map (CSV)")
    if not senti.empty:
        table_download(senti, "touchpoint_map_sentiment", key="journey_map_sentiment_csv",
                       label="Download the map's sentiment (CSV)")


def _voice_revision() -> str:
    """Changes when the Voice analysis does (new scores, edited theme rules), so cached views follow it."""
    if is_external():
        return ""
    from cx import voice

    return voice.revision(store)


def _sentiment_cells(rows: str, cols: str, where: tuple, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The map's comment sentiment, from the Voice analysis in the store (none with an external engine)."""
    if is_external():
        return pd.DataFrame(), pd.DataFrame()
    try:
        with st.spinner("Reading the comments' sentiment…"):
            return cached_sentiment_map(v, _voice_revision(), rows, cols, filters.start, filters.end, where,
                                        settings)
    except TouchpointError as exc:
        show_error(exc)
        return pd.DataFrame(), pd.DataFrame()


def _sentiment_heatmap(cells: pd.DataFrame, margins: pd.DataFrame, rows: str, cols: str, settings: Settings,
                       measure: str = "negative") -> None:
    if is_external():
        st.info("Comment sentiment lives in the DuckDB store; with TOUCHPOINT_ENGINE set it is not on the map. "
                "Unset TOUCHPOINT_ENGINE to see it.", icon=":material/info:")
        return
    from cx import voice

    counts = voice.current_counts(store)
    if counts["analysed"] < counts["comments"]:
        waiting = counts["comments"] - counts["analysed"]
        st.info(f"{waiting:,} of {counts['comments']:,} comments have not been analysed "
                "since they were imported or changed, so they are not on the map yet. Open the **Voice** page (or run "
                "`python -m cx voice`) to analyse them.", icon=":material/hourglass_top:")
    if cells.empty:
        st.info(f"No scored comments on survey answers with a {dim_label(rows).lower()} and a "
                f"{dim_label(cols).lower()} in this range. Import answers with a comment column on the **Data** "
                "page; the **Voice** page shows how they are scored.", icon=":material/forum:")
        return
    row_vals = sorted(cells[rows].astype(str).unique(), key=journey.stage_sort_key)
    col_vals = cells.groupby(cells[cols].astype(str))["comments"].sum().sort_values(ascending=False).index.tolist()
    all_row, all_col = f"All {dim_label(rows).lower()}s", f"All {dim_label(cols).lower()}s"
    lookup = {(str(r[rows]), str(r[cols])): r for _, r in cells.iterrows()}
    margin = {}
    for _, m in margins.iterrows():
        key = ((m["value_of"], all_col) if m["axis"] == "rows" else (all_row, m["value_of"]) if m["axis"] == "cols"
               else (all_row, all_col))
        margin[key] = m

    def pct(x) -> str:
        return "–" if x is None or pd.isna(x) else f"{x:.0f}%"

    def mean(x) -> str:
        return "–" if x is None or pd.isna(x) else f"{x:+.2f}"

    shown, z_col = (pct, "value") if measure == "negative" else (mean, "mean_score")
    z, text, hover = [], [], []
    for rv in row_vals + [all_row]:
        zr, tr, hr = [], [], []
        for cv in col_vals + [all_col]:
            r, m = lookup.get((rv, cv)), margin.get((rv, cv))
            if m is not None:
                low = bool(m["low_n"])
                zr.append(None)
                tr.append(f"<i>{shown(m[z_col])}</i><br>n {int(m['n']):,}{' · low n' if low else ''}")
                hr.append(f"{rv} · {cv}: {pct(m['value'])} of {int(m['n']):,} scored comments negative, "
                          f"mean sentiment {mean(m['mean_score'])}")
            elif r is None:
                zr.append(None)
                tr.append("")
                hr.append(f"{rv} · {cv}: no comments")
            else:
                low = bool(r["low_n"])
                mark = "▼ " if r["worse"] else "▲ " if r["better"] else ""
                zr.append(None if low or pd.isna(r[z_col]) else float(r[z_col]))
                tr.append(f"<b>{mark}{shown(r[z_col])}</b><br>n {int(r['n']):,}{' · low n' if low else ''}")
                hr.append(f"{rv} · {cv}: {pct(r['value'])} negative (95% {pct(r['ci_low'])} to {pct(r['ci_high'])}), "
                          f"mean sentiment {mean(r['mean_score'])}, {int(r['n']):,} scored of {int(r['comments']):,} "
                          "comments")
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    whole = margins[margins["axis"] == "all"]
    if measure == "negative":
        overall = float(cells["overall"].iloc[0])
        colorscale, bar, said = [[0, "#009E73"], [0.5, "#F7F7F7"], [1, "#D55E00"]], "Negative (%)", f"{overall:.1f}%"
    else:
        overall = float(whole["mean_score"].iloc[0]) if len(whole) else 0.0
        colorscale, bar, said = [[0, "#D55E00"], [0.5, "#F7F7F7"], [1, "#009E73"]], "Mean sentiment", f"{overall:+.2f}"
    fig = go.Figure(go.Heatmap(z=z, x=col_vals + [all_col], y=row_vals + [all_row], text=text,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale=colorscale, zmid=overall, xgap=3, ygap=3, textfont=dict(size=13),
                               colorbar=dict(title=dict(text=bar))))
    style_figure(fig, title=f"{SENTIMENT_MEASURES[measure]} by {dim_label(rows).lower()} and {dim_label(cols).lower()}",
                 x_title=dim_label(cols), y_title=dim_label(rows), height=max(320, 110 + 70 * (len(row_vals) + 1)))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="journey_map_sentiment")
    what = ("Share of each cell's scored comments that read negative" if measure == "negative" else
            "Mean sentiment of each cell's scored comments (−1 very negative to +1 very positive)")
    st.caption(f"{what}, with how many were scored, against the whole map ({said}, white); orange more negative, "
               f"green less. ▼/▲: a significantly higher/lower share of negative comments than the rest after "
               f"adjusting for the number of cells; "
               f"cells with fewer than {settings.min_n} scored comments are left white and marked low n. Sentiment "
               "comes from the Voice analysis of each comment's present text.")


def _map_heatmap(cells: pd.DataFrame, margins: pd.DataFrame, rows: str, cols: str, view: str,
                 settings: Settings) -> None:
    present = cells["metric"].unique().tolist()
    if view != "volume" and view not in present:
        st.info(f"No {MAP_VIEWS[view]} answers on this map. The map has: "
                f"{', '.join(MAP_VIEWS[m] for m in present)}.")
        return
    if view == "volume":
        grid = cells.drop_duplicates([rows, cols])[[rows, cols, "volume"]]
        z_col, fmt = "volume", (lambda x: f"{int(x):,}")
    else:
        grid = cells[cells["metric"] == view]
        z_col, fmt = "value", (lambda x: metrics.format_value(view, x))
    # Every stage and touchpoint of the map, whatever the view, so the grid keeps its shape.
    row_vals = sorted(cells[rows].astype(str).unique(), key=journey.stage_sort_key)
    col_vals = cells.drop_duplicates([rows, cols]).groupby(cells[cols].astype(str))["volume"].sum() \
        .sort_values(ascending=False).index.tolist()
    lookup = {(str(r[rows]), str(r[cols])): r for _, r in grid.iterrows()}
    # Margins: each stage over all touchpoints (last column), each touchpoint over all stages (last row).
    all_row, all_col = f"All {dim_label(rows).lower()}s", f"All {dim_label(cols).lower()}s"
    margin_rows = margins if view == "volume" else margins[margins["metric"] == view]
    if view == "volume":
        margin_rows = margin_rows.drop_duplicates(["axis", "value_of"])
    margin = {((m["value_of"], all_col) if m["axis"] == "rows" else (all_row, m["value_of"])): m
              for _, m in margin_rows.iterrows()}
    if view == "volume":
        corner_total = int(cells.drop_duplicates([rows, cols])["volume"].sum())
        margin[(all_row, all_col)] = pd.Series({"volume": corner_total})
    elif not grid.empty:
        margin[(all_row, all_col)] = pd.Series({"value": float(grid["overall"].iloc[0]), "n": int(grid["n"].sum()),
                                                "low_n": False})
    row_vals, col_vals = row_vals + [all_row], col_vals + [all_col]
    z, text, hover = [], [], []
    for rv in row_vals:
        zr, tr, hr = [], [], []
        for cv in col_vals:
            r = lookup.get((rv, cv))
            m = margin.get((rv, cv))
            if m is not None:
                if view == "volume":
                    zr.append(None)
                    tr.append(f"<i>{fmt(m['volume'])}</i>")
                    hr.append(f"{rv} · {cv}: {fmt(m['volume'])} answers")
                else:
                    zr.append(None if bool(m["low_n"]) else float(m["value"]))
                    tr.append(f"<i>{fmt(m['value'])}</i><br>n {int(m['n']):,}{' · low n' if m['low_n'] else ''}")
                    hr.append(f"{rv} · {cv}: {MAP_VIEWS[view]} {fmt(m['value'])}, n {int(m['n']):,}")
            elif r is None:
                zr.append(None)
                tr.append("")
                hr.append(f"{rv} · {cv}: no {MAP_VIEWS[view]} answers")
            elif view == "volume":
                zr.append(float(r["volume"]))
                tr.append(fmt(r["volume"]))
                hr.append(f"{rv} · {cv}: {fmt(r['volume'])} answers")
            else:
                mark = "▼ " if r["worse"] else "▲ " if r["better"] else ""
                low = bool(r["low_n"])
                zr.append(None if low else float(r["value"]))
                tr.append(f"<b>{mark}{fmt(r['value'])}</b><br>n {int(r['n']):,}{' · low n' if low else ''}")
                hr.append(f"{rv} · {cv}: {MAP_VIEWS[view]} {fmt(r['value'])} (95% {fmt(r['ci_low'])} to "
                          f"{fmt(r['ci_high'])}), n {int(r['n']):,}")
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    if view == "volume":
        colorscale, mid = [[0, "#F7FBFF"], [1, METRIC_COLOURS["responses"]]], None
    else:
        colorscale, mid = [[0, "#D55E00"], [0.5, "#F7F7F7"], [1, "#009E73"]], float(grid["overall"].iloc[0])
        if metrics.REGISTRY[view].good == "down":
            colorscale = colorscale[::-1]
    fig = go.Figure(go.Heatmap(z=z, x=col_vals, y=row_vals, text=text, texttemplate="%{text}", customdata=hover,
                               hovertemplate="%{customdata}<extra></extra>", colorscale=colorscale, zmid=mid,
                               xgap=3, ygap=3, textfont=dict(size=13), colorbar=dict(title=dict(text=MAP_VIEWS[view]))))
    title = (f"Survey answers by {dim_label(rows).lower()} and {dim_label(cols).lower()}" if view == "volume" else
             f"{MAP_VIEWS[view]} by {dim_label(rows).lower()} and {dim_label(cols).lower()}")
    style_figure(fig, title=title, x_title=dim_label(cols), y_title=dim_label(rows),
                 height=max(320, 110 + 70 * len(row_vals)))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="journey_map")
    if view == "volume":
        st.caption(f"Number of survey answers in each cell, whatever the question; the last row and column (in "
                   f"italics) add up each {dim_label(cols).lower()} and each {dim_label(rows).lower()}.")
    else:
        overall = metrics.format_value(view, float(grid["overall"].iloc[0]))
        st.caption(f"Colour: {MAP_VIEWS[view]} against the whole map ({overall}, white); green better, orange worse. "
                   f"▼/▲: significantly worse/better than the rest after adjusting for the number of cells; "
                   f"cells with fewer than {settings.min_n} answers are left white and marked low n. The last row "
                   "and column (in italics) pool each column and each row.")


def drivers_section() -> None:
    settings = current_settings()
    available = cached_availability(v)
    outcomes = ["nps"] + (["churn"] if not available.get("churn_rate") else [])
    if filters is None or filters.start is None or available.get("nps"):
        st.info("Key drivers need NPS answers linked to customer IDs, with support tickets, touchpoint ratings or "
                "comments for the same customers: import them on the **Data** page, or load the demo data there.",
                icon=":material/upload_file:")
        return
    outcome = st.radio("Explain", outcomes, format_func=lambda o: {"nps": "NPS", "churn": "Churn"}[o],
                       horizontal=True, key="journey_driver_outcome")
    where = tuple(sorted(filters.where.items()))
    try:
        with st.spinner("Weighing every experience (regression and bootstrap)…"):
            table = cached_drivers(v, _voice_revision(), outcome, filters.start, filters.end, where, settings)
    except TouchpointError as exc:
        show_error(exc)
        return
    r2, n = table.attrs["r2"], table.attrs["n"]
    unit = "NPS points" if outcome == "nps" else "points of churn"
    colour = METRIC_COLOURS["nps"] if outcome == "nps" else METRIC_COLOURS["churn_rate"]
    d = table.sort_values("importance_pct")
    short = "NPS pts" if outcome == "nps" else "pts churn"
    fig = go.Figure(go.Bar(
        y=[f"{lab} · {e:+.0f} {short} · n {k:,}" for lab, e, k in zip(d["label"], d["effect"], d["n_with"])],
        x=d["importance_pct"], orientation="h", marker_color=colour,
        error_x=dict(type="data", symmetric=False, array=d["ci_high"] - d["importance_pct"],
                     arrayminus=d["importance_pct"] - d["ci_low"], color="#666"),
        customdata=d[["ci_low", "ci_high", "mean_with", "mean_without"]].to_numpy(),
        hovertemplate="%{y}<br>%{x:.1f}% of the explained difference (95% %{customdata[0]:.1f}–%{customdata[1]:.1f}%)"
                      "<extra></extra>"))
    label = "NPS" if outcome == "nps" else "churn"
    style_figure(fig, title=f"What goes with {label}: share of the explained difference", x_title="Importance (%)",
                 y_title=None, height=max(300, 80 + 40 * len(d)))
    fig.update_xaxes(range=[0, min(100.0, max(10.0, float(d["ci_high"].max()) * 1.08))])
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="journey_drivers")
    scope = ("each customer's latest NPS answer in the range and what happened in the 90 days before it"
             if outcome == "nps" else "whether each customer churned and what happened in the range")
    st.caption(f"How to read: each bar is the share of the explained difference in {label} that an experience "
               "carries when all of them are weighed together (Shapley decomposition of a regression's R², fair to "
               f"overlapping experiences), with a 95% bootstrap interval over {table.attrs['bootstrap']} resamples of "
               f"customers. Beside each label: the raw gap in {unit} between customers who had the experience and the "
               "others, and how many had it."
               + (" “Mentioned: …” bars are comment themes (as on the Voice page) the customer raised in a survey "
                  "comment or ticket in the same window." if (table["group"] == "Theme").any() else ""))
    st.caption(f"Based on {n:,} customers: {scope}. Together these experiences explain {100 * r2:.1f}% of the "
               "variation between customers; the rest lies elsewhere. Association, not proof of cause."
               + (f" Not weighed (fewer than {settings.min_n} customers had or lacked it, or beyond the "
                  f"{drivers.MAX_FEATURES} experiences one model weighs, where the touchpoint ratings and themes "
                  f"that go least with {label} leave first): {', '.join(table.attrs['left_out'])}."
                  if table.attrs["left_out"] else ""))
    table_download(table, f"key_drivers_{outcome}", key="journey_drivers_csv", label="Download the drivers (CSV)")


funnel_tab, map_tab, drivers_tab = st.tabs(["Funnels", "Touchpoint map", "Key drivers"])
with funnel_tab:
    funnel_section()
with map_tab:
    touchpoint_section()
with drivers_tab:
    drivers_section()
