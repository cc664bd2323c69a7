"""Voice of the customer: what customers say in their own words — sentiment, the themes they raise,
what each theme costs in NPS or CSAT, and every comment, searchable and exportable."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cx import voice
from cx.errors import TouchpointError
from cx.filters import Filters
from pages._ui import (METRIC_COLOURS, SERIES_COLOURS, analysis_context, get_store, label_positions, md_text,
                       page_option, show_chart, show_error, show_table, style_figure, table_download)

SENTIMENT_COLOURS = {"negative": "#D55E00", "neutral": "#9E9E9E", "positive": "#009E73", "unscored": "#CFCFCF"}
ORIGIN_LABELS = {"rule": "Analyst rule", "auto": "Discovered"}
SOURCE_LABELS = {"responses": "Survey comments", "tickets": "Ticket texts"}
PAGE_SIZE = 25
EXPORT_LIMIT = 100_000

st.title("Voice of the customer")
filters, settings, v, _names = analysis_context()
store = get_store()


# -- cached reads (keyed on the data version and the analysis revision) --------------------------------
@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def _summary(v: int, rev: str, source: str, f: Filters) -> dict:
    return voice.sentiment_summary(get_store(), source=source, start=f.start, end=f.end, where=f.where)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def _trend(v: int, rev: str, source: str, grain: str, f: Filters) -> pd.DataFrame:
    return voice.sentiment_trend(get_store(), source=source, grain=grain, start=f.start, end=f.end, where=f.where)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def _impact(v: int, rev: str, source: str, metric: str | None, f: Filters, alpha: float) -> pd.DataFrame:
    return voice.theme_impact(get_store(), source=source, metric=metric, start=f.start, end=f.end, where=f.where,
                              confidence=1 - alpha)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=32)
def _theme_trend(v: int, rev: str, source: str, themes: tuple[str, ...], grain: str, f: Filters) -> pd.DataFrame:
    return voice.theme_trend(get_store(), source=source, themes=themes, grain=grain, start=f.start, end=f.end,
                             where=f.where)


@st.cache_data(show_spinner=False, ttl=3600, max_entries=64)
def _verbatims(v: int, rev: str, source: str, f: Filters, search: str, themes: tuple, sentiments: tuple,
               categories: tuple, limit: int | None, offset: int, distinct: bool = False):
    return voice.verbatims(get_store(), source=source, start=f.start, end=f.end, where=f.where, search=search,
                           themes=themes, sentiments=sentiments, categories=categories, limit=limit, offset=offset,
                           distinct=distinct)


def _theme_options(impact: pd.DataFrame, key: str, has_default: bool = False) -> list[str]:
    """The themes the comments in scope carry, for a picker: analyst rules first, then by mentions (read off
    the Themes tab's table; every theme of the store took a pass over all comments, 3 s at 10 M). A choice
    the scope no longer holds leaves the picker's selection (a picker with a default starts again from it:
    Streamlit warns when such a widget's value is also set in code)."""
    if impact.empty:
        options = []
    else:
        ranked = impact.assign(rule=impact["origin"] == "rule").sort_values(
            ["rule", "mentions", "theme"], ascending=[False, False, True])
        options = list(dict.fromkeys(ranked["theme"]))
    chosen = st.session_state.get(key)
    if chosen and any(t not in options for t in chosen):
        if has_default:
            del st.session_state[key]
        else:
            st.session_state[key] = [t for t in chosen if t in options]
    return options


@st.cache_data(show_spinner=False, ttl=3600, max_entries=16)
def _sources(v: int) -> list[str]:
    return voice.sources_with_comments(get_store())


@st.cache_data(show_spinner=False, ttl=3600, max_entries=16)
def _metrics(v: int, rev: str, source: str) -> list[str]:
    return voice.metrics_with_data(get_store(), source)


# -- the analysis is current ---------------------------------------------------------------------------
# Imports analyse their comments; this catches what changed otherwise (a removed batch brings back
# older rows), once per data version.
if st.session_state.get("voice_checked") != v:
    try:
        if not voice.is_current(store):
            with st.spinner("Reading the comments: language, sentiment and themes…"):
                voice.refresh(store)
    except TouchpointError as exc:
        show_error(exc)
        st.stop()
    st.session_state["voice_checked"] = v
err = voice.last_error(store)
if err:
    st.warning(f"The comments of the last import could not be analysed: {md_text(err)}", icon=":material/warning:")
    if st.button("Analyse the comments again", key="voice_retry"):
        try:
            with st.spinner("Reading the comments…"):
                voice.refresh(store, force=True)
                store.set_setting("voice_error", None)
        except TouchpointError as exc:
            show_error(exc)
            st.stop()
        st.rerun()
rev = voice.revision(store)

sources = _sources(v)
if not sources:
    st.info("No comments yet: import survey responses with a comment column (or tickets with a subject or "
            "description) on the **Data** page.", icon=":material/forum:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()
source = page_option("source", sources, sources[0], label="Comments from", fmt=SOURCE_LABELS.get,
                     widget=st.radio, horizontal=True) if len(sources) > 1 else sources[0]

summary = _summary(v, rev, source, filters)
if summary["ignored_filters"]:
    st.caption(f"Filters on {', '.join(summary['ignored_filters'])} do not apply to {SOURCE_LABELS[source].lower()} "
               "and are ignored here.")
scored = summary["negative"] + summary["neutral"] + summary["positive"]
cols = st.columns(5)
cols[0].metric("Comments", f"{summary['comments']:,}",
               help="Rows in the period and filters that carry text.")
cols[0].caption(f"{100 * summary['comments'] / summary['rows']:.0f}% of {summary['rows']:,} rows" if summary["rows"] else "")
for col, lab in zip(cols[1:4], ("positive", "neutral", "negative")):
    share = f"{100 * summary[lab] / scored:.1f}%" if scored else "–"
    col.metric(lab.capitalize(), share, help=f"Share of the {scored:,} scored comments.")
    col.caption(f"{summary[lab]:,} comments")
cols[4].metric("Unscored", f"{summary['unscored']:,}",
               help="Comments in a language without a model, or without words. They still count in themes and search.")
if summary["reasons"]:
    cols[4].caption(summary["reasons"][0][0][:140])
with st.expander("How sentiment is measured", icon=":material/info:"):
    st.markdown(
        "Each comment's language is detected. Where the store holds enough comments with a score in that "
        "language, a model learns how customers write when they score low (detractors, CSAT 1–2, hard CES) "
        "and high (promoters, CSAT 4–5, easy CES); every comment is then scored by a model that did not see it. "
        "The neutral band is set where it best matches the middle scores. Comments are never scored with a "
        "model of another language.")
    for line in voice.describe_models(voice.model_reports(store)):
        st.text(line)

tab_themes, tab_trends, tab_verbatims, tab_rules = st.tabs(["Themes", "Trends", "Comments", "Theme rules"])

# -- themes ---------------------------------------------------------------------------------------------
with tab_themes:
    metric_opts = _metrics(v, rev, source)
    if not metric_opts:
        st.info("These comments carry no NPS, CSAT or CES score, so themes are shown by volume and sentiment only.")
    metric = (page_option("voice_metric", metric_opts, metric_opts[0], label="Impact on",
                          fmt=voice.METRIC_LABELS.get) if metric_opts else None)
    with st.spinner("Measuring each theme…"):
        impact = _impact(v, rev, source, metric, filters, settings.alpha)
    if impact.empty:
        st.info("No themes in these comments yet: themes are discovered once a language has 60 comments, and "
                "analyst rules can be added under **Theme rules**.")
    else:
        mlabel = voice.METRIC_LABELS.get(metric or "", "")
        cost_unit = "NPS points" if metric == "nps" else f"points of % {'satisfied' if metric == 'csat' else 'easy'}"
        if metric:
            fig = go.Figure()
            # Names on the points that matter (the costliest, the most frequent); the rest on hover.
            ranked = impact.assign(_r=impact["points_cost"].rank(ascending=False) + impact["share"].rank(ascending=False) / 2)
            named = set(ranked.nsmallest(10, "_r")["theme"]) if len(impact) > 10 else set(impact["theme"])
            # Labels placed where they collide with no other label or marker, most important first; a
            # label with no free spot is left to the hover text.
            order = ranked.sort_values("_r").index
            spots, texts = label_positions(impact.loc[order, "share"], impact.loc[order, "points_cost"],
                                           [t if t in named else "" for t in impact.loc[order, "theme"]], height=400)
            placed = impact.assign(_pos=pd.Series(spots, index=order), _text=pd.Series(texts, index=order))
            for origin, marker in (("rule", "diamond"), ("auto", "circle")):
                part = placed[placed["origin"] == origin]
                if part.empty:
                    continue
                fig.add_trace(go.Scatter(
                    x=part["share"], y=part["points_cost"], mode="markers+text", name=ORIGIN_LABELS[origin],
                    text=list(part["_text"]), hovertext=part["theme"],
                    textposition=list(part["_pos"]), textfont=dict(size=11),
                    marker=dict(symbol=marker, size=12, color=METRIC_COLOURS.get(metric, SERIES_COLOURS[0]),
                                opacity=0.85 if origin == "rule" else 0.55),
                    customdata=part[["mentions", "mean_with", "mean_without"]].to_numpy(),
                    hovertemplate="%{hovertext}<br>%{x:.1f}% of comments (%{customdata[0]:,})<br>costs %{y:.1f} "
                                  + cost_unit + "<extra></extra>"))
            style_figure(fig, title=f"Themes: how often raised × what they cost in {mlabel}",
                         x_title="Share of comments mentioning the theme (%)", y_title=f"{mlabel} cost ({cost_unit})",
                         height=480)
            fig.update_layout(hovermode="closest")
            show_chart(fig, key="voice_theme_map")
            st.caption(f"Top right matters most: frequent themes whose unhappy customers pull {mlabel} down the most. "
                       f"Cost = {mlabel} without the unhappy answers that mention the theme, minus the actual.")
        table = impact.rename(columns={
            "theme": "Theme", "origin": "Origin", "mentions": "Mentions", "share": "% of comments",
            "mean_sentiment": "Mean sentiment", "pct_negative": "% negative", "mean_with": f"Mean {mlabel} with",
            "mean_without": f"Mean {mlabel} without", "diff": "Difference", "diff_low": "Diff. low",
            "diff_high": "Diff. high", "points_cost": f"Cost ({cost_unit})" if metric else "Cost",
            "n": "Scored answers"})
        table["Origin"] = table["Origin"].map(ORIGIN_LABELS)
        if not metric:
            table = table.drop(columns=[c for c in table.columns if "Mean " in c or "Diff" in c or "Cost" in c])
        show_table(table,
                   column_config={"Mentions": st.column_config.NumberColumn(format="localized"),
                                  "Scored answers": st.column_config.NumberColumn(format="localized"),
                                  "% of comments": st.column_config.NumberColumn(format="%.1f"),
                                  "Mean sentiment": st.column_config.NumberColumn(format="%+.2f"),
                                  "% negative": st.column_config.NumberColumn(format="%.0f"),
                                  f"Mean {mlabel} with": st.column_config.NumberColumn(format="%.2f"),
                                  f"Mean {mlabel} without": st.column_config.NumberColumn(format="%.2f"),
                                  "Difference": st.column_config.NumberColumn(format="%+.2f"),
                                  "Diff. low": st.column_config.NumberColumn(format="%+.2f"),
                                  "Diff. high": st.column_config.NumberColumn(format="%+.2f"),
                                  f"Cost ({cost_unit})": st.column_config.NumberColumn(format="%.1f")})
        if metric:
            st.caption(f"Mean {mlabel} ({voice.SCALE_LABELS[metric]}) of the comments mentioning the theme against the "
                       f"other comments, with the difference's {1 - settings.alpha:.0%} Welch interval. A theme is "
                       "discovered in the words themselves or set by an analyst rule; a comment can carry several.")
        table_download(table, "voice_themes", key="voice_themes_csv")
        example_theme = st.selectbox("Examples of a theme", list(impact["theme"]), key="voice_example_theme")
        ex_sent = st.radio("Showing", ["all", "negative", "positive"], format_func=str.capitalize, horizontal=True,
                           key="voice_example_sentiment")
        examples, n_ex = _verbatims(v, rev, source, filters, "", (example_theme,),
                                    () if ex_sent in (None, "all") else (ex_sent,), (), 5, 0, True)
        if examples.empty:
            st.caption(f"No {'' if ex_sent == 'all' else ex_sent + ' '}comment carries “{example_theme}” here.")
        else:
            # Plain-text cells: a comment is never rendered as Markdown or HTML.
            show_table(examples[["date", "comment", "category", "sentiment"]],
                       column_config={"date": st.column_config.DatetimeColumn("Date", format="YYYY-MM-DD"),
                                      "comment": st.column_config.TextColumn("Comment", width="large"),
                                      "category": "Score group", "sentiment": "Sentiment"})
            st.caption(f"The newest {len(examples)} different comments of {n_ex:,} such comments; all of them "
                       "under **Comments**.")

# -- trends ---------------------------------------------------------------------------------------------
with tab_trends:
    grain = page_option("voice_grain", list(voice.GRAINS), "month", label="Time grain", fmt=str.capitalize)
    trend = _trend(v, rev, source, grain, filters)
    if trend.empty:
        st.info("No comments in this period.")
    else:
        fig = go.Figure()
        scored_n = trend["negative"] + trend["neutral"] + trend["positive"]
        low = scored_n < settings.min_n
        for lab in ("negative", "neutral", "positive"):
            fig.add_trace(go.Bar(x=trend["period"], y=trend[f"pct_{lab}"], name=lab.capitalize(),
                                 marker=dict(color=SENTIMENT_COLOURS[lab], opacity=[0.35 if x else 1.0 for x in low]),
                                 customdata=trend[lab], hovertemplate="%{y:.1f}% (%{customdata:,} comments)"))
        fig.update_layout(barmode="stack")
        style_figure(fig, title=f"Sentiment of {SOURCE_LABELS[source].lower()} per {grain}", x_title=grain.capitalize(),
                     y_title="Share of scored comments (%)")
        show_chart(fig, key="voice_sentiment_trend")
        st.caption("Each bar splits the period's scored comments into negative, neutral and positive; hover for counts."
                   + (f" Faded bars: fewer than {settings.min_n} scored comments ({int(low.sum())} periods)." if low.any() else ""))
        themes_all = _theme_options(impact, "voice_trend_themes", has_default=True)
        top = list(impact["theme"].head(6)) if not impact.empty else []
        chosen = st.multiselect("Themes to follow", themes_all, default=[t for t in top if t in themes_all],
                                key="voice_trend_themes")
        if chosen:
            tt = _theme_trend(v, rev, source, tuple(chosen), grain, filters)
            fig = go.Figure()
            for i, theme in enumerate(chosen):
                part = tt[tt["theme"] == theme]
                fig.add_trace(go.Scatter(x=part["period"], y=part["share"], mode="lines+markers", name=theme,
                                         line=dict(color=SERIES_COLOURS[i % len(SERIES_COLOURS)]),
                                         customdata=part["mentions"], hovertemplate="%{y:.1f}% (%{customdata:,})"))
            style_figure(fig, title=f"Themes over time, per {grain}", x_title=grain.capitalize(),
                         y_title="Share of the period's comments (%)")
            show_chart(fig, key="voice_theme_trend")
            thin = tt.groupby("period")["comments"].first()
            thin = thin[thin < settings.min_n]
            st.caption("How often each theme comes up, as a share of that period's comments: a rising line is a growing topic."
                       + (f" {len(thin)} periods have fewer than {settings.min_n} comments, so their shares jump."
                          if len(thin) else ""))
            table_download(tt, "voice_theme_trend", key="voice_theme_trend_csv")

# -- comments -------------------------------------------------------------------------------------------
with tab_verbatims:
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    search = c1.text_input("Search the comments", key="voice_search", placeholder="words, case and accents ignored")
    themes_all = _theme_options(impact, "voice_f_themes")
    pick_themes = c2.multiselect("Theme", themes_all, key="voice_f_themes", placeholder="Any theme")
    pick_sent = c3.multiselect("Sentiment", list(voice.VERBATIM_SENTIMENTS), key="voice_f_sentiment",
                               format_func=str.capitalize, placeholder="Any")
    cats = ["detractor", "passive", "promoter", "dissatisfied", "neutral", "satisfied", "hard", "easy"]
    pick_cat = c4.multiselect("Score", cats, key="voice_f_category", format_func=str.capitalize, placeholder="Any")
    args = (v, rev, source, filters, search, tuple(pick_themes), tuple(pick_sent), tuple(pick_cat))
    _, total = _verbatims(*args, 0, 0)  # the count only
    pages = max(1, math.ceil(total / PAGE_SIZE))
    p1, p2 = st.columns([1, 5])
    page_no = p1.number_input("Page", min_value=1, max_value=pages, value=1, step=1, key="voice_page")
    p2.caption(f"{total:,} comments match, newest first; page {page_no} of {pages}. The channel, dates and other "
               "filters in the sidebar apply too.")
    rows, _ = _verbatims(*args, PAGE_SIZE, (int(page_no) - 1) * PAGE_SIZE)
    if rows.empty:
        st.info("No comment matches these filters.")
    else:
        shown = rows.drop(columns=[c for c in ("nps", "csat", "ces") if rows[c].isna().all()])
        # A dataframe shows every cell as plain text: markup in a comment is never rendered.
        order = [c for c in ("date", "comment", "category", "nps", "csat", "ces", "sentiment", "sentiment_score",
                             "themes", "channel", "customer", "language") if c in shown.columns]
        show_table(shown, column_order=order,
                   column_config={"date": st.column_config.DatetimeColumn("Date", format="YYYY-MM-DD"),
                                  "comment": st.column_config.TextColumn("Comment", width="large"),
                                  "category": "Score group", "nps": "NPS", "csat": "CSAT", "ces": "CES",
                                  "sentiment": "Sentiment", "themes": "Themes", "channel": "Channel",
                                  "customer": "Customer", "language": "Language",
                                  "sentiment_score": st.column_config.NumberColumn("Sentiment score", format="%+.2f")})
        # Read and built when a download is clicked, not on every rerun (up to 100,000 comments); so it holds
        # the comments as they are then (an import since may add some).
        query = dict(source=source, start=filters.start, end=filters.end, where=filters.where, search=search,
                     themes=tuple(pick_themes), sentiments=tuple(pick_sent), categories=tuple(pick_cat),
                     limit=EXPORT_LIMIT)
        table_download(lambda q=query: voice.verbatims(store, **q)[0], "voice_comments", key="voice_comments_csv",
                       sheet="Comments")
        if total > EXPORT_LIMIT:
            st.caption(f"Downloads hold the newest {EXPORT_LIMIT:,} of the {total:,} matching comments.")

# -- theme rules ----------------------------------------------------------------------------------------
with tab_rules:
    st.caption("Analyst themes: a comment carries the theme when it contains one of its keywords — whole words, "
               "case and accents ignored, `*` at the end for any ending (deliver* → delivery, delivered). "
               "Separate keywords with commas. Saving re-tags every comment at once.")
    rules = voice.load_rules(store)
    editor = st.data_editor(pd.DataFrame({"Theme": [r.theme for r in rules],
                                          "Keywords": [", ".join(r.terms) for r in rules]}),
                            num_rows="dynamic", hide_index=True, width="stretch", key="voice_rules_editor",
                            column_config={"Theme": st.column_config.TextColumn(required=True, max_chars=80),
                                           "Keywords": st.column_config.TextColumn(width="large")})
    if st.button("Save theme rules", key="voice_rules_save", type="primary"):
        raw = [{"theme": str(r["Theme"] or "").strip(),
                "terms": [t.strip() for t in str(r["Keywords"] or "").split(",") if t.strip()]}
               for _, r in editor.iterrows() if str(r["Theme"] or "").strip() or str(r["Keywords"] or "").strip()]
        try:
            written = voice.save_rules(store, voice.parse_rules(raw))
        except TouchpointError as exc:
            show_error(exc)
        else:
            st.session_state["voice_saved"] = written
            st.rerun()
    if "voice_saved" in st.session_state:
        st.success(f"Theme rules saved: {st.session_state.pop('voice_saved'):,} comment tags written.",
                   icon=":material/check:")
