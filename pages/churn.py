"""Churn & value: churn and retention, survival by segment and by the voice of the customer, predictive
CLV with its holdout self-check, and the customers most worth saving."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cx import clv, metrics, retention, stats
from cx.errors import TouchpointError
from pages._ui import (METRIC_COLOURS, MISSING, SERIES_COLOURS, cached_availability, cached_row_counts,
                       current_settings, dim_label, get_store, page_option, show_chart, show_error, show_table,
                       style_figure, table_download, version)

CHURN = METRIC_COLOURS["churn_rate"]
RETENTION = METRIC_COLOURS["retention_rate"]
CLV = METRIC_COLOURS["clv_historical"]
GREY = "#8C8C8C"
NPS_ORDER = ["Detractor (0–6)", "Passive (7–8)", "Promoter (9–10)", "No NPS answer"]
SOURCE_WORDS = {
    "dates": "customers' signup and churn dates",
    "tenure": "customers' tenure and churned flag (no dates, so no calendar trend or cohorts)",
    "orders": "orders: a customer counts as lost after a stretch without buying",
}


# -- cached reads (keyed on the store's data version, so an import refreshes them) -----------------
@st.cache_data(show_spinner=False, max_entries=8)
def _source(v: int) -> str | None:
    return retention.lifetime_source(get_store())


@st.cache_data(show_spinner=False, max_entries=8)
def _has_orders(v: int) -> bool:
    return clv.last_order_date(get_store()) is not None


@st.cache_data(show_spinner=False, max_entries=8)
def _splits(v: int) -> dict[str, str]:
    return retention.split_dimensions(get_store())


@st.cache_data(show_spinner=False, max_entries=32)
def _churn(v: int, grain: str, start, end, where: tuple, source: str, inactivity: int):
    return retention.churn_by_period(get_store(), grain=grain, start=start, end=end, where=dict(where), source=source,
                                     inactivity_days=inactivity)


@st.cache_data(show_spinner=False, max_entries=32)
def _cohorts(v: int, grain: str, start, end, where: tuple, source: str):
    return retention.cohort_retention(get_store(), grain=grain, start=start, end=end, where=dict(where), source=source)


@st.cache_data(show_spinner=False, max_entries=32)
def _survival(v: int, by: str | None, where: tuple, source: str, inactivity: int, slow_hours: float, unit: str,
              horizon: float):
    surv = retention.survival(get_store(), by=by, where=dict(where), source=source, inactivity_days=inactivity,
                              slow_hours=slow_hours, unit=unit, horizon=horizon)
    # The chart's curves only (the summary and test are computed on every step above): at 10 M responses
    # 814 k steps, 62 MB in the cache and far more as a Plotly figure.
    return dataclasses.replace(surv, curves=retention.thin_curves(surv.curves))


# A resource, not data: the per-customer frame (82 MB pickled at 10 M responses, 622 k customers) is
# kept once and shared read-only, instead of pickled into the cache and copied out on every read;
# two kept (another horizon, or the previous data version while a new one is computed).
@st.cache_resource(show_spinner=False, max_entries=2, ttl=3600)
def _clv(v: int, horizon: float, discount: float, where: tuple):
    return clv.predict_clv(get_store(), unit="week", horizon_months=horizon, discount=discount, where=dict(where))


@st.cache_data(show_spinner=False, max_entries=16)
def _holdout(v: int, calibration_end: date, where: tuple):
    return clv.holdout_check(get_store(), calibration_end=calibration_end, unit="week", where=dict(where))


@st.cache_data(show_spinner=False, max_entries=16)
def _historical(v: int, start, end, by: str | None, where: tuple):
    return clv.historical_clv(get_store(), start=start, end=end, by=by, where=dict(where))


@st.cache_data(show_spinner=False, max_entries=16)
def _at_risk(v: int, horizon: float, discount: float, where: tuple, detractors: bool):
    result = _clv(v, horizon, discount, where)
    store = get_store()
    return (clv.at_risk(store, result, limit=500, detractors_only=detractors),
            clv.value_by_nps(store, result).set_index("nps_category").reindex(NPS_ORDER).dropna(how="all")
            .reset_index())


@st.cache_data(show_spinner=False, max_entries=4)
def _default_calibration(v: int) -> date | None:
    return clv.default_calibration_end(get_store())


# The at-risk list's columns of what customers told us, as a sentence names them.
VOICE_WORDS = {"Latest NPS": "an NPS answer", "Latest CSAT": "a CSAT answer", "Last comment": "a comment",
               "Open tickets": "a support ticket"}


def _words(columns: list[str]) -> str:
    words = [VOICE_WORDS[c] for c in columns]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _ignored(names: list[str]) -> None:
    if names:
        st.caption(f"Filters on {', '.join(sorted(set(names)))} describe orders or answers, not customers, and are "
                   "ignored here.")


# -- frame ----------------------------------------------------------------------------------------
st.title("Churn & value")
v = version()
settings = current_settings()
filters = st.session_state.get("filters")
where = tuple(sorted((filters.where if filters else {}).items()))
source_found = _source(v)
has_orders = _has_orders(v)
if source_found is None:
    st.info("No customers or orders yet. For churn and retention, import **customers** with signup and churn "
            "dates (or a tenure and a churned yes/no flag); for customer lifetime value, import **orders** with a "
            "customer ID, date and amount. Both go through the **Data** page.", icon=":material/upload_file:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

sources = [s for s in retention.SOURCES if s == source_found or (s == "orders" and has_orders)]
o1, o2, o3 = st.columns([3, 2, 2])
with o1:
    source = page_option("source", sources, source_found, label="Who counts as lost",
                         fmt=lambda s: {"dates": "Churn dates (subscriptions)", "tenure": "Tenure + churned flag",
                                        "orders": "No purchase for a while (orders)"}[s])
with o2:
    inactivity = int(page_option("inactive", [60, 90, 120, 180, 270, 365], 180,
                                 label="Lost after (days without an order)",
                                 disabled=source != "orders"))
with o3:
    grain = page_option("grain", ["week", "month", "quarter"], "month", label="Churn per", fmt=str.capitalize,
                        disabled=source == "tenure")
st.caption(f"Lifetimes come from {SOURCE_WORDS[source]}. The date range sets the churn trend, the cohorts and "
           "historical value; survival and predicted value use each customer's whole history up to the latest data."
           + (f" A customer is lost once {inactivity} days pass after their last order without another; their "
              "lifetime ends at that last order." if source == "orders" else ""))

tab_churn, tab_survival, tab_value, tab_risk = st.tabs(["Churn & retention", "Survival", "Customer value", "At risk"])

# -- churn and cohorts ------------------------------------------------------------------------------
with tab_churn:
    if source == "tenure":
        overall = _survival(v, None, where, source, inactivity, 24.0, "month", 12.0).summary.iloc[0]
        lo, hi = stats.wilson_interval(int(overall["churned"]), int(overall["customers"]))
        k1, k2, k3 = st.columns(3)
        k1.metric("Customers", f"{int(overall['customers']):,}", border=True)
        k2.metric("Marked as churned", f"{overall['churn_pct']:.1f}%", border=True,
                  help=f"{int(overall['churned']):,} customers; 95% interval {100 * lo:.1f}–{100 * hi:.1f}% "
                       "(Wilson).")
        k3.metric("Still customers after 12 months", f"{100 * overall['survival_at']:.1f}%", border=True,
                  help="Kaplan–Meier estimate, counting customers who have not left yet until their current tenure.")
        st.info("These customers have a tenure and a churned flag but no dates, so churn has no calendar trend and "
                "no signup cohorts. The **Survival** tab shows how long they stay. Import signup and churn dates to "
                "see churn per period.", icon=":material/info:")
    else:
        end = filters.end if filters and filters.end else None
        start = filters.start if filters and filters.start else None
        # A trend needs a run of periods: short ranges are widened back to a year.
        wide_start = start
        if end is not None and (start is None or (end - start).days < 330):
            wide_start = end - timedelta(days=365 if grain != "week" else 182)
        try:
            with st.spinner("Counting customers lost per period…"):
                churn = _churn(v, grain, wide_start, end, where, source, inactivity)
            # Periods before anyone was a customer have no rate.
            churn = churn[churn["active"] > 0].reset_index(drop=True) if len(churn) else churn
        except TouchpointError as exc:
            show_error(exc)
            churn = pd.DataFrame()
        if churn.empty:
            st.info("No complete period with customers in this range. Widen the date range, or import customers "
                    "or orders covering it.")
        else:
            _ignored(churn.attrs.get("ignored_filters", []))
            last = churn.iloc[-1]
            k1, k2, k3 = st.columns(3)
            k1.metric(f"Churn, last complete {grain}", f"{last['churn_pct']:.1f}%", border=True,
                      help=f"{int(last['lost']):,} of {int(last['active']):,} customers active at the start of "
                           f"{last['period']:%d %b %Y} were lost during it. 95% interval {last['ci_low']:.1f}–"
                           f"{last['ci_high']:.1f}%.")
            lost, active = int(churn["lost"].sum()), int(churn["active"].sum())
            k2.metric(f"Average churn per {grain}", f"{100 * lost / active:.1f}%" if active else "–", border=True,
                      help="Customers lost ÷ customers active at the start, pooled over the periods shown.")
            k3.metric("Customers active now", f"{int(last['active'] - last['lost']):,}", border=True)
            fig = go.Figure()
            fig.add_trace(go.Scatter(x=list(churn["period"]) + list(churn["period"][::-1]),
                                     y=list(churn["ci_high"]) + list(churn["ci_low"][::-1]), fill="toself",
                                     fillcolor=CHURN, opacity=0.15, line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, name="95% band"))
            fig.add_trace(go.Scatter(x=churn["period"], y=churn["churn_pct"], mode="lines+markers", name="Churn rate",
                                     line=dict(color=CHURN, width=2.5), customdata=churn[["lost", "active"]].to_numpy(),
                                     hovertemplate="%{y:.2f}% (%{customdata[0]:,} of %{customdata[1]:,})"
                                                   "<extra></extra>"))
            style_figure(fig, title=f"Churn rate per {grain}", x_title=grain.capitalize(), y_title="Churn rate (%)",
                         height=340)
            fig.update_yaxes(rangemode="tozero")
            show_chart(fig, key="churn_trend")
            st.caption(f"Share of the customers active at the start of each {grain} who were lost during it, with "
                       "its 95% interval (Wilson). Only complete periods are shown"
                       + ("; the range was widened to show a year of trend." if wide_start != start else "."))
            with st.expander("Table of churn per period"):
                t = churn.assign(period=churn["period"].dt.strftime("%Y-%m-%d")).rename(columns={
                        "period": f"{grain.capitalize()} starting", "active": "Active at start", "lost": "Lost",
                        "churn_pct": "Churn (%)", "ci_low": "95% low (%)", "ci_high": "95% high (%)",
                        "retention_pct": "Retention (%)"})
                t.attrs = {}
                show_table(t, column_config={
                    **{c: st.column_config.NumberColumn(format="localized") for c in ("Active at start", "Lost")},
                    **{c: st.column_config.NumberColumn(format="%.2f")
                       for c in ("Churn (%)", "95% low (%)", "95% high (%)", "Retention (%)")}})
                table_download(t, f"touchpoint-churn-per-{grain}", key="churn_trend_csv")

        cgrain = "week" if grain == "week" else "month"
        try:
            with st.spinner("Building cohorts…"):
                cohorts = _cohorts(v, cgrain, wide_start, end, where, source)
        except TouchpointError as exc:
            show_error(exc)
            cohorts = pd.DataFrame()
        if cohorts.empty:
            st.info("No cohort has a complete period yet in this range.")
        else:
            matrix = retention.cohort_matrix(cohorts)
            sizes = cohorts.groupby("cohort")["customers"].first()
            labels = [f"{c:%b %Y} (n={sizes[c]:,})" if cgrain == "month" else f"{c:%d %b %Y} (n={sizes[c]:,})"
                      for c in matrix.index]
            z = matrix.to_numpy(float)
            heat = go.Figure(go.Heatmap(
                z=z, x=[str(c) for c in matrix.columns], y=labels, colorscale="Blues",
                zmin=float(np.floor(np.nanmin(z) / 10) * 10), zmax=100, colorbar=dict(title="%"),
                text=np.where(np.isnan(z), "", np.vectorize(lambda x: f"{x:.0f}")(np.nan_to_num(z))),
                texttemplate="%{text}", hovertemplate="%{y}, " + cgrain + " %{x}: %{z:.1f}% retained<extra></extra>"))
            word = "still customers at the end of" if source == "dates" else "buying in"
            style_figure(heat, title=f"Cohort retention: % of each {cgrain}'s new customers {word} each {cgrain} since",
                         x_title=f"{cgrain.capitalize()}s since joining", y_title="Cohort",
                         height=max(320, 28 * len(labels) + 120))
            heat.update_yaxes(autorange="reversed", type="category")
            heat.update_layout(hovermode="closest")
            show_chart(heat, key="churn_cohorts")
            st.caption(("Each row is the customers who signed up in that " + cgrain + "; each cell the share still "
                        "subscribed at the end of the " + cgrain + " since." if source == "dates" else
                        "Each row is the customers whose first order fell in that " + cgrain + "; each cell the share "
                        "who ordered again in that " + cgrain + " since (the first is 100% by definition).")
                       + " Cells appear once the period is over.")
            left, right = st.columns(2)
            pooled = cohorts.groupby("period").agg(retained=("retained", "sum"), customers=("customers", "sum"))
            pooled["pct"] = 100 * pooled["retained"] / pooled["customers"]
            curve = go.Figure(go.Scatter(x=pooled.index, y=pooled["pct"], mode="lines+markers", name="Retention",
                                         line=dict(color=RETENTION, width=2.5),
                                         hovertemplate="%{y:.1f}% after %{x} " + cgrain + "s<extra></extra>"))
            style_figure(curve, title="Average retention curve", x_title=f"{cgrain.capitalize()}s since joining",
                         y_title="Retained (%)", height=300)
            curve.update_yaxes(range=[0, 105])
            with left:
                show_chart(curve, key="churn_curve")
                st.caption("All cohorts pooled, weighted by size: how retention decays with age.")
            p1 = cohorts[cohorts["period"] == 1]
            with right:
                if len(p1):
                    trend = go.Figure(go.Scatter(x=p1["cohort"], y=p1["retention_pct"], mode="lines+markers",
                                                 name=f"{cgrain.capitalize()}-1 retention",
                                                 line=dict(color=RETENTION, width=2.5), customdata=p1[["customers"]],
                                                 hovertemplate="%{y:.1f}% of %{customdata[0]:,}<extra></extra>"))
                    style_figure(trend, title=f"{cgrain.capitalize()}-1 retention by cohort", x_title="Cohort",
                                 y_title="Retained after 1 " + cgrain + " (%)", height=300)
                    trend.update_yaxes(range=[0, 105])
                    if cgrain == "month":
                        trend.update_xaxes(tickformat="%b %Y", dtick="M1" if len(p1) <= 6 else "M3")
                    show_chart(trend, key="churn_p1")
                    st.caption("Is onboarding getting better? Each point is one cohort's retention after its first "
                               f"full {cgrain}.")
            with st.expander("Table of cohorts"):
                t = cohorts.assign(cohort=cohorts["cohort"].dt.strftime("%Y-%m-%d")).rename(columns={
                        "cohort": f"Cohort ({cgrain} starting)", "period": f"{cgrain.capitalize()}s since joining",
                        "customers": "Customers", "retained": "Retained", "retention_pct": "Retention (%)"})
                t.attrs = {}
                show_table(t, column_config={
                    **{c: st.column_config.NumberColumn(format="localized") for c in ("Customers", "Retained")},
                    "Retention (%)": st.column_config.NumberColumn(format="%.2f")})
                table_download(t, "touchpoint-cohorts", key="churn_cohorts_csv")

# -- survival -----------------------------------------------------------------------------------
with tab_survival:
    splits = _splits(v)
    options = ["(none)"] + list(splits)
    default_split = next((d for d in ("plan", "segment") if d in splits), "(none)")
    s1, s2, s3 = st.columns([3, 2, 2])
    with s1:
        split = page_option("split", options, default_split, label="Compare survival by",
                            fmt=lambda d: "Everyone" if d == "(none)" else splits.get(d, d))
    with s2:
        slow = float(st.number_input("Slow first response above (hours)", 1.0, 240.0, 24.0, 1.0, key="churn_slow",
                                     disabled=split != "support_speed"))
    with s3:
        unit = "month" if source != "orders" else "week"
        horizon = st.number_input(f"Survival at ({unit}s)", 1, 120, 12, key="churn_horizon")
    try:
        with st.spinner("Estimating survival curves…"):
            surv = _survival(v, None if split == "(none)" else split, where, source, inactivity, slow, unit,
                             float(horizon))
    except TouchpointError as exc:
        show_error(exc)
        surv = None
    if surv is not None:
        _ignored(surv.ignored_filters)
        fig = go.Figure()
        for i, (g, sub) in enumerate(surv.curves.groupby("group", sort=False)):
            colour = GREY if g in ("Other", "No NPS answer", "No tickets") else SERIES_COLOURS[i % len(SERIES_COLOURS)]
            if split == "(none)":
                colour = RETENTION
            fig.add_trace(go.Scatter(x=list(sub["time"]) + list(sub["time"][::-1]),
                                     y=list(100 * sub["ci_high"]) + list(100 * sub["ci_low"][::-1]), fill="toself",
                                     fillcolor=colour, opacity=0.12, line=dict(width=0, shape="hv"), hoverinfo="skip",
                                     showlegend=False, name=f"{g} 95% band"))
            fig.add_trace(go.Scatter(x=sub["time"], y=100 * sub["survival"], mode="lines", name=str(g),
                                     line=dict(color=colour, width=2.5, shape="hv"),
                                     customdata=sub[["at_risk"]].to_numpy(),
                                     hovertemplate=f"{g}: %{{y:.1f}}% still customers after %{{x:.0f}} {unit}s "
                                                   "(%{customdata[0]:,} at risk)<extra></extra>"))
        style_figure(fig, title="How long customers stay (Kaplan–Meier)",
                     x_title=f"{unit.capitalize()}s since joining",
                     y_title="Still customers (%)", height=420)
        fig.update_yaxes(range=[0, 102])
        fig.update_layout(hovermode="closest")
        show_chart(fig, key="churn_km")
        what = splits.get(split, "groups") if split != "(none)" else "groups"
        if not what[:3].isupper():  # "Plan" → "plan", but "NPS category" stays
            what = what[0].lower() + what[1:]
        st.caption("Share of customers still with us after each time since joining, with 95% bands; customers "
                   "who have not left yet count until today (censored). " + retention.describe_test(
                       surv.test, settings.alpha, what=f"{what} groups" if split != "(none)" else "groups"))
        if split == "support_speed":
            st.caption("Caution: customers who stay longer have more chances to raise a ticket, so “No tickets” "
                       "mixes new and short-lived customers; compare the slow and fast lines.")
        summ = surv.summary.copy()
        table = pd.DataFrame({
            "Group": summ["group"], "Customers": summ["customers"], "Lost": summ["churned"],
            "Lost (%)": summ["churn_pct"].round(1),
            f"Median stay ({unit}s)": summ["median"].round(1),
            "Median 95% low": summ["median_ci_low"].round(1), "Median 95% high": summ["median_ci_high"].round(1),
            f"Still customers at {horizon} {unit}s (%)": (100 * summ["survival_at"]).round(1),
            "95% low (%)": (100 * summ["survival_at_low"]).round(1),
            "95% high (%)": (100 * summ["survival_at_high"]).round(1),
            "Low n": summ["customers"] < settings.min_n})
        count_columns = {c: st.column_config.NumberColumn(format="localized") for c in ("Customers", "Lost")}
        show_table(table, column_config=count_columns)
        st.caption(f"Median stay: when half the group has left ({MISSING} while fewer than half have left so far). "
                   f"Low n: fewer than {settings.min_n} customers, so the curve is rough.")
        table_download(table, "touchpoint-survival", key="churn_survival_csv")

# -- customer value -----------------------------------------------------------------------------
with tab_value:
    if not has_orders:
        st.info("Customer lifetime value needs **orders** with a customer ID, an order date and an amount. Import "
                "them on the **Data** page.", icon=":material/upload_file:")
    else:
        c1, c2 = st.columns(2)
        with c1:
            horizon_m = int(page_option("horizon", [3, 6, 12, 24, 36], 12, label="Horizon (months)"))
        with c2:
            discount_pct = float(st.number_input("Discount rate (% per month)", 0.0, 10.0, 1.0, 0.25,
                                                 key="churn_discount"))
        try:
            with st.spinner("Fitting the purchase (BG/NBD) and spend (Gamma-Gamma) models…"):
                result = _clv(v, float(horizon_m), discount_pct / 100, where)
        except TouchpointError as exc:
            show_error(exc)
            result = None
        if result is not None:
            _ignored(result.ignored_filters)
            cust = result.customers
            k1, k2, k3, k4 = st.columns(4)
            k1.metric("Customers modelled", f"{len(cust):,}", border=True,
                      help=f"Every customer with an order up to {result.calibration_end:%d %b %Y}.")
            k2.metric(f"Expected orders ({horizon_m} m)", f"{cust['expected_purchases'].sum():,.0f}",
                      border=True,
                      help="Sum over customers of the BG/NBD expected purchases (same-day orders count once).")
            if "clv" in cust:
                k3.metric(f"Predicted value ({horizon_m} m)", metrics.format_money_short(cust["clv"].sum()),
                          border=True,
                          help=f"Expected purchases × expected spend, discounted at {discount_pct:g}% a month.")
                k4.metric("Value at risk", metrics.format_money_short(cust["value_at_risk"].sum()), border=True,
                          help="Value the customers would bring if still active × the probability they have already "
                               "gone, summed.")
            else:
                k3.metric("Predicted value", "–", border=True, help="Orders have no amounts.")
                st.caption("Orders have no amounts: expected purchases only, no value.")
            alive = cust["p_alive"]
            lost_known = int(cust["known_lost"].sum())
            st.caption(f"Median probability a customer is still active: {alive.median():.0%}; "
                       f"{(alive < 0.5).mean():.0%} of customers are more likely gone than not"
                       + (f", including {lost_known:,} the customer list marks as churned (they count for nothing "
                          "from here on)." if lost_known else "."))
            if "clv" in cust:
                left, right = st.columns(2)
                with left:
                    vals = cust["clv"].clip(lower=0)
                    cap = float(vals.quantile(0.99)) if len(vals) > 20 else float(vals.max())
                    # Binned here (40 bins): the chart gets 40 bars, not one number per customer.
                    counts, edges = np.histogram(vals.clip(upper=cap).to_numpy(), bins=40)
                    hist = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                                            marker_color=CLV, name="Customers",
                                            hovertemplate="%{y:,} customers around %{x:,.0f}<extra></extra>"))
                    style_figure(hist, title=f"Predicted value per customer, next {horizon_m} months",
                                 x_title="Predicted value (currency; top 1% shown at the cap)", y_title="Customers",
                                 height=320)
                    hist.update_layout(hovermode="closest")
                    show_chart(hist, key="churn_clv_hist")
                    top10 = cust["clv"].nlargest(max(1, len(cust) // 10)).sum() / max(cust["clv"].sum(), 1e-9)
                    st.caption(f"Value is concentrated: the top 10% of customers hold {top10:.0%} of the "
                               "predicted value.")
                with right:
                    dims = [d for d in get_store().dimensions("customers") if d in _splits(v)]
                    if dims:
                        hby = st.selectbox("Historical value by", dims, key="churn_hist_by",
                                           format_func=dim_label)
                        hist_df = _historical(v, filters.start if filters else None, filters.end if filters else None,
                                              hby, where)
                        if len(hist_df):
                            bar = go.Figure(go.Bar(x=hist_df["group"], y=hist_df["clv_mean"], marker_color=CLV,
                                                   customdata=hist_df[["customers", "clv_median"]].to_numpy(),
                                                   hovertemplate="%{x}: mean %{y:,.0f}, median %{customdata[1]:,.0f} "
                                                                 "(%{customdata[0]:,} customers)<extra></extra>"))
                            style_figure(bar, title="Historical value per customer in the date range", x_title=None,
                                         y_title="Revenue per customer (currency)", height=320)
                            show_chart(bar, key="churn_hist_bar")
                            st.caption("What each buying customer actually spent in the selected date range "
                                       "(refunds and cancellations excluded).")
                top = cust.nlargest(20, "clv")[["customer_id", "orders", "revenue", "p_alive", "expected_purchases",
                                                "expected_spend", "clv"]]
                st.markdown("**Top customers by predicted value**")
                show_table(top, column_config={
                    "customer_id": st.column_config.TextColumn("Customer"),
                    "orders": st.column_config.NumberColumn("Orders", format="localized"),
                    "p_alive": st.column_config.ProgressColumn("P(active)", format="percent", min_value=0, max_value=1),
                    "revenue": st.column_config.NumberColumn("Revenue so far", format="%.2f"),
                    "expected_purchases": st.column_config.NumberColumn("Expected orders", format="%.2f"),
                    "expected_spend": st.column_config.NumberColumn("Expected spend per order", format="%.2f"),
                    "clv": st.column_config.NumberColumn(f"Predicted value ({horizon_m} m)", format="%.2f")})
                # Every customer (622 k rows at 10 M responses): written only when a download is clicked.
                table_download(lambda c=cust: c.assign(first_purchase=c["first_purchase"].dt.strftime("%Y-%m-%d")),
                               "touchpoint-clv-customers", key="churn_clv_csv", label="Download all customers (CSV)")

            with st.expander("Model parameters and checks", expanded=False):
                bg, gg = result.bgnbd, result.gamma_gamma
                rows = [("BG/NBD", "r", bg.r, bg.se.get("r")),
                        ("BG/NBD", "alpha (weeks)", bg.alpha, bg.se.get("alpha")),
                        ("BG/NBD", "a", bg.a, bg.se.get("a")), ("BG/NBD", "b", bg.b, bg.se.get("b"))]
                if gg:
                    rows += [("Gamma-Gamma", "p", gg.p, gg.se.get("p")), ("Gamma-Gamma", "q", gg.q, gg.se.get("q")),
                             ("Gamma-Gamma", "gamma", gg.gamma, gg.se.get("gamma"))]
                show_table(pd.DataFrame(rows, columns=["Model", "Parameter", "Estimate", "Standard error"]))
                if any(clv.at_limit(x) for x in (bg.r, bg.alpha, bg.a, bg.b)):
                    st.warning("A purchase-model parameter reached its limit: customers buy so much alike that the "
                               "model cannot tell them apart well. Treat P(active) and value at risk with care.",
                               icon=":material/warning:")
                st.caption(f"BG/NBD log-likelihood {bg.log_likelihood:,.1f} on {bg.n:,} customers"
                           + (f"; Gamma-Gamma {gg.log_likelihood:,.1f} on {gg.n:,} repeat buyers." if gg else "."))
                if gg:
                    corr = gg.frequency_spend_corr
                    verdict = ("weak, so the spend model's assumption holds well enough" if abs(corr) < 0.3 else
                               "not weak: the spend model assumes none, so treat predicted value with care")
                    st.caption(f"Correlation between how often and how much repeat buyers spend: {corr:.2f} — "
                               f"{verdict}.")

            st.subheader("Can we trust the predictions?")
            default_cal = _default_calibration(v)
            last_day = clv.last_order_date(get_store())
            cal = st.date_input("Fit on orders up to", value=default_cal, min_value=None,
                                max_value=last_day - timedelta(days=7) if last_day else None, key="churn_calibration")
            try:
                with st.spinner("Refitting on the earlier period and comparing with what happened…"):
                    hold = _holdout(v, cal, where)
            except clv.NotEnoughOrders as exc:
                st.info(f"Too few customers had bought by {cal:%d %b %Y} to check the model ({exc.problem}) "
                        "Choose a later date.", icon=":material/info:")
                hold = None
            except TouchpointError as exc:
                show_error(exc)
                hold = None
            if hold is not None:
                err = hold.error_pct
                st.markdown(f"Fitted on orders up to **{hold.calibration_end:%d %b %Y}**, the model expected "
                            f"**{hold.predicted_total:,.0f}** repeat orders up to {hold.holdout_end:%d %b %Y}; "
                            f"customers placed **{hold.actual_total:,}** ({err:+.0f}%).")
                left, right = st.columns(2)
                with left:
                    tr = hold.tracking
                    track = go.Figure()
                    track.add_trace(go.Scatter(x=tr["week"], y=tr["actual"], name="Actual", mode="lines",
                                               line=dict(color=CLV, width=2.5)))
                    track.add_trace(go.Scatter(x=tr["week"], y=tr["predicted"], name="Model", mode="lines",
                                               line=dict(color=GREY, width=2.5, dash="dash")))
                    track.add_vline(x=pd.Timestamp(hold.calibration_end).timestamp() * 1000, line_dash="dot",
                                    line_color="#666", annotation_text="end of fit", annotation_position="top left")
                    style_figure(track, title="Cumulative repeat orders: model vs actual", x_title="Week",
                                 y_title="Repeat orders (cumulative)", height=340)
                    show_chart(track, key="churn_tracking")
                    st.caption("Right of the dotted line the model had not seen the orders: the closer the lines, "
                               "the more the forecasts can be trusted.")
                with right:
                    bf = hold.by_frequency
                    bars = go.Figure()
                    bars.add_bar(x=bf["repeat_purchases_in_calibration"], y=bf["actual"], name="Actual",
                                 marker_color=CLV)
                    bars.add_bar(x=bf["repeat_purchases_in_calibration"], y=bf["predicted"], name="Model",
                                 marker_color=GREY)
                    style_figure(bars, title="Orders after the fit, by orders before it",
                                 x_title="Repeat orders in the fitting period", y_title="Mean repeat orders afterwards",
                                 height=340)
                    bars.update_layout(barmode="group")
                    bars.update_xaxes(type="category")
                    show_chart(bars, key="churn_holdout_bars")
                    st.caption("Customer by customer, grouped by how often they had bought: mean orders they then "
                               "placed, against the model's expectation.")

# -- at risk ---------------------------------------------------------------------------------------
with tab_risk:
    if not has_orders:
        st.info("The at-risk list ranks customers by the value they are likely to take with them, so it needs "
                "**orders** with amounts. Import them on the **Data** page; survey answers and tickets with customer "
                "IDs then add their voice.", icon=":material/upload_file:")
    else:
        horizon_m = int(st.session_state.get("opt_horizon", 12))
        discount_pct = float(st.session_state.get("churn_discount", 1.0))
        no_nps = cached_availability(v).get("nps")  # why there is no NPS to pick detractors by, or None
        if no_nps:  # switched on before the answers were removed: shown off, as the list is not narrowed
            st.session_state["churn_detractors"] = False
        detractors = st.toggle("Detractors only (latest NPS 0–6)", key="churn_detractors", disabled=bool(no_nps),
                               help=no_nps)
        try:
            with st.spinner("Ranking customers by value at risk…"):
                risk, by_nps = _at_risk(v, float(horizon_m), discount_pct / 100, where, detractors)
        except TouchpointError as exc:
            show_error(exc)
            risk = None
        if risk is not None:
            if (by_nps["nps_category"] != "No NPS answer").any():
                det = by_nps[by_nps["nps_category"] == "Detractor (0–6)"]
                det_risk = float(det["value_at_risk"].sum()) if len(det) else 0.0
                total_risk = float(by_nps["value_at_risk"].sum())
                st.markdown(f"**Value at risk from detractors: {metrics.format_money_short(det_risk)}** "
                            f"({det_risk / total_risk:.0%} of all value at risk)" if total_risk else
                            "No value at risk.")
                colours = {"Detractor (0–6)": "#D55E00", "Passive (7–8)": "#9E9E9E", "Promoter (9–10)": "#009E73",
                           "No NPS answer": "#C8C8C8"}
                fig = go.Figure(go.Bar(x=by_nps["nps_category"], y=by_nps["value_at_risk"],
                                       marker_color=[colours.get(c, GREY) for c in by_nps["nps_category"]],
                                       customdata=by_nps[["customers", "p_alive"]].to_numpy(),
                                       hovertemplate="%{x}: %{y:,.0f} at risk, %{customdata[0]:,} customers, "
                                                     "mean P(active) %{customdata[1]:.0%}<extra></extra>"))
                style_figure(fig, title="Value at risk by NPS category", x_title="Latest NPS answer",
                             y_title="Value at risk (currency)", height=320)
                show_chart(fig, key="churn_risk_nps")
                st.caption("Value customers would bring if still active × the probability they have already gone, "
                           f"over the next {horizon_m} months, by their latest NPS answer.")
            else:
                st.caption("No survey answers with customer IDs yet: import NPS/CSAT responses and tickets that carry "
                           "customer IDs to see what these customers told us and the value at risk by NPS category.")
            if risk.empty:
                st.info("No customers match (no detractor has orders)." if detractors else "No customers to rank.")
            else:
                shown = risk.rename(columns={"customer_id": "Customer", "orders": "Orders", "revenue": "Revenue so far",
                                             "p_alive": "P(active)", "value_at_risk": "Value at risk",
                                             "value_if_active": "Value if active", "clv": "Predicted value",
                                             "latest_nps": "Latest NPS", "latest_csat": "Latest CSAT",
                                             "open_tickets": "Open tickets", "last_comment": "Last comment",
                                             "last_purchase": "Last order"})
                shown = shown[["Customer", "Value at risk", "P(active)", "Value if active", "Orders", "Revenue so far",
                               "Last order", "Latest NPS", "Latest CSAT", "Open tickets", "Last comment"]]
                # What these customers told us: a column none of them has a value in is left out, not shown blank.
                silent = [c for c in ("Latest NPS", "Latest CSAT", "Last comment") if shown[c].isna().all()]
                if not cached_row_counts(v).get("tickets"):  # "0 open" would read as tickets tracked and closed
                    silent.append("Open tickets")
                shown = shown.drop(columns=silent)
                show_table(shown, column_config={
                    "Value at risk": st.column_config.NumberColumn(format="%.2f"),
                    "Value if active": st.column_config.NumberColumn(format="%.2f"),
                    "Revenue so far": st.column_config.NumberColumn(format="%.2f"),
                    "P(active)": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
                    "Last order": st.column_config.DateColumn(format="YYYY-MM-DD")})
                st.caption("The customers most worth a call: ranked by the value they are likely to take with them, "
                           "with what they last told us. P(active) comes from their buying rhythm (BG/NBD); customers "
                           "the customer list already marks as churned are left out."
                           + (f" Not shown, as none of these customers has one: {_words(silent)}." if silent else ""))
                table_download(shown, "touchpoint-at-risk", key="churn_risk_csv", sheet="At risk")
