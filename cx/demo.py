"""Deterministic demo data: two years (2024-11-01 to 2026-10-31) of a fictional online shop with a
membership plan, linked by customer, with patterns worth discovering.

``generate(seed, scale)`` draws everything from one ``numpy.random.default_rng(seed)`` and fixed
dates (never "today"), so the same seed and scale always give identical frames. At scale 1: 5,000
customers (a fifth signed up before the window), 36,105 orders, 9,870 tickets, 22,865 survey
responses and 79,879 journey events; ``scale`` multiplies every volume. The story, in drawing order:

- Each customer has a hidden satisfaction level, normal with SD 1 around a segment mean (Consumer
  −0.3, SMB +0.1, Enterprise +0.6) plus a region shift (Europe −0.1, LATAM +0.2); every score
  below moves with it. App users (45% of Consumers, 30% of SMBs, 15% of Enterprises) order, answer
  and browse mostly in the app.
- Orders arrive at a yearly rate of 6.5 (Consumer), 12 (SMB) or 21 (Enterprise) in the peak months,
  ×0.9 Basic / ×1.15 Premium, ×exp(0.15 · satisfaction). 7% of shipped orders are late (18% in
  November–December), and a late order is refunded 12% of the time (2.5% otherwise).
- Tickets come from 45% of late orders ("where is my order?", 3–9 days later), from a base rate of
  1.1 / 1.7 / 2.8 a year by segment, and from app users after the bad release (1.2 a year). First
  response and resolution times depend on channel, category, team, priority and the peak season.
- A Relationship NPS survey reaches each customer about twice a year; a post-purchase CSAT follows
  22% of orders, a Support CES 35% of solved tickets, website feedback 4% of browsing sessions, and
  an onboarding CSAT 40% of completed onboardings.
- Customers churn; nothing happens after a customer has churned.

Patterns built in. "Measured" values are for seed 7 at scale 1, computed on the generated frames
the way ``tests/test_demo.py`` computes them; NPS is % promoters (9–10) − % detractors (0–6), in
points (+23.5 over all answers).

- **App NPS drops after 2026-03-01** (a buggy release): from that date 16% of app-channel NPS
  respondents hit the bug and answer 4 points lower, which makes detractors of them. Measured: app
  NPS +22.7 before, +3.8 after (−18.9 points; detractors 21.7% → 30.8%, promoters 44.5% → 34.6%);
  web moves −4.8 and email −0.2. App comments turn to crashes (2% → 14% of app comments), app
  checkout → order conversion falls from 78% to 55% (web stays at 77%), and app users raise extra
  "App" tickets.
- **Detractors churn more**: the monthly churn hazard (Consumer 0.9%, SMB 0.6%, Enterprise 0.3%;
  ×1.2 Basic, ×0.8 Premium; from 30 days after signup) is multiplied by 2.5 at each of a customer's
  first three detractor answers. Measured: 27.3% of customers with a detractor answer have churned
  by the end against 14.1% of the others; by number of detractor answers 0 / 1 / 2 / 3+:
  14% / 22% / 31% / 59%.
- **Slow tickets hurt**: ticket CSAT has mean 4.6 − 0.9 if solved after 24 h − 1.3 more after 72 h
  − 0.4 if the first response took over 8 h (+0.35 per SD of satisfaction, noise SD 0.7). Measured
  mean (median): 4.42 (5) within 24 h, 3.55 (4) in 24–72 h, 2.25 (2) beyond 72 h. An NPS answer
  within 30 days after a ticket that took over 72 hours is 1 point lower: measured NPS −11.4 after
  a slow ticket against +27.1 after a fast one (−38.5 points). Slow tickets also lower Support CES
  by 1.6 points and bring "support was slow" comments.
- **Seasonality**: November–December are 50% busier for orders, NPS surveys and browsing (other
  months are thinned to 1 in 1.5). Measured, Nov–Dec 2025 against Sep–Oct 2025 and Jan–Feb 2026:
  orders ×1.55, responses ×1.44, events ×1.48, tickets ×1.30. Support is slower then (first
  response ×1.6, resolution ×1.3).
- **Segments differ**: measured NPS Consumer +16.1, SMB +30.5, Enterprise +46.6; orders per
  customer 4.4 / 9.1 / 20.1; median order $86 / $234 / $1,530. By region, LATAM (+32.3) leads and
  Europe (+18.7) trails.
- **The Billing team is slow**: its tickets take twice the work they would elsewhere; measured
  median time to resolution 54.6 h against 11.0–47.5 h for the other teams.
- **Recurring comment themes**: late delivery, app crashes, double billing, slow support, high
  prices and damaged items on the negative side; helpful agents, great prices, easy checkout, fast
  delivery, product quality and the app on the positive side. Complaints come with low scores and
  follow their cause (late order → delivery, the buggy app → crashes, slow ticket → support,
  renewal → billing); praise comes with high scores; middling scores get a plain remark or praise
  with a "but". Phrases, details and closers are combined, giving 3,068 distinct comments.
  Measured: 48.9% of responses have a comment (None otherwise): 76% of detractors', 34% of
  passives', 53% of promoters'.

``load_demo`` imports the frames through the ordinary importer, so the demo data is made of batches
like any other data and can be removed again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cx.ingest import ImportResult
    from cx.store import Store

START = pd.Timestamp("2024-11-01")
END = pd.Timestamp("2026-10-31 23:59:59")
EARLIEST_SIGNUP = pd.Timestamp("2023-01-01")
APP_RELEASE = pd.Timestamp("2026-03-01")
PEAK_MONTHS = (11, 12)
PEAK_FACTOR = 1.5
SLOW_TICKET_HOURS = 72
BASE_CUSTOMERS = 5000
KINDS = ("customers", "orders", "tickets", "responses", "events")

SEGMENTS = np.array(["Consumer", "SMB", "Enterprise"], dtype=object)
SEGMENT_SHARES = (0.62, 0.28, 0.10)
SEGMENT_SATISFACTION = (-0.3, 0.1, 0.6)
REGIONS = np.array(["North America", "Europe", "APAC", "LATAM"], dtype=object)
REGION_SHARES = (0.4, 0.3, 0.2, 0.1)
REGION_SATISFACTION = (0.0, -0.1, 0.0, 0.2)
PLANS = np.array(["Basic", "Plus", "Premium"], dtype=object)
PLAN_SHARES = ((0.6, 0.3, 0.1), (0.3, 0.5, 0.2), (0.1, 0.3, 0.6))  # rows: segment
PLAN_PRICE = (9.0, 19.0, 39.0)  # per seat and month
PRODUCTS = np.array(["Electronics", "Home", "Fashion", "Garden", "Sports"], dtype=object)
PRODUCT_SHARES = (0.25, 0.25, 0.2, 0.15, 0.15)
PRODUCT_PRICE = (150.0, 55.0, 40.0, 45.0, 65.0)  # median unit price, USD

ORDER_RATE = (6.5, 12.0, 21.0)  # orders a year by segment, in the peak months
CHURN_HAZARD = (0.009, 0.006, 0.003)  # a month, by segment
CHURN_PLAN = (1.2, 1.0, 0.8)
DETRACTOR_CHURN_FACTOR = 2.5  # per detractor answer …
MAX_DETRACTOR_STEPS = 3  # … for the first three
APP_BUG_SHARE = 0.16
APP_BUG_POINTS = 4.0
SLOW_TICKET_NPS_POINTS = 1.0

FUNNEL = np.array(["Visited site", "Viewed product", "Added to cart", "Checkout started", "Order placed",
                   "Onboarding completed"], dtype=object)
FUNNEL_CONTINUE = (0.68, 0.45, 0.62, 0.78)  # share that goes on to the next step
APP_CHECKOUT_AFTER_RELEASE = 0.55  # checkout → order for app sessions after the release

SURVEYS = np.array(["Relationship NPS", "Post-purchase CSAT", "Support CES", "Website feedback", "Onboarding CSAT"],
                   dtype=object)
TICKET_CATEGORIES = np.array(["Delivery", "Billing", "App", "Returns", "Account", "Product"], dtype=object)
TICKET_TEAMS = np.array(["Logistics", "Billing", "Tech support", "Returns", "Customer care", "Customer care"],
                        dtype=object)
TICKET_CHANNELS = np.array(["email", "phone", "chat", "web"], dtype=object)
# The touchpoint of a Support CES answer, by the ticket's channel (email, phone, chat, web).
SUPPORT_TOUCHPOINTS = np.array(["Support email", "Support call", "Live chat", "Help center"], dtype=object)
PRIORITIES = np.array(["low", "normal", "high", "urgent"], dtype=object)

# -- comment language -------------------------------------------------------------------------------
# Each theme: sentences a customer might lead with, and details they might add.
NEGATIVE_THEMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "late delivery": (
        ("My delivery was late again.", "The parcel arrived a week late.", "Delivery was delayed with no explanation.",
         "The courier turned up two days late.", "Late delivery, and the tracking never updated.",
         "My order was delayed twice.", "Delivery was late and nobody told me."),
        ("I needed it for a birthday.", "Tracking said out for delivery for three days.",
         "I had to stay home a second day to wait for it.", "The promised date means nothing."),
    ),
    "app crashes": (
        ("The app keeps crashing.", "Since the last update the app crashes at checkout.",
         "The app freezes every time I open my basket.", "The new app version crashes constantly.",
         "The app crashed twice while I was paying.", "Can't use the app any more, it just freezes and closes."),
        ("I had to finish the order on my laptop.", "Reinstalling didn't help.", "I lost my basket twice.",
         "It happens on every phone I've tried."),
    ),
    "billing": (
        ("I was charged twice for one order.", "Billing charged me twice and the refund is taking forever.",
         "There was an unexpected fee on my invoice.", "Double charge on my card, still not sorted.",
         "Billing renewed my membership at a higher price without warning.",
         "The invoice was wrong for the second month in a row."),
        ("It took three emails to get the money back.", "My bank flagged it as suspicious.",
         "Nobody could explain the charge."),
    ),
    "slow support": (
        ("Support was slow to answer.", "I waited days for a reply from support.",
         "Nobody from customer service called me back.", "I had to explain my problem three times to support.",
         "Support took a week to fix a simple issue.", "I waited 40 minutes on hold to reach support."),
        ("The chatbot just went round in circles.", "I was passed between three departments.",
         "Every reply was a copy-paste answer."),
    ),
    "high prices": (
        ("Prices went up too much.", "Too expensive compared to other shops.",
         "The membership is overpriced for what you get.", "Shipping fees make everything too expensive.",
         "Prices are higher than last year for the same things."),
        ("I can find the same things elsewhere for less.", "Not worth it any more."),
    ),
    "damaged item": (
        ("The item arrived damaged.", "Product quality is not what it used to be.", "It broke after a week.",
         "The box was crushed and the item inside was broken."),
        ("I had to send it back.", "The packaging was poor."),
    ),
}
POSITIVE_THEMES: dict[str, tuple[str, ...]] = {
    "helpful agent": ("The agent was really helpful.", "Support solved my problem in minutes.",
                      "Friendly, helpful agent on the phone.",
                      "Maria from support was brilliant and sorted it straight away.",
                      "Quick, helpful answer from the chat team.", "Customer service went above and beyond."),
    "great prices": ("Great prices.", "Good value for money.", "Cheaper than anywhere else I looked.",
                     "Great deals in the sale.", "Prices are fair and the member discount helps."),
    "easy checkout": ("Checkout was quick and easy.", "Easy to order, took two minutes.", "Very easy checkout.",
                      "Smooth checkout, my saved card worked first time.", "Ordering is simple and checkout is fast."),
    "fast delivery": ("Fast delivery.", "Arrived the next day, well packed.", "Delivery was quicker than expected.",
                      "Came a day early, great.", "Super fast shipping."),
    "quality": ("Great quality products.", "Everything works as described.", "Love the product range.",
                "Really happy with the quality."),
    "good app": ("The app is easy to use.", "Love the app, reordering takes seconds.",
                 "The app makes tracking orders easy."),
}
# How often each theme comes up before anything about the answer is known.
NEGATIVE_WEIGHT = {"late delivery": 3.0, "app crashes": 0.6, "billing": 1.5, "slow support": 1.5, "high prices": 2.0,
                   "damaged item": 1.0}
POSITIVE_WEIGHT = {"helpful agent": 1.0, "great prices": 3.0, "easy checkout": 2.0, "fast delivery": 2.0,
                   "quality": 2.0, "good app": 0.7}
NEUTRAL_LINES = ("It was ok.", "Fine overall.", "Nothing special.", "Average experience.", "Does the job.",
                 "Mostly fine.")
NEGATIVE_CLOSERS = ("Please fix this.", "Not impressed.", "Very disappointed.", "Thinking of cancelling.",
                    "Not good enough.", "Sort it out.")
POSITIVE_CLOSERS = ("Will order again.", "Thanks!", "Keep it up.", "Recommended to friends.", "Great job.")

# Ticket text per category: subjects, the sentence that opens the description (same index), and closers.
TICKET_TEXT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Delivery": (
        ("Where is my order?", "Order not delivered yet", "Parcel is late", "Tracking hasn't updated"),
        ("it still hasn't arrived.", "it was due three days ago and there is no sign of it.",
         "the parcel is late and I need it this week.", "the tracking has not moved for four days."),
    ),
    "Billing": (
        ("Charged twice", "Question about my invoice", "Refund not received", "Unexpected charge on my card"),
        ("I was charged twice for the same order. Please refund the duplicate payment.",
         "My last invoice shows a fee I don't recognise.",
         "I returned an item two weeks ago and the refund hasn't arrived.",
         "There is a charge on my card I didn't authorise."),
    ),
    "App": (
        ("App crashes at checkout", "App keeps freezing", "Can't log in to the app",
         "App crashes when I open my basket"),
        ("The app closes every time I tap Pay.", "The app freezes on the home screen after the update.",
         "The app says my password is wrong but it works on the website.",
         "As soon as I open my basket the app crashes."),
    ),
    "Returns": (
        ("How do I return an item?", "Return label not working", "Item arrived damaged",
         "Wrong size, want to exchange"),
        ("I'd like to return an item I bought last week.", "The return label link gives an error.",
         "The item arrived damaged and I'd like a replacement.", "The size is wrong, can I exchange it?"),
    ),
    "Account": (
        ("Cannot reset my password", "Change my email address", "Close my account", "Update delivery address"),
        ("The password reset email never arrives.", "I need to change the email address on my account.",
         "Please close my account and delete my data.", "I moved and need to update my delivery address."),
    ),
    "Product": (
        ("Question about sizes", "Is this item back in stock?", "Compatibility question", "Missing parts in the box"),
        ("Do your sizes run small?", "When will this item be back in stock?",
         "Will this work with the model I already have?", "The box was missing two parts."),
    ),
}
TICKET_CLOSERS = ("Thanks.", "Can someone help please?", "This is the second time I'm asking.",
                  "I'd appreciate a quick answer.", "Thank you in advance.", "")

DAY = 86_400
HOUR = 3_600
YEAR = 365.25 * DAY
MONTH = YEAR / 12


def generate(seed: int = 7, scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """The demo data set as canonical frames, keyed ``customers, orders, tickets, responses, events``.

    Columns are canonical field names of ``cx.store.TABLES`` plus the scale columns of
    ``cx.store.SCALE_COLUMNS`` (CSAT 1–5, CES 1–7); timestamps are naive UTC ``datetime64`` to the
    second, IDs are strings, amounts are USD. ``scale`` multiplies every volume (5,000 customers at
    1); the same ``seed`` and ``scale`` always give identical frames.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    rng = np.random.default_rng(seed)
    cust = _customers(rng, max(int(round(BASE_CUSTOMERS * scale)), 10))
    orders = _orders(rng, cust)
    tickets = _tickets(rng, cust, orders)
    nps = _nps_answers(rng, cust, tickets)
    _churn(rng, cust, nps)

    # Nothing happens after a customer has churned.
    eol = cust["eol"]
    kept = orders["t"] <= eol[orders["c"]]
    orders = _take(orders, kept)
    tickets = _take(tickets, tickets["t"] <= eol[tickets["c"]])
    # A ticket about an order comes after it, so that order was kept too: renumber the link.
    tickets["order"] = np.where(tickets["order"] >= 0, np.cumsum(kept)[np.maximum(tickets["order"], 0)] - 1, -1)
    nps = _take(nps, nps["t"] <= eol[nps["c"]])
    sessions, events = _journeys(rng, cust)

    responses = _concat([
        nps,
        _post_purchase_csat(rng, cust, orders),
        _support_ces(rng, cust, tickets),
        _website_feedback(rng, cust, sessions),
        _onboarding_csat(rng, cust, events),
    ])
    responses = _take(responses, (responses["t"] <= eol[responses["c"]]) & (responses["t"] <= _sec(END)))
    responses["comment"] = _comments(rng, responses)

    by_time = np.argsort(orders["t"], kind="stable")
    order_ids = np.empty(len(by_time), dtype=object)
    order_ids[by_time] = _ids("O", len(by_time), 6)
    return {
        "customers": _customers_frame(cust),
        "orders": _orders_frame(cust, orders, order_ids),
        "tickets": _tickets_frame(rng, cust, tickets, orders, order_ids),
        "responses": _responses_frame(cust, responses, order_ids),
        "events": _events_frame(cust, events),
    }


