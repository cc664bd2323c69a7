"""Deterministic demo data: two years (2024-11-01 to 2026-10-31) of a fictional online retailer with
a subscription plan, linked by customer, with patterns worth discovering.

Patterns built in (effect sizes are what the generator aims for; tests measure them):

- **App NPS drops after 2026-03-01** (a buggy release): app-channel responses lose 1.3 points of
  likelihood-to-recommend, about −30 NPS points, and their comments turn to crashes.
- **Detractors churn more**: a customer's monthly churn hazard is multiplied by 2.5 for each
  detractor answer (0–6) they gave (2.5× per answer, up to three), so churn among customers with a detractor response is several
  times that of the rest.
- **Slow tickets hurt**: ticket CSAT falls with time to resolution (median 5 for tickets solved within
  a day, 2–3 beyond three days), and a customer's NPS answers within 30 days after a ticket that took
  over 72 hours lose 2 points.
- **Seasonality**: orders and survey volume are ~60% higher in November–December.
- **Segments differ**: Enterprise customers score highest, Consumer lowest.
- **Recurring themes** in comments: late delivery, app crashes, double billing, slow support,
  helpful agents, good prices, easy checkout, fast delivery.

``generate`` returns canonical frames; ``load_demo`` imports them through the ordinary importer, so
the demo data is made of batches like any other data and can be removed again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-11-01")
END = pd.Timestamp("2026-10-31 23:59:59")
APP_RELEASE = pd.Timestamp("2026-03-01")
SEGMENTS = np.array(["Consumer", "SMB", "Enterprise"])
REGIONS = np.array(["North America", "Europe", "APAC", "LATAM"])
PLANS = np.array(["Basic", "Plus", "Premium"])
CHANNELS = np.array(["web", "app", "email", "phone", "chat", "store"])
PRODUCTS = np.array(["Home", "Electronics", "Fashion", "Garden", "Sports"])
STAGE_TOUCHPOINTS = [
    ("Consideration", "Website"), ("Purchase", "Checkout"), ("Purchase", "Mobile app"), ("Onboarding", "Welcome email"),
    ("Usage", "Delivery"), ("Usage", "Mobile app"), ("Support", "Support call"), ("Support", "Live chat"),
    ("Renewal", "Billing"), ("Purchase", "Store visit"),
]
CHANNEL_TOUCHPOINT = {"web": [0, 1, 4, 8], "app": [2, 5, 4], "email": [3, 8, 4], "phone": [6, 8], "chat": [7, 4],
                      "store": [9, 4]}
NEGATIVE = {
    "delivery": ["My delivery was late again", "The parcel arrived a week after the promised date",
                 "Delivery took far too long", "Courier never showed up on the day they said"],
    "app": ["The app keeps crashing when I open my basket", "Since the last update the app crashes at checkout",
            "App freezes and logs me out", "The new app version is unusable, it crashes all the time"],
    "billing": ["I was charged twice for one order", "Billing took the money twice and the refund is slow",
                "Unexpected fee on my invoice", "Double charge on my card, still not fixed"],
    "support": ["Support was slow to answer", "I waited days for a reply from support",
                "Nobody from customer service called me back", "Had to explain my problem three times to support"],
    "price": ["Prices went up too much", "Too expensive compared to other shops", "The subscription is overpriced"],
}
POSITIVE = {
    "agent": ["The agent was really helpful", "Support solved my problem in minutes", "Friendly and helpful staff"],
    "price": ["Great prices", "Good value for money", "Cheaper than anywhere else"],
    "checkout": ["Checkout was quick and easy", "Easy to order, took two minutes", "Very easy checkout"],
    "delivery": ["Fast delivery", "Arrived the next day, well packed", "Delivery was quicker than expected"],
    "quality": ["Great quality products", "Everything works as described", "Love the product range"],
}
NEUTRAL = ["It was ok", "Fine overall", "Nothing special", "Average experience", "Does the job"]
NEG_CLOSERS = ["", "", ". Please fix this", ". Not impressed", ". Very disappointed", ". Thinking of leaving"]
POS_CLOSERS = ["", "", ". Will order again", ". Thanks!", ". Keep it up", ". Recommended to friends"]
MID_CLOSERS = ["", "", ". Otherwise fine", ". Could be better"]


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _uniform_times(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    lo_ns, hi_ns = lo.astype("datetime64[ns]").astype(np.int64), hi.astype("datetime64[ns]").astype(np.int64)
    return (lo_ns + (rng.random(len(lo)) * np.maximum(hi_ns - lo_ns, 0)).astype(np.int64)).astype("datetime64[ns]")


def _seasonal_keep(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """Thin out events outside November–December so those months are ~60% busier."""
    month = pd.DatetimeIndex(times).month
    return rng.random(len(times)) < np.where(np.isin(month, [11, 12]), 1.0, 1 / 1.6)


def _lower_first(text: str) -> str:
    return text if text.startswith("I ") else text[0].lower() + text[1:]


def _comments(rng: np.random.Generator, nps_like: np.ndarray, channel: np.ndarray, after_release: np.ndarray,
              slow_ticket: np.ndarray) -> np.ndarray:
    """A comment for about half the answers; negative themes for low scores, positive for high."""
    n = len(nps_like)
    out = np.full(n, None, dtype=object)
    has = rng.random(n) < np.where(nps_like <= 6, 0.7, np.where(nps_like >= 9, 0.45, 0.3))
    neg_keys = list(NEGATIVE)
    pos_keys = list(POSITIVE)
    for i in np.flatnonzero(has):
        score = nps_like[i]
        if score <= 6:
            if channel[i] == "app" and after_release[i] and rng.random() < 0.7:
                theme = "app"
            elif slow_ticket[i] and rng.random() < 0.6:
                theme = "support"
            else:
                theme = neg_keys[rng.choice(len(neg_keys), p=[0.35, 0.1, 0.2, 0.2, 0.15])]
            text = NEGATIVE[theme][rng.integers(len(NEGATIVE[theme]))]
            if rng.random() < 0.3:
                other = neg_keys[rng.integers(len(neg_keys))]
                text += ". " + NEGATIVE[other][rng.integers(len(NEGATIVE[other]))]
        elif score >= 9:
            theme = pos_keys[rng.integers(len(pos_keys))]
            text = POSITIVE[theme][rng.integers(len(POSITIVE[theme]))]
            if rng.random() < 0.3:
                other = pos_keys[rng.integers(len(pos_keys))]
                text += " and " + _lower_first(POSITIVE[other][rng.integers(len(POSITIVE[other]))])
        else:
            text = NEUTRAL[rng.integers(len(NEUTRAL))]
            if rng.random() < 0.5:
                theme = neg_keys[rng.integers(len(neg_keys))]
                text += ", but " + _lower_first(NEGATIVE[theme][rng.integers(len(NEGATIVE[theme]))])
        closers = NEG_CLOSERS if score <= 6 else POS_CLOSERS if score >= 9 else MID_CLOSERS
        out[i] = (text + closers[rng.integers(len(closers))]).rstrip(".") + "."
    return out


def generate(seed: int = 7, scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """Canonical frames ``customers, orders, tickets, responses, events`` (columns named as in
    ``cx.store.TABLES``); the same seed and scale always give the same data."""
    rng = np.random.default_rng(seed)
    n_cust = max(int(5000 * scale), 20)

    # -- customers -------------------------------------------------------------------------------
    seg_idx = rng.choice(3, n_cust, p=[0.6, 0.3, 0.1])
    region = REGIONS[rng.choice(4, n_cust, p=[0.4, 0.3, 0.2, 0.1])]
    plan_p = np.array([[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.1, 0.3, 0.6]])
    plan_idx = np.array([rng.choice(3, p=plan_p[s]) for s in seg_idx]) if n_cust < 50_000 else \
        np.minimum((rng.random(n_cust) * 3).astype(int), 2)
    early = rng.random(n_cust) < 0.2
    signup = np.where(
        early,
        _uniform_times(rng, np.full(n_cust, np.datetime64("2023-01-01")), np.full(n_cust, START.to_datetime64())),
        _uniform_times(rng, np.full(n_cust, START.to_datetime64()), np.full(n_cust, (END - pd.Timedelta(days=20)).to_datetime64())),
    )
    mood = rng.normal(np.array([-0.25, 0.1, 0.6])[seg_idx], 1.0)  # latent satisfaction
    mrr = np.round(np.array([19.0, 49.0, 99.0])[plan_idx] * np.array([1.0, 1.6, 3.5])[seg_idx] * rng.uniform(0.9, 1.1, n_cust), 2)
    cust_ids = _ids("C", n_cust, 6)

    # -- tickets (before responses: slow tickets lower later NPS) --------------------------------
    window_lo = np.maximum(signup, START.to_datetime64())
    active_days = (END.to_datetime64() - window_lo).astype("timedelta64[D]").astype(float)
    n_t = rng.poisson(np.maximum(active_days, 0) / 365 * 2.0)
    t_cust = np.repeat(np.arange(n_cust), n_t)
    t_created = _uniform_times(rng, window_lo[t_cust], np.full(len(t_cust), END.to_datetime64()))
    t_channel = np.array(["email", "phone", "chat", "web"])[rng.choice(4, len(t_cust), p=[0.4, 0.2, 0.3, 0.1])]
    frt_median = pd.Series(t_channel).map({"email": 6.0, "phone": 0.3, "chat": 0.1, "web": 8.0}).to_numpy()
    first_resp_h = frt_median * rng.lognormal(0, 0.9, len(t_cust))
    priority = np.array(["low", "normal", "high", "urgent"])[rng.choice(4, len(t_cust), p=[0.2, 0.55, 0.2, 0.05])]
    res_h = first_resp_h + rng.lognormal(np.log(20), 1.1, len(t_cust)) * pd.Series(priority).map(
        {"low": 1.5, "normal": 1.0, "high": 0.7, "urgent": 0.4}).to_numpy()
    t_first = t_created + (first_resp_h * 3.6e12).astype("timedelta64[ns]")
    t_resolved = t_created + (res_h * 3.6e12).astype("timedelta64[ns]")
    open_now = t_resolved > END.to_datetime64()
    reopens = np.where(rng.random(len(t_cust)) < 0.07 + 0.08 * (res_h > 72), rng.integers(1, 3, len(t_cust)), 0)
    replies = 1 + rng.poisson(np.minimum(res_h / 24, 6))
    slow = res_h > 72
    csat_mean = np.where(res_h <= 24, 4.6, np.where(res_h <= 72, 3.8, 2.4)) + 0.3 * mood[t_cust]
    rated = (rng.random(len(t_cust)) < 0.35) & ~open_now
    t_csat = np.where(rated, np.clip(np.round(rng.normal(csat_mean, 0.7)), 1, 5), np.nan)
    category = np.array(["Delivery", "Billing", "App", "Returns", "Account"])[rng.choice(5, len(t_cust), p=[0.35, 0.2, 0.15, 0.2, 0.1])]
    subjects = {"Delivery": "Where is my order?", "Billing": "Charged twice", "App": "App crashes at login",
                "Returns": "How do I return an item?", "Account": "Cannot reset my password"}
    tickets = pd.DataFrame({
        "ticket_id": _ids("T", len(t_cust), 6), "created_at": t_created, "customer_id": cust_ids[t_cust],
        "first_response_at": t_first, "resolved_at": np.where(open_now, np.datetime64("NaT"), t_resolved),
        "status": np.where(open_now, "open", np.where(reopens > 0, "solved (reopened)", "solved")),
        "channel": t_channel, "priority": priority,
        "team": np.where(t_channel == "phone", "Voice", np.where(t_channel == "chat", "Chat", "Email desk")),
        "category": category, "reopens": reopens, "agent_replies": replies, "csat": t_csat,
        "csat_min": np.where(rated, 1, np.nan), "csat_max": np.where(rated, 5, np.nan),
        "subject": pd.Series(category).map(subjects).to_numpy(),
        "description": pd.Series(category).map(lambda c: f"Customer wrote about: {subjects[c].lower()}.").to_numpy(),
    })
    tickets["first_response_at"] = tickets["first_response_at"].where(tickets["first_response_at"] <= END)
    tickets["resolved_at"] = pd.to_datetime(tickets["resolved_at"])

    # -- responses -------------------------------------------------------------------------------
    n_r = rng.poisson(np.maximum(active_days, 0) / 365 * 6.5)
    r_cust = np.repeat(np.arange(n_cust), n_r)
    r_time = _uniform_times(rng, window_lo[r_cust], np.full(len(r_cust), END.to_datetime64()))
    keep = _seasonal_keep(rng, r_time)
    r_cust, r_time = r_cust[keep], r_time[keep]
    r_channel = CHANNELS[rng.choice(6, len(r_cust), p=[0.3, 0.25, 0.15, 0.1, 0.1, 0.1])]
    after = r_time >= APP_RELEASE.to_datetime64()
    # The latest ticket of the same customer before the answer: was it slow, and within 30 days?
    resp = pd.DataFrame({"i": np.arange(len(r_cust)), "cust": r_cust, "t": r_time}).sort_values("t")
    tk = pd.DataFrame({"cust": t_cust, "t": t_resolved, "slow": slow}).sort_values("t")
    joined = pd.merge_asof(resp, tk, on="t", by="cust", direction="backward", tolerance=pd.Timedelta(days=30))
    recent_slow = joined.sort_values("i")["slow"].fillna(False).to_numpy(dtype=bool)
    likelihood = (8.2 + 1.4 * mood[r_cust] + rng.normal(0, 1.6, len(r_cust))
                  - 1.3 * ((r_channel == "app") & after) - 2.0 * recent_slow
                  + np.where(np.isin(pd.DatetimeIndex(r_time).month, [11, 12]), 0.2, 0.0))
    nps_like = np.clip(np.round(likelihood), 0, 10)
    survey = rng.choice(3, len(r_cust), p=[0.5, 0.3, 0.2])
    st_idx = np.array([CHANNEL_TOUCHPOINT[c][rng.integers(len(CHANNEL_TOUCHPOINT[c]))] for c in r_channel]) \
        if len(r_channel) < 2_000_000 else rng.integers(0, len(STAGE_TOUCHPOINTS), len(r_channel))
    stages = np.array([s for s, _ in STAGE_TOUCHPOINTS])[st_idx]
    touchpoints = np.array([t for _, t in STAGE_TOUCHPOINTS])[st_idx]
    csat = np.clip(np.round(1 + (likelihood / 10) * 4 + rng.normal(0, 0.5, len(r_cust))), 1, 5)
    ces = np.clip(np.round(1.5 + (likelihood / 10) * 5 + rng.normal(0, 0.8, len(r_cust))), 1, 7)
    is_nps, is_csat, is_ces = survey == 0, survey == 1, survey == 2
    responses = pd.DataFrame({
        "submitted_at": r_time, "customer_id": cust_ids[r_cust],
        "nps": np.where(is_nps, nps_like, np.nan), "csat": np.where(is_csat, csat, np.nan),
        "csat_min": np.where(is_csat, 1, np.nan), "csat_max": np.where(is_csat, 5, np.nan),
        "ces": np.where(is_ces, ces, np.nan), "ces_min": np.where(is_ces, 1, np.nan), "ces_max": np.where(is_ces, 7, np.nan),
        "comment": _comments(rng, nps_like, r_channel, after, recent_slow),
        "survey": np.array(["Relationship NPS", "Post-purchase CSAT", "Support CES"])[survey],
        "channel": r_channel, "touchpoint": touchpoints, "journey_stage": stages,
        "segment": SEGMENTS[seg_idx][r_cust], "region": region[r_cust],
        "product": PRODUCTS[rng.integers(0, len(PRODUCTS), len(r_cust))], "language": "en",
    })

    # -- churn: detractor answers raise the hazard -------------------------------------------------
    detractor_counts = np.bincount(r_cust[is_nps & (nps_like <= 6)], minlength=n_cust)
    hazard = 0.006 * np.array([1.3, 1.0, 0.6])[seg_idx] * np.power(2.5, np.minimum(detractor_counts, 3))
    months_active = (END.to_datetime64() - signup).astype("timedelta64[D]").astype(float) / 30.4
    p_churn = 1 - np.power(1 - np.minimum(hazard, 0.9), np.maximum(months_active, 0))
    churned = rng.random(n_cust) < p_churn
    first_det = pd.Series(r_time[is_nps & (nps_like <= 6)]).groupby(r_cust[is_nps & (nps_like <= 6)]).min()
    churn_from = signup + np.timedelta64(30, "D")
    has_det = np.zeros(n_cust, bool)
    has_det[first_det.index.to_numpy()] = True
    churn_from = np.where(has_det, np.maximum(churn_from, pd.Series(first_det).reindex(range(n_cust)).to_numpy()), churn_from)
    churned &= churn_from < END.to_datetime64()
    churned_at = np.where(churned, _uniform_times(rng, churn_from, np.full(n_cust, END.to_datetime64())), np.datetime64("NaT"))
    churned_at = pd.to_datetime(churned_at)
    customers = pd.DataFrame({
        "customer_id": cust_ids, "signup_at": pd.to_datetime(signup), "churned_at": churned_at,
        "churned": churned, "plan": PLANS[plan_idx], "segment": SEGMENTS[seg_idx], "region": region, "mrr": mrr,
    })
    end_of_life = churned_at.fillna(END).to_numpy()
    responses = responses[responses["submitted_at"].to_numpy() <= end_of_life[r_cust]].reset_index(drop=True)
    tickets = tickets[tickets["created_at"].to_numpy() <= end_of_life[t_cust]].reset_index(drop=True)
    responses.insert(0, "response_id", _ids("R", len(responses), 7))

    # -- orders: rate by segment, seasonality, stop at churn -----------------------------------------
    rate = np.array([6.0, 12.0, 20.0])[seg_idx] * np.exp(0.2 * mood)
    n_o = rng.poisson(np.maximum(active_days, 0) / 365 * rate)
    o_cust = np.repeat(np.arange(n_cust), n_o)
    o_time = _uniform_times(rng, window_lo[o_cust], np.full(len(o_cust), END.to_datetime64()))
    keep = _seasonal_keep(rng, o_time) & (o_time <= end_of_life[o_cust])
    o_cust, o_time = o_cust[keep], o_time[keep]
    amount = np.round(rng.lognormal(np.log(np.array([45.0, 120.0, 380.0])[seg_idx][o_cust]), 0.6), 2)
    orders = pd.DataFrame({
        "order_id": _ids("O", len(o_cust), 7), "customer_id": cust_ids[o_cust], "ordered_at": o_time,
        "amount": amount, "quantity": 1 + rng.poisson(1.2, len(o_cust)), "currency": "USD",
        "status": np.where(rng.random(len(o_cust)) < 0.03, "refunded", "completed"),
        "channel": np.array(["web", "app", "store"])[rng.choice(3, len(o_cust), p=[0.5, 0.35, 0.15])],
        "product": PRODUCTS[rng.integers(0, len(PRODUCTS), len(o_cust))],
    }).sort_values("ordered_at").reset_index(drop=True)
    orders["order_id"] = _ids("O", len(orders), 7)

    # -- journey events: a purchase funnel per session -------------------------------------------------
    steps = ["Visited site", "Viewed product", "Added to cart", "Checkout started", "Order placed", "Onboarding completed"]
    go_on = np.array([0.72, 0.48, 0.7, 0.78, 0.55])
    n_s = rng.poisson(np.maximum(active_days, 0) / 365 * 3.0)
    s_cust = np.repeat(np.arange(n_cust), n_s)
    s_time = _uniform_times(rng, window_lo[s_cust], np.full(len(s_cust), END.to_datetime64()))
    keep = s_time <= end_of_life[s_cust]
    s_cust, s_time = s_cust[keep], s_time[keep]
    s_channel = np.where(rng.random(len(s_cust)) < 0.6, "web", "app")
    # App sessions after the release abandon at checkout more often.
    app_after = (s_channel == "app") & (s_time >= APP_RELEASE.to_datetime64())
    depth = np.ones(len(s_cust), int)
    alive = np.ones(len(s_cust), bool)
    for k, p in enumerate(go_on):
        p_k = np.where(app_after & (k == 3), p * 0.6, p)
        alive &= rng.random(len(s_cust)) < p_k
        depth += alive
    ev_session = np.repeat(np.arange(len(s_cust)), depth)
    ev_step = np.concatenate([np.arange(d) for d in depth]) if len(depth) else np.array([], int)
    gap_minutes = np.where(ev_step == 0, 0, np.where(ev_step == 5, rng.uniform(60 * 24, 60 * 24 * 10, len(ev_step)),
                                                       rng.lognormal(np.log(4), 1.0, len(ev_step))))
    offset = pd.Series(gap_minutes).groupby(ev_session).cumsum().to_numpy()
    ev_time = s_time[ev_session] + (offset * 6e10).astype("timedelta64[ns]")
    step_tp = {0: "Website", 1: "Product page", 2: "Basket", 3: "Checkout", 4: "Checkout", 5: "Welcome email"}
    events = pd.DataFrame({
        "customer_id": cust_ids[s_cust][ev_session], "occurred_at": ev_time,
        "step": np.array(steps)[ev_step], "channel": s_channel[ev_session],
        "touchpoint": np.where((s_channel[ev_session] == "app") & (ev_step < 5), "Mobile app",
                               pd.Series(ev_step).map(step_tp).to_numpy()),
        "session_id": _ids("S", len(s_cust), 7)[ev_session],
    })
    events = events[events["occurred_at"] <= END].drop_duplicates(["customer_id", "occurred_at", "step"])
    events = events.sort_values("occurred_at").reset_index(drop=True)
    tickets = tickets.sort_values("created_at").reset_index(drop=True)
    responses = responses.sort_values("submitted_at").reset_index(drop=True)
    responses["response_id"] = _ids("R", len(responses), 7)
    tickets["ticket_id"] = _ids("T", len(tickets), 6)
    return {"customers": customers, "orders": orders, "tickets": tickets, "responses": responses, "events": events}


def load_demo(store, seed: int = 7, scale: float = 1.0) -> list:
    """Import the generated frames through the ordinary importer (one batch per table); return the
    ``ImportResult`` of each."""
    from cx.ingest import import_frame

    frames = generate(seed=seed, scale=scale)
    results = [import_frame(store, kind, frames[kind], file_name=f"Demo data: {kind}")
               for kind in ("customers", "orders", "tickets", "responses", "events")]
    store.set_setting("demo_loaded", {"seed": seed, "scale": scale})
    return results
