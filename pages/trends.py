"""Trends: any metric over time, with its 95% band, target, breakdown and significant changes."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from cx import metrics
from cx.errors import TouchpointError
from pages._ui import (METRIC_COLOURS, SERIES_COLOURS, analysis_context, cached_dimension_values, cached_trend,
                       dim_label, page_option, show_chart, show_error, show_table, style_figure, table_download,
                       unit_axis)

st.title("Trends")
filters, settings, v, names = analysis_context()
dims = ["(none)"] + list(cached_dimension_values(v))

c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
with c1:
    metric = page_option("metric", names, "nps" if "nps" in names else names[0], label="Metric",
                         fmt=lambda n: metrics.REGISTRY[n].label)
with c2:
    grain = page_option("grain", list(metrics.GRAINS), "month", label="Time grain", fmt=str.capitalize)
with c3:
    by = page_option("by", dims, "(none)", label="Break down by", fmt=dim_label)
with c4:
    layout = page_option("layout", ["lines", "small multiples"], "lines", label="Breakdown shown as",
                         fmt=str.capitalize)
o1, o2, o3 = st.columns([2, 2, 3])
rolling = o1.toggle("Rolling average (3 periods)", key="trends_rolling")
show_band = o2.toggle("95% band", value=True, key="trends_band",
                      help="Shown for a single line or small multiples; with several lines, hover for each interval.")
top_n = o3.slider("Largest segments shown (the rest pooled as “Other”)", 2, 8, 5, key="trends_top_n")

m = metrics.REGISTRY[metric]
try:
    with st.spinner("Computing the trend…"):
        df, ignored = cached_trend(v, metric, grain, None if by == "(none)" else by, filters, settings, top_n)
except TouchpointError as exc:
    show_error(exc)
    st.stop()
if ignored:
    st.caption(f"Filters on {', '.join(ignored)} do not apply to {m.label} ({m.table}) and are ignored here.")
if df.empty or df["value"].notna().sum() == 0:
    st.info(f"No {m.label} values in {filters.start:%d %b %Y} – {filters.end:%d %b %Y} with these filters.")
    st.stop()

target = settings.target_map.get(metric)
groups = [None] if by == "(none)" else list(dict.fromkeys(df[by]))
multiples = by != "(none)" and layout == "small multiples"
rows = (len(groups) + 2) // 3 if multiples else 1
fig = make_subplots(rows=rows, cols=3 if multiples else 1, shared_yaxes=True, shared_xaxes=True,
                    subplot_titles=[str(g) for g in groups] if multiples else None,
                    vertical_spacing=0.12 if multiples else 0.02)
for i, g in enumerate(groups):
    sub = df if g is None else df[df[by] == g]
    colour = (METRIC_COLOURS.get(metric, SERIES_COLOURS[0]) if g is None or multiples
              else "#8C8C8C" if g == "Other" else SERIES_COLOURS[i % len(SERIES_COLOURS)])
    pos = dict(row=i // 3 + 1, col=i % 3 + 1) if multiples else dict(row=1, col=1)
    name = m.label if g is None else str(g)
    # Bands of several overlapping lines hide each other: they are drawn for one line or small multiples.
    if show_band and (g is None or multiples) and sub["ci_low"].notna().any():
        fig.add_trace(go.Scatter(x=list(sub["period"]) + list(sub["period"][::-1]),
                                 y=list(sub["ci_high"]) + list(sub["ci_low"][::-1]), fill="toself", fillcolor=colour,
                                 opacity=0.15, line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 name=f"{name} 95% band"), **pos)
    y = sub["value"].rolling(3, min_periods=1).mean() if rolling else sub["value"]
    fig.add_trace(go.Scatter(
        x=sub["period"], y=y, mode="lines+markers", name=name, line=dict(color=colour, width=2.5),
        marker=dict(size=[9 if c else 5 for c in sub["changed"]], symbol=["diamond" if c else "circle" for c in sub["changed"]],
                    line=dict(width=[2 if low else 0 for low in sub["low_n"]], color="#999")),
        customdata=sub[["n", "ci_low", "ci_high"]].to_numpy(),
        hovertemplate=f"{name}: %{{y:.{m.decimals}f}} (n %{{customdata[0]:,}}; 95%% %{{customdata[1]:.1f}}–%{{customdata[2]:.1f}})<extra></extra>",
        showlegend=not multiples), **pos)
if target is not None:
    fig.add_hline(y=target, line_dash="dash", line_color="#666", annotation_text=f"Target {metrics.format_value(metric, target)}",
                  annotation_position="top left")
style_figure(fig, title=f"{m.label} by {grain}" + (f", by {by.replace('_', ' ')}" if by != "(none)" else ""),
             x_title=None if multiples else grain.capitalize(), y_title=unit_axis(metric),
             height=420 if not multiples else 260 * rows + 80)
if multiples:  # one y title per row, not one per panel
    fig.update_yaxes(title_text=None)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=unit_axis(metric), row=r, col=1)
TICKS = {"day": (None, "%d %b"), "week": (None, "%d %b %Y"), "month": ("M1", "%b %Y"), "quarter": ("M3", "Q%q %Y"),
         "year": ("M12", "%Y")}
dtick, tickformat = TICKS[grain]
if df["period"].nunique() > 18 and dtick:  # keep the axis readable over long ranges
    dtick = {"M1": "M3", "M3": "M6", "M12": "M12"}[dtick]
fig.update_xaxes(tickformat=tickformat, **({"dtick": dtick} if dtick else {}))
show_chart(fig, key="trends_chart")
changed = df[df["changed"]]
partial = " The first and last periods may cover only part of their " + grain + " (the date range cuts them)." \
    if grain in ("week", "month", "quarter", "year") else ""
st.caption(f"{m.description} Band: 95% interval. Diamonds mark periods significantly different from the one "
           f"before (p < {settings.alpha}); grey rings mark fewer than {settings.min_n} observations."
           + (f" {len(changed)} significant change{'s' if len(changed) != 1 else ''} in view." if len(changed) else "")
           + partial)

with st.expander("Table of these numbers"):
    table = df.copy()
    table["period"] = table["period"].dt.strftime("%Y-%m-%d")
    show_table(table,
               column_config={"period": st.column_config.TextColumn(f"{grain.capitalize()} starting"),
                              "n": st.column_config.NumberColumn("Observations", format="localized"),
                              "low_n": st.column_config.CheckboxColumn("Low n"),
                              "changed": st.column_config.CheckboxColumn("Significant change"),
                              "value": st.column_config.NumberColumn(m.label, format=f"%.{m.decimals}f"),
                              "ci_low": st.column_config.NumberColumn("95% low", format=f"%.{m.decimals}f"),
                              "ci_high": st.column_config.NumberColumn("95% high", format=f"%.{m.decimals}f"),
                              "p_change": st.column_config.NumberColumn("p (vs previous)", format="%.4f")})
    table_download(table, f"touchpoint-{metric}-{grain}", key="trends_csv")