def load_demo(store: Store, seed: int = 7, scale: float = 1.0) -> list[ImportResult]:
    """Import ``generate(seed, scale)`` through the ordinary importer, one batch per table in the order
    customers, orders, tickets, responses, events; return the ``ImportResult`` of each, and record
    the seed and scale in the store's ``demo_loaded`` setting."""
    from cx.ingest import import_frame

    frames = generate(seed=seed, scale=scale)
    results = [import_frame(store, kind, frames[kind], file_name=f"Demo data: {kind}") for kind in KINDS]
    store.set_setting("demo_loaded", {"seed": seed, "scale": scale})
    return results


# -- small helpers ----------------------------------------------------------------------------------
def _sec(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000_000)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)


def _uniform(rng: np.random.Generator, lo, hi, n: int) -> np.ndarray:
    """Whole seconds uniformly between ``lo`` and ``hi`` (arrays or scalars)."""
    span = np.maximum(np.asarray(hi, dtype=np.int64) - np.asarray(lo, dtype=np.int64), 0)
    return np.asarray(lo, dtype=np.int64) + (rng.random(n) * span).astype(np.int64)


def _pick(rng: np.random.Generator, shares, n: int) -> np.ndarray:
    """Category codes drawn with the given shares."""
    cum = np.cumsum(shares)
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(shares) - 1)


