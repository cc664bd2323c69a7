"""Segments & channels: one metric across one or two dimensions, each cell tested against the rest."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cx import metrics
from cx.errors import TouchpointError
from pages._ui import (analysis_context, cached_dimension_values, cached_segments, dim_label, page_option, show_chart,
                       show_error, show_table, style_figure, table_download, unit_axis)

st.title("Segments & channels")
filters, settings, v, names = analysis_context()
names = [n for n in names if metrics.REGISTRY[n].kind != "backlog"]
dims = list(cached_dimension_values(v))
if not names or not dims:
    st.info("Import data with dimensions (channel, segment, region…) on the **Data** page to compare segments.",
            icon=":material/upload_file:")
    st.stop()

c1, c2, c3 = st.columns(3)
with c1:
    metric = page_option("metric", names, "nps" if "nps" in names else names[0], label="Metric",
                         fmt=lambda n: metrics.REGISTRY[n].label)
m = metrics.REGISTRY[metric]
with c2:
    rows_dim = page_option("rows", dims, "channel" if "channel" in dims else dims[0], label="Rows",
                           fmt=dim_label)
with c3:
    col_options = ["(none)"] + [d for d in dims if d != rows_dim]
    cols_dim = page_option("cols", col_options, "(none)", label="Columns (heatmap)",
                           fmt=dim_label)
by = (rows_dim,) if cols_dim == "(none)" else (rows_dim, cols_dim)
try:
    with st.spinner("Comparing segments…"):
        df, ignored = cached_segments(v, metric, by, filters, settings)
except TouchpointError as exc:
    show_error(exc)
    st.stop()
if ignored:
    st.caption(f"Filters on {', '.join(ignored)} do not apply to {m.label} and are ignored here.")
df = df.dropna(subset=list(by))
if df.empty:
    st.info(f"No {m.label} values for these filters.")
    st.stop()
overall = df["overall"].iloc[0]
fmt = lambda x: metrics.format_value(metric, x)  # noqa: E731

if cols_dim == "(none)":
    d = df.sort_values("value")
    colours = np.where(d["low_n"], "#BDBDBD", np.where(d["differs"] & ((d["value"] > overall) == (m.good == "up")),
                                                      "#009E73", np.where(d["differs"], "#D55E00", "#0072B2")))
    fig = go.Figure(go.Bar(
        y=d[rows_dim].astype(str), x=d["value"], orientation="h", marker_color=colours,
        error_x=dict(type="data", symmetric=False, array=d["ci_high"] - d["value"], arrayminus=d["value"] - d["ci_low"],
                     color="#666"),
        text=[f"{fmt(x)} · n {n:,}" for x, n in zip(d["value"], d["n"])], textposition="inside",
        insidetextanchor="start", textfont=dict(color="white"),
        hovertemplate="%{y}: %{x:.1f}<extra></extra>"))
    lo_x = min(0.0, float(d["ci_low"].min())) if d["ci_low"].notna().any() else min(0.0, float(d["value"].min()))
    hi_x = float(max(d["ci_high"].max() if d["ci_high"].notna().any() else d["value"].max(), d["value"].max()))
    fig.update_xaxes(range=[lo_x * 1.1, hi_x * 1.08 if hi_x > 0 else 1])
    fig.add_vline(x=overall, line_dash="dash", line_color="#666")
    fig.add_annotation(x=overall, y=1.0, yref="paper", yanchor="bottom", text=f"Overall {fmt(overall)}",
                       showarrow=False, font=dict(size=12))
    style_figure(fig, title=f"{m.label} by {rows_dim.replace('_', ' ')}", x_title=unit_axis(metric), y_title=None,
                 height=max(260, 60 + 38 * len(d)))
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="segments_bars")
    st.caption(f"Bars show each segment's {m.label} with its 95% interval; green/red: significantly better/worse "
               f"than everyone else (p < {settings.alpha}); grey: fewer than {settings.min_n} observations.")
else:
    pivot = df.pivot(index=rows_dim, columns=cols_dim, values="value")
    n_piv = df.pivot(index=rows_dim, columns=cols_dim, values="n").reindex_like(pivot)
    low = df.pivot(index=rows_dim, columns=cols_dim, values="low_n").reindex_like(pivot)
    diff = df.pivot(index=rows_dim, columns=cols_dim, values="differs").reindex_like(pivot)
    text = [[("" if np.isnan(val) else fmt(val) + ("*" if bool(diff.iloc[i, j]) else "") +
              ("<br><span style='font-size:10px'>low n</span>" if bool(low.iloc[i, j]) else ""))
             for j, val in enumerate(row)] for i, row in enumerate(pivot.to_numpy(dtype=float))]
    scale = "RdYlGn" if m.good == "up" else "RdYlGn_r"
    fig = go.Figure(go.Heatmap(
        z=pivot.to_numpy(dtype=float), x=[str(c) for c in pivot.columns], y=[str(r) for r in pivot.index],
        text=text, texttemplate="%{text}", colorscale=scale, zmid=overall,
        customdata=n_piv.to_numpy(dtype=float), colorbar=dict(title=m.label),
        hovertemplate="%{y} × %{x}: %{z:.1f} (n %{customdata:,.0f})<extra></extra>"))
    style_figure(fig, title=f"{m.label}: {rows_dim.replace('_', ' ')} × {cols_dim.replace('_', ' ')}",
                 x_title=dim_label(cols_dim), y_title=dim_label(rows_dim),
                 height=max(320, 90 + 42 * len(pivot)))
    fig.update_layout(hovermode="closest")
    show_chart(fig, key="segments_heatmap")
    st.caption(f"Colour centred on the overall {m.label} ({fmt(overall)}). * marks cells significantly different "
               f"from everyone else (p < {settings.alpha}); “low n”: fewer than {settings.min_n} observations.")

table = df.rename(columns={"value": m.label, "ci_low": "95% low", "ci_high": "95% high", "low_n": "Low n",
                           "p_vs_rest": "p vs rest", "differs": "Differs", "n": "Observations"}
                  ).drop(columns=["overall"])
show_table(table,
           column_config={**{d: st.column_config.TextColumn(dim_label(d)) for d in by},
                          "Observations": st.column_config.NumberColumn(format="localized"),
                          m.label: st.column_config.NumberColumn(format=f"%.{m.decimals}f"),
                          "95% low": st.column_config.NumberColumn(format=f"%.{m.decimals}f"),
                          "95% high": st.column_config.NumberColumn(format=f"%.{m.decimals}f"),
                          "p vs rest": st.column_config.NumberColumn(format="%.4f")})
table_download(table, f"touchpoint-{metric}-segments", key="segments_csv")
