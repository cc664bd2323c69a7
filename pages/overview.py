"""Overview: the KPIs an executive opens first, what moved, and whether the move is real."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

from cx import insights, metrics
from cx.filters import COMPARISONS
from pages._ui import (cached_changes, cached_currencies, cached_kpis, cached_nps_mix, current_settings, get_store,
                       md_text, show_chart, show_table, style_figure, version)

st.title("Overview")
filters = st.session_state.get("filters")
settings = current_settings()
v = version()
if filters is None or filters.start is None:
    st.info("No data yet. Import survey responses, tickets, orders or customers on the **Data** page, "
            "or load the demo data there.", icon=":material/upload_file:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

cmp_label = COMPARISONS[filters.compare].lower()
st.caption(f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y}, compared with the {cmp_label}. "
           f"Changes are called changes only when significant at the {1 - settings.alpha:.0%} level "
           "(segment changes after a correction for the number of segments tested).")
if len(currencies := cached_currencies(v)) > 1:
    st.warning(f"Orders are in {len(currencies)} currencies ({', '.join(currencies[:5])}); revenue and value add them "
               "up as they are, without conversion. Import the amounts converted to one currency for totals "
               "you can compare.", icon=":material/currency_exchange:")

with st.spinner("Computing the KPIs…"):
    tiles = cached_kpis(v, filters, settings)


def _delta_text(k) -> tuple[str | None, str]:
    if k.delta is None or k.value_before is None:
        return None, "no comparison data"
    unit = {"points": " pts", "percent": " pts", "hours": " h"}.get(k.unit, "")
    if k.unit == "currency":
        d = ("+" if k.delta >= 0 else "") + metrics.format_money(k.delta, 0)
    else:
        d = f"{k.delta:+,.1f}{unit}" if k.unit != "count" else f"{k.delta:+,.0f}"
    if d.startswith(("+0.0", "-0.0")):
        d = "±0.0" + d[4:]
    if k.significant:
        return d, f"from {metrics.format_value(k.metric, k.value_before)}"
    if k.p_value is None or math.isnan(k.p_value):
        return None, f"{d} vs before (not tested)"
    return None, f"{d}: no significant change (p {k.p_value:.2f})"


cols = st.columns(4)
for i, k in enumerate(tiles):
    with cols[i % 4]:
        if k.reason:
            with st.container(border=True, height=190):
                st.markdown(f"**{k.label}**")
                st.caption(k.reason)
                target = "pages/settings.py" if "target" in k.reason else "pages/data.py"
                st.page_link(target, label="Import data", icon=":material/upload_file:")
            continue
        delta, note = _delta_text(k)
        good_up = metrics.REGISTRY[k.metric].good == "up"
        ci = ("" if k.ci_low is None else
              f"95% interval {metrics.format_value(k.metric, k.ci_low)} to {metrics.format_value(k.metric, k.ci_high)}. ")
        help_text = (f"{metrics.REGISTRY[k.metric].description} {ci}n = {k.n:,}."
                     + (f" Filters not applicable here: {', '.join(k.ignored_filters)}." if k.ignored_filters else ""))
        st.metric(
            k.label, metrics.format_value(k.metric, k.value), delta=delta,
            delta_color="normal" if good_up else "inverse", help=help_text, border=True,
            chart_data=[p[1] for p in k.sparkline] or None, chart_type="line", height=190,
            delta_description=note if delta else None,
        )
        if k.value is None and not k.n:  # say why there is nothing, rather than "n = 0 · low sample"
            churn = metrics.REGISTRY[k.metric].kind in ("churn", "retention")
            bits = [f"no customers yet on {filters.start:%d %b %Y}, the range's first day" if churn
                    else "no data in this range"]
        else:
            bits = [f"n = {k.n:,}" + (" · low sample" if k.low_n else "")]
            if not delta:
                bits.append(note)
        if k.target is not None:
            target = f"target {metrics.format_value(k.metric, k.target)}"
            met = k.status == "on target"
            # Without a value there is nothing to hold against the target: named, not judged.
            bits.append(target if k.status is None else
                        f":{'green' if met else 'orange'}[{target} {'met' if met else 'not met'}]")
        st.caption(" · ".join(bits))

left, right = st.columns([2, 3])
with left:
    mix = cached_nps_mix(v, filters)
    if mix["n"]:
        fig = go.Figure()
        for key, label, colour in (("detractors", "Detractors (0–6)", "#D55E00"), ("passives", "Passives (7–8)", "#9E9E9E"),
                                   ("promoters", "Promoters (9–10)", "#009E73")):
            fig.add_bar(y=["NPS answers"], x=[mix[f"{key}_pct"]], name=label, orientation="h", marker_color=colour,
                        text=[f"{mix[f'{key}_pct']:.0f}%"], textposition="inside",
                        hovertemplate=f"{label}: %{{x:.1f}}% ({mix[key]:,})<extra></extra>")
        fig.update_layout(barmode="stack")
        style_figure(fig, title="NPS composition", x_title="Share of NPS answers (%)", y_title=None, height=240)
        fig.update_yaxes(showticklabels=False)
        fig.update_xaxes(range=[0, 100])
        fig.update_layout(hovermode="closest", margin=dict(t=40, b=70),
                          legend=dict(orientation="h", yanchor="top", y=-0.45, xanchor="left", x=0))
        show_chart(fig, key="overview_mix")
        st.caption(f"NPS = {mix['promoters_pct']:.1f}% promoters − {mix['detractors_pct']:.1f}% detractors "
                   f"= {mix['promoters_pct'] - mix['detractors_pct']:+.1f}, from {mix['n']:,} answers.")
    else:
        st.info("No NPS answers in this range.")

with right:
    st.subheader("What changed")
    with st.spinner("Testing every segment for significant changes…"):
        changes = cached_changes(v, filters, settings)
    if not changes:
        st.caption(f"No significant change against the {cmp_label} at the {1 - settings.alpha:.0%} level, "
                   f"overall or in any segment with at least {settings.min_n} answers in both periods.")
    for c in changes[:6]:
        icon = ":material/trending_up:" if c.delta > 0 else ":material/trending_down:"
        colour = "green" if c.good else "red"
        st.markdown(f":{colour}[{'▲' if c.delta > 0 else '▼'}] {md_text(c.sentence)}")
        params = {"metric": c.metric, "grain": "month"}
        if c.dimension:
            params["by"] = c.dimension
        st.page_link("pages/trends.py", label="See the trend", icon=icon, query_params=params)

movers = insights.top_movers(changes)
st.subheader("Top movers")
if not movers.empty:
    show_table(movers,
               column_config={"Change": st.column_config.NumberColumn(format="%+.1f")})
    st.caption("Segments whose change is significant, largest first. n is the number of answers or tickets.")
else:
    st.caption("No segment moved significantly.")