def _pick_rows(rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """One category code per row of a (rows × categories) weight matrix."""
    cum = np.cumsum(shares, axis=1)
    u = rng.random(len(shares)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), shares.shape[1] - 1)


def _from(options, shares, rng: np.random.Generator, n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[_pick(rng, shares, n)]


def _any(options, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws, all options equally likely."""
    return np.asarray(options, dtype=object)[(rng.random(n) * len(options)).astype(np.int64)]


def _month(sec: np.ndarray) -> np.ndarray:
    return sec.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1


def _in_peak(sec: np.ndarray) -> np.ndarray:
    return np.isin(_month(sec), PEAK_MONTHS)


def _seasonal_keep(rng: np.random.Generator, sec: np.ndarray) -> np.ndarray:
    """Keep everything in the peak months and 1 in ``PEAK_FACTOR`` elsewhere."""
    return rng.random(len(sec)) < np.where(_in_peak(sec), 1.0, 1 / PEAK_FACTOR)


def _take(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in cols.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack the parts; a column a part lacks is −1 for scores and order links (none) and False for flags."""
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out = {}
    for k in keys:
        pieces = []
        for p in parts:
            n = len(next(iter(p.values())))
            if k in p:
                pieces.append(p[k])
            elif k in ("nps", "csat", "ces", "order"):
                pieces.append(np.full(n, -1, dtype=np.int64))
            else:
                pieces.append(np.zeros(n, dtype=bool))
        out[k] = np.concatenate(pieces)
    return out


def _timestamps(sec: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    ts = np.asarray(sec, dtype=np.int64).astype("datetime64[s]").astype("datetime64[ns]")
    if missing is not None:
        ts = np.where(missing, np.datetime64("NaT", "ns"), ts)
    return pd.Series(ts, dtype="datetime64[ns]")


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.Series:
    return pd.Series(pd.array(np.where(present, values, 0), dtype="Int64")).where(present, pd.NA)


# -- the story ----------------------------------------------------------------------------------------
def _customers(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    early = rng.random(n) < 0.2
    signup = np.where(early, _uniform(rng, _sec(EARLIEST_SIGNUP), _sec(START), n),
                      _uniform(rng, _sec(START), _sec(END) - 14 * DAY, n))
    signup.sort()  # customer numbers follow signup order
    seg = _pick(rng, SEGMENT_SHARES, n)
    region = _pick(rng, REGION_SHARES, n)
    plan = _pick_rows(rng, np.asarray(PLAN_SHARES)[seg])
    satisfaction = rng.normal(np.asarray(SEGMENT_SATISFACTION)[seg] + np.asarray(REGION_SATISFACTION)[region], 1.0)
    app_user = rng.random(n) < np.array([0.45, 0.3, 0.15])[seg]
    seats = np.where(seg == 0, 1, np.where(seg == 1, 2 + rng.poisson(6, n), 20 + rng.poisson(60, n)))
    mrr = np.round(np.asarray(PLAN_PRICE)[plan] * seats * rng.uniform(0.85, 1.0, n), 2)
    return {"id": _ids("C", n, 5), "signup": signup, "lo": np.maximum(signup, _sec(START)), "seg": seg,
            "region": region, "plan": plan, "satisfaction": satisfaction, "app_user": app_user, "mrr": mrr,
            "eol": np.full(n, _sec(END), dtype=np.int64)}


def _per_customer(rng: np.random.Generator, rate_per_year: np.ndarray, lo: np.ndarray,
                  hi) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson process per customer between ``lo`` and ``hi``: (customer index, time) of each event."""
    hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), lo.shape)
    years = np.maximum(hi - lo, 0) / YEAR
    counts = rng.poisson(rate_per_year * years)
    who = np.repeat(np.arange(len(lo)), counts)
    return who, _uniform(rng, lo[who], hi[who], len(who))


def _orders(rng: np.random.Generator, cust: dict) -> dict[str, np.ndarray]:
    seg, plan = cust["seg"], cust["plan"]
    rate = np.asarray(ORDER_RATE)[seg] * np.array([0.9, 1.0, 1.15])[plan] * np.exp(0.15 * cust["satisfaction"])
    c, t = _per_customer(rng, rate, cust["lo"], _sec(END))
    keep = _seasonal_keep(rng, t)
    c, t = c[keep], t[keep]
    n = len(c)
    app = cust["app_user"][c]
    channel = np.where(app, _from(["app", "web", "store"], [0.65, 0.3, 0.05], rng, n),
                       _from(["web", "app", "store"], [0.7, 0.1, 0.2], rng, n))
    product = _pick(rng, PRODUCT_SHARES, n)
    quantity = np.select([seg[c] == 0, seg[c] == 1], [1 + rng.poisson(0.5, n), 1 + rng.poisson(3, n)],
                         5 + rng.poisson(20, n))
    unit = rng.lognormal(np.log(np.asarray(PRODUCT_PRICE)[product]), 0.55)
    late = (channel != "store") & (rng.random(n) < np.where(_in_peak(t), 0.18, 0.07))
    refunded = rng.random(n) < np.where(late, 0.12, 0.025)
    return {"c": c, "t": t, "channel": channel, "product": product, "quantity": quantity,
            "amount": np.round(unit * quantity, 2), "late": late, "refunded": refunded}


def _tickets(rng: np.random.Generator, cust: dict, orders: dict) -> dict[str, np.ndarray]:
    # Late orders make "where is my order" tickets a few days after the order.
    asked = np.flatnonzero(orders["late"] & (rng.random(len(orders["c"])) < 0.45))
    d_c, d_t = orders["c"][asked], orders["t"][asked] + _uniform(rng, 3 * DAY, 9 * DAY, len(asked))
    o_c, o_t = _per_customer(rng, np.array([1.1, 1.7, 2.8])[cust["seg"]], cust["lo"], _sec(END))
    o_cat = 1 + _pick(rng, [0.25, 0.12, 0.25, 0.15, 0.23], len(o_c))  # every category but Delivery
    # App users meet the bad release and write in about it.
    app_lo = np.where(cust["app_user"], np.maximum(cust["lo"], _sec(APP_RELEASE)), _sec(END))
    a_c, a_t = _per_customer(rng, np.full(len(app_lo), 1.2), app_lo, _sec(END))
    c = np.concatenate([d_c, o_c, a_c])
    t = np.concatenate([d_t, o_t, a_t])
    cat = np.concatenate([np.zeros(len(d_c), int), o_cat, np.full(len(a_c), 2)])
    order = np.concatenate([asked, np.full(len(o_c) + len(a_c), -1)])
    keep = t <= _sec(END)
    c, t, cat, order = c[keep], t[keep], cat[keep], order[keep]
    n = len(c)

    seg, app = cust["seg"][c], cust["app_user"][c]
    channel = np.where(app, _pick(rng, [0.3, 0.1, 0.45, 0.15], n), _pick(rng, [0.4, 0.25, 0.2, 0.15], n))
    priority = np.where(seg == 2, _pick(rng, [0.1, 0.45, 0.35, 0.1], n), _pick(rng, [0.2, 0.57, 0.19, 0.04], n))
    peak = _in_peak(t)
    frt_h = (np.array([6.0, 0.05, 0.08, 10.0])[channel] * np.array([1.5, 1.0, 0.6, 0.3])[priority]
             * np.where(peak, 1.6, 1.0) * rng.lognormal(0, 0.9, n))
    # Hours from first response to solution; Billing (the team) takes twice as long.
    work_h = (np.array([20.0, 24.0, 40.0, 30.0, 4.0, 8.0])[cat] * np.where(cat == 1, 2.0, 1.0)
              * np.array([1.4, 1.0, 0.7, 0.5])[priority] * np.where(peak, 1.3, 1.0) * rng.lognormal(0, 1.0, n))
    reopen_p = 0.05 + 0.15 * (frt_h + work_h > SLOW_TICKET_HOURS)
    reopens = np.where(rng.random(n) < reopen_p, 1 + (rng.random(n) < 0.2), 0)
    solve_h = frt_h + work_h + reopens * rng.uniform(24, 96, n)
    first = t + (frt_h * HOUR).astype(np.int64)
    solved = t + (solve_h * HOUR).astype(np.int64)
    is_open = solved > _sec(END)
    replies = 1 + rng.poisson(np.minimum(solve_h / 24, 6)) + reopens
    mean = (4.6 - 0.9 * (solve_h > 24) - 1.3 * (solve_h > SLOW_TICKET_HOURS) - 0.4 * (frt_h > 8)
            + 0.35 * cust["satisfaction"][c])
    rated = ~is_open & (rng.random(n) < 0.4)
    csat = np.where(rated, np.clip(np.round(rng.normal(mean, 0.7)), 1, 5), -1).astype(np.int64)
    return {"c": c, "t": t, "cat": cat, "order": order, "channel": channel, "priority": priority,
            "first": first, "solved": solved, "first_missing": first > _sec(END), "open": is_open,
            "slow": solve_h > SLOW_TICKET_HOURS, "reopens": reopens, "replies": replies, "csat": csat}


def _nps_answers(rng: np.random.Generator, cust: dict, tickets: dict) -> dict[str, np.ndarray]:
    c, t = _per_customer(rng, np.full(len(cust["lo"]), 2.6), cust["lo"], _sec(END))
    keep = _seasonal_keep(rng, t)
    c, t = c[keep], t[keep]
    n = len(c)
    app = cust["app_user"][c]
    channel = np.where(app, _from(["app", "email", "web"], [0.55, 0.3, 0.15], rng, n),
                       _from(["email", "web", "app", "phone", "store"], [0.45, 0.3, 0.1, 0.05, 0.1], rng, n))
    bug = (channel == "app") & (t >= _sec(APP_RELEASE)) & (rng.random(n) < APP_BUG_SHARE)
    slow = _after_slow_ticket(c, t, tickets)
    likelihood = (8.4 + 1.1 * cust["satisfaction"][c] + rng.normal(0, 1.6, n) - APP_BUG_POINTS * bug
                  - SLOW_TICKET_NPS_POINTS * slow)
    score = np.clip(np.round(likelihood), 0, 10).astype(np.int64)
    new = t - cust["signup"][c] < 45 * DAY
    renewal = ~new & (rng.random(n) < 0.2)
    stage = np.where(new, "Onboarding", np.where(renewal, "Renewal", "Usage")).astype(object)
    usage_tp = np.select([channel == "app", channel == "web", channel == "phone", channel == "store"],
                         ["Mobile app", "Website", "Support call", "Store visit"],
                         _from(["Delivery", "Website", "Mobile app"], [0.5, 0.3, 0.2], rng, n)).astype(object)
    touchpoint = np.where(new, "Welcome email", np.where(renewal, "Billing", usage_tp)).astype(object)
    return {"c": c, "t": t, "survey": np.zeros(n, int), "channel": channel, "touchpoint": touchpoint,
            "stage": stage, "product": _pick(rng, PRODUCT_SHARES, n), "order": np.full(n, -1),
            "nps": score, "bug": bug, "slow": slow, "billing": renewal}


def _after_slow_ticket(c: np.ndarray, t: np.ndarray, tickets: dict) -> np.ndarray:
    """For each (customer, time): was the customer's last ticket solved in the 30 days before slow?"""
    done = ~tickets["open"]
    left = pd.DataFrame({"c": c, "t": t, "i": np.arange(len(c))}).sort_values("t", kind="stable")
    right = pd.DataFrame({"c": tickets["c"][done], "t": tickets["solved"][done],
                          "slow": tickets["slow"][done]}).sort_values("t", kind="stable")
    joined = pd.merge_asof(left, right, on="t", by="c", direction="backward", tolerance=30 * DAY)
    out = np.zeros(len(c), dtype=bool)
    out[joined["i"].to_numpy()] = joined["slow"].fillna(False).to_numpy(dtype=bool)
    return out


def _churn(rng: np.random.Generator, cust: dict, nps: dict) -> None:
    """Set ``cust["eol"]`` (churn time, or END) and ``cust["churned"]``.

    The monthly hazard starts 30 days after signup and is multiplied by ``DETRACTOR_CHURN_FACTOR``
    at each of a customer's first ``MAX_DETRACTOR_STEPS`` detractor answers. Each step adds an
    independent exponential clock for the extra hazard; churn is the first clock to ring."""
    hazard = np.asarray(CHURN_HAZARD)[cust["seg"]] * np.asarray(CHURN_PLAN)[cust["plan"]]
    at = cust["signup"] + 30 * DAY + (rng.exponential(1 / hazard) * MONTH).astype(np.int64)
    det = np.flatnonzero(nps["nps"] <= 6)
    det = det[np.lexsort((nps["t"][det], nps["c"][det]))]
    who, when = nps["c"][det], nps["t"][det]
    rank = np.arange(len(det)) - np.searchsorted(who, who, side="left")  # 0 for a customer's first
    for k in range(MAX_DETRACTOR_STEPS):
        step = rank == k
        extra = hazard[who[step]] * (DETRACTOR_CHURN_FACTOR ** (k + 1) - DETRACTOR_CHURN_FACTOR ** k)
        ring = when[step] + (rng.exponential(1 / extra) * MONTH).astype(np.int64)
        np.minimum.at(at, who[step], ring)
    cust["churned"] = at <= _sec(END)
    cust["eol"] = np.where(cust["churned"], at, _sec(END))


def _post_purchase_csat(rng: np.random.Generator, cust: dict, orders: dict) -> dict[str, np.ndarray]:
    i = np.flatnonzero(rng.random(len(orders["c"])) < 0.22)
    n = len(i)
    c, channel = orders["c"][i], orders["channel"][i]
    t = orders["t"][i] + _uniform(rng, DAY, 7 * DAY, n)
    store = channel == "store"
    about_delivery = ~store & (rng.random(n) < 0.5)
    touchpoint = np.where(store, "Store visit", np.where(about_delivery, "Delivery", "Checkout")).astype(object)
    late = orders["late"][i]
    bug = (channel == "app") & (t >= _sec(APP_RELEASE)) & (rng.random(n) < APP_BUG_SHARE)
    mean = 4.3 + 0.5 * cust["satisfaction"][c] - 1.8 * late - 1.2 * bug
    csat = np.clip(np.round(rng.normal(mean, 0.8)), 1, 5).astype(np.int64)
    return {"c": c, "t": t, "survey": np.ones(n, int), "channel": channel, "touchpoint": touchpoint,
            "stage": np.full(n, "Purchase", dtype=object), "product": orders["product"][i], "order": i,
            "csat": csat, "late": late, "bug": bug}


def _support_ces(rng: np.random.Generator, cust: dict, tickets: dict) -> dict[str, np.ndarray]:
    i = np.flatnonzero(~tickets["open"] & (rng.random(len(tickets["c"])) < 0.35))
    n = len(i)
    c = tickets["c"][i]
    t = tickets["solved"][i] + _uniform(rng, HOUR // 2, 48 * HOUR, n)
    channel = TICKET_CHANNELS[tickets["channel"][i]]
    touchpoint = SUPPORT_TOUCHPOINTS[tickets["channel"][i]]
    slow = tickets["slow"][i]
    mean = (5.7 - 1.6 * slow - 0.8 * (tickets["reopens"][i] > 0) - 0.3 * (tickets["replies"][i] > 4)
            + 0.35 * cust["satisfaction"][c])
    ces = np.clip(np.round(rng.normal(mean, 1.0)), 1, 7).astype(np.int64)
    return {"c": c, "t": t, "survey": np.full(n, 2), "channel": channel, "touchpoint": touchpoint,
            "stage": np.full(n, "Support", dtype=object), "product": _pick(rng, PRODUCT_SHARES, n),
            "order": np.full(n, -1), "ces": ces, "slow": slow, "support": np.ones(n, bool),
            "late": tickets["cat"][i] == 0, "billing": tickets["cat"][i] == 1, "bug": tickets["cat"][i] == 2}


def _journeys(rng: np.random.Generator, cust: dict) -> tuple[dict, dict]:
    """Browsing sessions through the purchase funnel, and their events."""
    c, t = _per_customer(rng, np.array([11.0, 7.0, 4.0])[cust["seg"]], cust["lo"], cust["eol"])
    keep = _seasonal_keep(rng, t)
    by_time = np.argsort(t[keep], kind="stable")  # session numbers follow time
    c, t = c[keep][by_time], t[keep][by_time]
    n = len(c)
    app = np.where(cust["app_user"][c], rng.random(n) < 0.7, rng.random(n) < 0.15)
    after = t >= _sec(APP_RELEASE)
    depth = np.ones(n, dtype=np.int64)
    going = np.ones(n, dtype=bool)
    for k, p in enumerate(FUNNEL_CONTINUE):
        p_k = np.where(app & after, APP_CHECKOUT_AFTER_RELEASE, p) if k == 3 else p
        going &= rng.random(n) < p_k
        depth += going
    # A new customer's first session that ends in an order may go on to finish onboarding.
    order_sessions = np.flatnonzero((depth == 5) & (cust["signup"][c] >= _sec(START)))
    by_time = order_sessions[np.lexsort((t[order_sessions], c[order_sessions]))]
    _, first_idx = np.unique(c[by_time], return_index=True)
    first = by_time[first_idx]
    depth[first[rng.random(len(first)) < 0.75]] = 6
    sessions = {"c": c, "t": t, "app": app, "depth": depth}

    s = np.repeat(np.arange(n), depth)
    step = np.arange(len(s)) - np.repeat(np.cumsum(depth) - depth, depth)
    m = len(s)
    gap = np.select(
        [step == 0, step == 1, step == 2, step == 3, step == 4],
        [np.zeros(m), rng.lognormal(np.log(90), 0.8, m), rng.lognormal(np.log(180), 0.9, m),
         # Some carts wait hours or days before checkout.
         np.where(rng.random(m) < 0.15, rng.uniform(2 * HOUR, 72 * HOUR, m), rng.lognormal(np.log(240), 0.8, m)),
         rng.lognormal(np.log(150), 0.7, m)],
        rng.uniform(DAY, 10 * DAY, m),
    )
    offset = np.cumsum(gap.astype(np.int64) + (step > 0))
    offset -= np.repeat(offset[np.cumsum(depth) - depth], depth)
    occurred = t[s] + offset
    on_app = app[s]
    touchpoint = np.select([step >= 5, step >= 3, on_app], ["Welcome email", "Checkout", "Mobile app"], "Website")
    ok = occurred <= np.minimum(cust["eol"][c[s]], _sec(END))
    events = _take({"c": c[s], "t": occurred, "step": step, "app": on_app, "touchpoint": touchpoint.astype(object),
                    "session": s}, ok)
    return sessions, events


def _website_feedback(rng: np.random.Generator, cust: dict, sessions: dict) -> dict[str, np.ndarray]:
    i = np.flatnonzero(rng.random(len(sessions["c"])) < 0.04)
    n = len(i)
    c, app = sessions["c"][i], sessions["app"][i]
    t = sessions["t"][i] + _uniform(rng, 2 * 60, 20 * 60, n)
    bug = app & (t >= _sec(APP_RELEASE)) & (rng.random(n) < APP_BUG_SHARE)
    ces = np.clip(np.round(rng.normal(5.3 + 0.3 * cust["satisfaction"][c] - 2.0 * bug, 1.2)), 1, 7).astype(np.int64)
    return {"c": c, "t": t, "survey": np.full(n, 3), "channel": np.where(app, "app", "web").astype(object),
            "touchpoint": np.where(app, "Mobile app", "Website").astype(object),
            "stage": np.where(sessions["depth"][i] == 1, "Awareness", "Consideration").astype(object),
            "product": _pick(rng, PRODUCT_SHARES, n), "order": np.full(n, -1), "ces": ces, "bug": bug}


def _onboarding_csat(rng: np.random.Generator, cust: dict, events: dict) -> dict[str, np.ndarray]:
    i = np.flatnonzero((events["step"] == 5) & (rng.random(len(events["c"])) < 0.4))
    n = len(i)
    c = events["c"][i]
    csat = np.clip(np.round(rng.normal(4.2 + 0.5 * cust["satisfaction"][c], 0.8)), 1, 5).astype(np.int64)
    return {"c": c, "t": events["t"][i] + _uniform(rng, HOUR, 3 * DAY, n), "survey": np.full(n, 4),
            "channel": np.full(n, "email", dtype=object), "touchpoint": np.full(n, "Welcome email", dtype=object),
            "stage": np.full(n, "Onboarding", dtype=object), "product": _pick(rng, PRODUCT_SHARES, n),
            "order": np.full(n, -1), "csat": csat}


# -- comments -----------------------------------------------------------------------------------------
def _flatten(groups: list[tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All phrases in one array, with each group's offset and size."""
    sizes = np.array([len(g) for g in groups])
    return np.array([p for g in groups for p in g], dtype=object), np.cumsum(sizes) - sizes, sizes


def _draw(rng: np.random.Generator, flat: tuple, group: np.ndarray) -> np.ndarray:
    phrases, offset, size = flat
    return phrases[offset[group] + (rng.random(len(group)) * size[group]).astype(np.int64)]


def _lower_first(s: str) -> str:
    return s if s.startswith(("I ", "I'", "Maria")) else s[0].lower() + s[1:]


_CLASHES = {"fast delivery": ("late delivery", "great prices"), "good app": ("app crashes", "great prices"),
            "great prices": ("high prices", "quality"), "quality": ("damaged item", "easy checkout"),
            "helpful agent": ("slow support", "quality")}
_NEG_KEYS = list(NEGATIVE_THEMES)
_POS_KEYS = list(POSITIVE_THEMES)
_NEG_MAIN = _flatten([NEGATIVE_THEMES[k][0] for k in _NEG_KEYS])
_NEG_MAIN_LOWER = (np.array([_lower_first(p) for p in _NEG_MAIN[0]], dtype=object), _NEG_MAIN[1], _NEG_MAIN[2])
_NEG_DETAIL = _flatten([NEGATIVE_THEMES[k][1] for k in _NEG_KEYS])
_POS_MAIN = _flatten([POSITIVE_THEMES[k] for k in _POS_KEYS])
_POS_MAIN_LOWER = (np.array([_lower_first(p) for p in _POS_MAIN[0]], dtype=object), _POS_MAIN[1], _POS_MAIN[2])
# Praise that contradicts a complaint (fast vs late delivery, …), and the praise to use instead.
_POS_CLASH = np.array([-1 if k not in _CLASHES else _NEG_KEYS.index(_CLASHES[k][0]) for k in _POS_KEYS])
_POS_INSTEAD = np.array([_POS_KEYS.index(_CLASHES[k][1]) if k in _CLASHES else i for i, k in enumerate(_POS_KEYS)])
_POS_STEM = (np.array([p.rstrip(".!") for p in _POS_MAIN[0]], dtype=object), _POS_MAIN[1], _POS_MAIN[2])


def _theme_weights(n: int, keys: list[str], base: dict[str, float], boosts: dict[str, np.ndarray]) -> np.ndarray:
    weights = np.tile(np.array([base[k] for k in keys]), (n, 1))
    for key, boost in boosts.items():
        weights[:, keys.index(key)] *= boost
    return weights


def _comments(rng: np.random.Generator, r: dict) -> np.ndarray:
    """A comment for about half of the responses (None for the rest): negative themes for low scores,
    following their cause; positive themes for high scores; a mixed remark for the middle."""
    n = len(r["c"])
    nps, csat, ces = r["nps"], r["csat"], r["ces"]
    tone = np.select([nps >= 0, csat >= 0], [np.select([nps <= 6, nps <= 8], [0, 1], 2),
                                              np.select([csat <= 2, csat == 3], [0, 1], 2)],
                     np.select([ces <= 3, ces <= 5], [0, 1], 2))  # 0 unhappy, 1 middling, 2 happy
    has = rng.random(n) < np.array([0.75, 0.35, 0.52])[tone] * np.where(r["survey"] == 3, 0.6, 1.0)

    # Themes are drawn with base weights, boosted by what this customer went through.
    tp = r["touchpoint"]
    billing = r["billing"] | (tp == "Billing")
    neg_w = _theme_weights(n, _NEG_KEYS, NEGATIVE_WEIGHT, {
        "late delivery": np.where(r["late"], 12, np.where(tp == "Delivery", 3, 1)),
        "app crashes": np.where(r["bug"], 60, 1),
        "billing": np.where(billing, 10, 1),
        "slow support": np.where(r["slow"], 12, np.where(r["support"], 3, 1)),
        "high prices": np.where(billing, 3, 1),
    })
    pos_w = _theme_weights(n, _POS_KEYS, POSITIVE_WEIGHT, {
        "helpful agent": np.where(r["support"], 40, 1),
        "easy checkout": np.where(np.isin(tp, ["Checkout", "Website", "Mobile app"]), 4, 1),
        "fast delivery": np.where(tp == "Delivery", 4, 1),
        "good app": np.where((r["channel"] == "app") & (r["t"] < _sec(APP_RELEASE)), 4, 1),
    })
    neg = _pick_rows(rng, neg_w)
    pos = _pick_rows(rng, pos_w)

    neg_text = _draw(rng, _NEG_MAIN, neg)
    add = rng.random(n) < 0.4
    neg_text = np.where(add, neg_text + " " + _draw(rng, _NEG_DETAIL, neg), neg_text)
    other = (neg + 1 + (rng.random(n) * (len(_NEG_KEYS) - 1)).astype(np.int64)) % len(_NEG_KEYS)
    add = rng.random(n) < 0.2
    neg_text = np.where(add, neg_text + " Also, " + _draw(rng, _NEG_MAIN_LOWER, other), neg_text)
    add = rng.random(n) < 0.45
    neg_text = np.where(add, neg_text + " " + _any(NEGATIVE_CLOSERS, rng, n), neg_text)

    pos_text = _draw(rng, _POS_MAIN, pos)
    other = (pos + 1 + (rng.random(n) * (len(_POS_KEYS) - 1)).astype(np.int64)) % len(_POS_KEYS)
    add = rng.random(n) < 0.3
    pos_text = np.where(add, _draw(rng, _POS_STEM, pos) + ", and " + _draw(rng, _POS_MAIN_LOWER, other), pos_text)
    add = rng.random(n) < 0.45
    pos_text = np.where(add, pos_text + " " + _any(POSITIVE_CLOSERS, rng, n), pos_text)

    # The middle of the scale: a plain remark, or praise with a "but" (never praise of the very thing
    # the customer complains about).
    clash = _POS_CLASH[pos] == neg
    praise = np.where(clash, _POS_INSTEAD[pos], pos)
    mixed = _draw(rng, _POS_STEM, praise) + ", but " + _draw(rng, _NEG_MAIN_LOWER, neg)
    plain = _any(NEUTRAL_LINES, rng, n)
    mid_text = np.where(rng.random(n) < 0.6, mixed, plain)

    text = np.select([tone == 0, tone == 1], [neg_text, mid_text], pos_text).astype(object)
    return np.where(has, text, None)


# -- frames ---------------------------------------------------------------------------------------------
def _customers_frame(cust: dict) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": cust["id"],
        "signup_at": _timestamps(cust["signup"]),
        "churned_at": _timestamps(cust["eol"], missing=~cust["churned"]),
        "plan": PLANS[cust["plan"]],
        "segment": SEGMENTS[cust["seg"]],
        "region": REGIONS[cust["region"]],
        "mrr": cust["mrr"],
    })


def _orders_frame(cust: dict, orders: dict, order_ids: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({
        "order_id": order_ids,
        "customer_id": cust["id"][orders["c"]],
        "ordered_at": _timestamps(orders["t"]),
        "amount": orders["amount"],
        "quantity": orders["quantity"].astype(np.int64),
        "currency": "USD",
        "status": np.where(orders["refunded"], "refunded", "completed").astype(object),
        "channel": orders["channel"],
        "product": PRODUCTS[orders["product"]],
    })
    return frame.sort_values("order_id", kind="stable").reset_index(drop=True)


def _tickets_frame(rng: np.random.Generator, cust: dict, tk: dict, orders: dict, order_ids: np.ndarray) -> pd.DataFrame:
    n = len(tk["c"])
    cat = tk["cat"]
    subjects = _flatten([TICKET_TEXT[k][0] for k in TICKET_CATEGORIES])
    openers = _flatten([TICKET_TEXT[k][1] for k in TICKET_CATEGORIES])
    pick = (rng.random(n) * subjects[2][cat]).astype(np.int64) + subjects[1][cat]
    opening = openers[0][pick]
    linked = np.flatnonzero(tk["order"] >= 0)
    o = tk["order"][linked]
    day = np.datetime_as_string(orders["t"][o].astype("datetime64[s]"), unit="D").astype(object)
    opening[linked] = "I ordered " + order_ids[o] + " on " + day + " and " + opening[linked]
    closer = _any(TICKET_CLOSERS, rng, n)
    description = np.where(closer == "", opening, opening + " " + closer)
    rated = tk["csat"] >= 0
    frame = pd.DataFrame({
        "created_at": _timestamps(tk["t"]),
        "customer_id": cust["id"][tk["c"]],
        "first_response_at": _timestamps(tk["first"], missing=tk["first_missing"]),
        "resolved_at": _timestamps(tk["solved"], missing=tk["open"]),
        "status": np.where(tk["open"], "open", "solved").astype(object),
        "channel": TICKET_CHANNELS[tk["channel"]],
        "priority": PRIORITIES[tk["priority"]],
        "team": TICKET_TEAMS[cat],
        "category": TICKET_CATEGORIES[cat],
        "reopens": tk["reopens"].astype(np.int64),
        "agent_replies": np.where(tk["first_missing"], 0, tk["replies"]).astype(np.int64),
        "csat": _nullable(tk["csat"], rated),
        "csat_min": _nullable(np.ones(n, np.int64), rated),
        "csat_max": _nullable(np.full(n, 5, np.int64), rated),
        "subject": subjects[0][pick],
        "description": description.astype(object),
    })
    frame = frame.sort_values(["created_at", "customer_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "ticket_id", _ids("T", len(frame), 6))
    return frame


def _order_refs(index: np.ndarray, order_ids: np.ndarray) -> np.ndarray:
    out = np.full(len(index), None, dtype=object)
    linked = index >= 0
    out[linked] = order_ids[index[linked]]
    return out


def _responses_frame(cust: dict, r: dict, order_ids: np.ndarray) -> pd.DataFrame:
    c = r["c"]
    has_nps, has_csat, has_ces = r["nps"] >= 0, r["csat"] >= 0, r["ces"] >= 0
    frame = pd.DataFrame({
        "submitted_at": _timestamps(r["t"]),
        "customer_id": cust["id"][c],
        "order_id": pd.Series(_order_refs(r["order"], order_ids), dtype=object),
        "nps": _nullable(r["nps"], has_nps),
        "csat": _nullable(r["csat"], has_csat),
        "ces": _nullable(r["ces"], has_ces),
        "comment": pd.Series(r["comment"], dtype=object),
        "survey": SURVEYS[r["survey"]],
        "channel": r["channel"],
        "touchpoint": r["touchpoint"],
        "journey_stage": r["stage"],
        "segment": SEGMENTS[cust["seg"][c]],
        "region": REGIONS[cust["region"][c]],
        "product": PRODUCTS[r["product"]],
        "language": "en",
        "csat_min": _nullable(np.ones(len(c), np.int64), has_csat),
        "csat_max": _nullable(np.full(len(c), 5, np.int64), has_csat),
        "ces_min": _nullable(np.ones(len(c), np.int64), has_ces),
        "ces_max": _nullable(np.full(len(c), 7, np.int64), has_ces),
    })
    frame = frame.sort_values(["submitted_at", "customer_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "response_id", _ids("R", len(frame), 6))
    return frame


def _events_frame(cust: dict, ev: dict) -> pd.DataFrame:
    frame = pd.DataFrame({
        "customer_id": cust["id"][ev["c"]],
        "occurred_at": _timestamps(ev["t"]),
        "step": FUNNEL[ev["step"]],
        "channel": np.where(ev["app"], "app", "web").astype(object),
        "touchpoint": ev["touchpoint"],
        "session_id": _ids("S", int(ev["session"].max()) + 1 if len(ev["session"]) else 0, 7)[ev["session"]],
    })
    frame = frame.drop_duplicates(["customer_id", "occurred_at", "step"])
    return frame.sort_values(["occurred_at", "customer_id"], kind="stable").reset_index(drop=True)
