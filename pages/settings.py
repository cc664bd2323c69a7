"""Settings: targets per metric, the minimum sample size and the significance level."""

from __future__ import annotations

import streamlit as st

from cx import metrics
from cx.insights import KPI_METRICS
from cx.settings import SCALES, InvalidSetting, save_settings
from pages._ui import current_settings, get_store, show_error

st.title("Settings")
st.caption("Targets colour the Overview tiles and draw a line on Trends. The minimum sample size flags results "
           "that rest on too few answers; the significance level decides when a change is called a change. "
           "Saved settings apply on every page at once.")
settings = current_settings()
targets = settings.target_map

with st.form("settings_form"):
    st.subheader("Targets")
    cols = st.columns(4)
    values = {}
    for i, name in enumerate(KPI_METRICS):
        m = metrics.REGISTRY[name]
        unit = {"points": "points", "percent": "%", "hours": "hours", "score": "on 1–7"}.get(m.unit, "")
        with cols[i % 4]:
            values[name] = st.number_input(f"{m.label} ({unit})" if unit else m.label, value=targets.get(name),
                                           step=1.0 if m.unit != "score" else 0.1, key=f"settings_target_{name}",
                                           help=f"{'Higher' if m.good == 'up' else 'Lower'} is better. Leave empty for no target.")
    st.subheader("Statistics")
    c1, c2 = st.columns(2)
    min_n = c1.number_input("Minimum sample size", min_value=1, max_value=100_000, value=int(settings.min_n), step=1,
                            key="settings_min_n")
    alpha = c2.selectbox("Significance level", [0.01, 0.05, 0.10], index=[0.01, 0.05, 0.10].index(settings.alpha)
                         if settings.alpha in (0.01, 0.05, 0.10) else 1, key="settings_alpha",
                         format_func=lambda a: f"{a:.2f} ({1 - a:.0%} confidence)")
    st.subheader("Scales")
    st.caption("When an export's scores fit more than one scale (all CSAT answers between 1 and 5 could be on 1–7), "
               "the scale set here is assumed; each import still shows the scale it used.")
    s1, s2, s3 = st.columns(3)
    scale_label = lambda sc: f"{sc[0]}–{sc[1]}"  # noqa: E731
    csat_scale = s1.selectbox("CSAT scale", SCALES, index=SCALES.index(tuple(settings.csat_scale)),
                              format_func=scale_label, key="settings_csat_scale")
    ces_scale = s2.selectbox("CES scale", SCALES, index=SCALES.index(tuple(settings.ces_scale)),
                             format_func=scale_label, key="settings_ces_scale")
    easy = s3.number_input("Lowest “easy” CES answer (on 1–7)", min_value=2.0, max_value=7.0,
                           value=float(settings.ces_easy_min), step=1.0, key="settings_ces_easy",
                           help="CES % easy counts answers at or above this on the 1–7 scale (5 = the top three boxes).")
    saved = st.form_submit_button("Save settings", type="primary")
if saved:
    new = settings
    try:
        for name, value in values.items():
            new = new.with_target(name, value)
        new = save_settings(get_store(), type(new)(targets=new.targets, min_n=int(min_n), alpha=float(alpha),
                                                   csat_scale=tuple(csat_scale), ces_scale=tuple(ces_scale),
                                                   ces_easy_min=float(easy)))
    except InvalidSetting as exc:
        show_error(exc)
    else:
        st.success("Settings saved. Every page now uses them.", icon=":material/check_circle:")
