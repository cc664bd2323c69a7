"""CLV: the BG/NBD and Gamma-Gamma likelihoods against hand computations, the RFM summary on hand-written
orders, the published CDNOW estimates (Fader, Hardie & Lee 2005; Fader & Hardie note 025), the
voice-to-value list and the command line."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cx import clv, ingest
from cx.__main__ import main

T = pd.Timestamp
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CDNOW = DATASETS / "cdnow"


def test_bgnbd_log_likelihood_of_three_customers_by_hand():
    r, alpha, a, b = 0.5, 2.0, 0.8, 2.5
    # FHL (2005) eq. 4: L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
    #                     + [x > 0] B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
    # c1: no repeat purchase, T = 10: L = (α/(α+T))^r = (2/12)^0.5
    l1 = (2 / 12) ** 0.5
    # c2: x = 1, t_x = 4, T = 10. B(a, b+1)/B(a, b) = b/(a+b); B(a+1, b)/B(a, b) = a/(a+b); Γ(1.5)/Γ(0.5) = 0.5
    l2 = (2.5 / 3.3) * 0.5 * math.sqrt(2) / 12 ** 1.5 + (0.8 / 3.3) * 0.5 * math.sqrt(2) / 6 ** 1.5
    # c3: x = 3, t_x = 8, T = 10. B(a, b+3)/B(a, b) = b(b+1)(b+2)/((a+b)(a+b+1)(a+b+2));
    # B(a+1, b+2)/B(a, b) = a·b(b+1)/(same); Γ(3.5)/Γ(0.5) = 2.5 · 1.5 · 0.5 = 1.875
    den = 3.3 * 4.3 * 5.3
    l3 = ((2.5 * 3.5 * 4.5 / den) * 1.875 * math.sqrt(2) / 12 ** 3.5
          + (0.8 * 2.5 * 3.5 / den) * 1.875 * math.sqrt(2) / 10 ** 3.5)
    expected = math.log(l1) + math.log(l2) + math.log(l3)
    assert math.log(l2) == pytest.approx(-3.70703, abs=1e-5)  # 0.012887 + 0.011664
    got = clv.bgnbd_log_likelihood((r, alpha, a, b), [0, 1, 3], [0, 4, 8], [10, 10, 10])
    assert got == pytest.approx(expected, rel=1e-12)
    # Weights stand for repeated identical customers.
    assert clv.bgnbd_log_likelihood((r, alpha, a, b), [1], [4], [10], weights=[3]) == pytest.approx(3 * math.log(l2))


def test_gamma_gamma_log_likelihood_by_hand():
    # x = 2 repeat purchases of mean 20, p = 6, q = 4, γ = 15:
    # ln f = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ + x m)
    #      = ln(15·14·13·12) − ln 6 + 4 ln 15 + 11 ln 20 + 12 ln 2 − 16 ln 55
    expected = (math.log(15 * 14 * 13 * 12) - math.log(6) + 4 * math.log(15) + 11 * math.log(20) + 12 * math.log(2)
                - 16 * math.log(55))
    assert clv.gamma_gamma_log_likelihood((6, 4, 15), [2], [20]) == pytest.approx(expected, rel=1e-12)
    gg = clv.GammaGamma(6, 4, 15, 0.0, 1, math.nan)
    # E[M | x = 2, m = 20] = p (γ + x m) / (p x + q − 1) = 6 · 55 / 15 = 22; with no repeats p γ / (q − 1) = 30.
    assert gg.expected_spend([2, 0], [20, 0]).tolist() == pytest.approx([22.0, 30.0])


def test_bgnbd_predictions_obey_their_identities():
    bg = clv.BetaGeo(0.243, 4.414, 0.793, 2.426, 0.0, 1, "week")
    # Nobody who never came back can be known to have left: P(alive) = 1 at x = 0.
    assert bg.p_alive([0, 0], [0, 0], [5, 30]).tolist() == [1.0, 1.0]
    # A brand-new customer (x = 0, T = 0) is expected to buy what the unconditional formula says.
    assert bg.expected_purchases(52, 0, 0, 0) == pytest.approx(float(bg.expected_purchases_new(52)), rel=1e-10)
    # Two customers with 4 repeats: the one who bought recently is more likely alive and buys more.
    p = bg.p_alive([4, 4], [30, 5], [38, 38])
    assert p[0] > p[1] and 0 < p[1] < 1
    # Without discounting, value over 12 months = expected purchases in 12 months × spend.
    v = clv.discounted_value(bg, [4], [30], [38], [25.0], horizon_months=12, discount=0.0)
    assert v[0] == pytest.approx(25.0 * bg.expected_purchases(12 * 30.4375 / 7, 4, 30, 38), rel=1e-10)
    assert clv.discounted_value(bg, [4], [30], [38], [25.0], horizon_months=12, discount=0.01)[0] < v[0]


def test_horizons_are_read_in_months():
    assert clv.parse_horizon("12m") == 12 and clv.parse_horizon("1y") == 12 and clv.parse_horizon("6") == 6
    assert clv.parse_horizon("26w") == pytest.approx(26 * 7 / 30.4375)
    with pytest.raises(clv.TouchpointError, match="not a horizon"):
        clv.parse_horizon("soon")


# Orders for the RFM summary (calibration ends 31 Jan 2024, holdout to 29 Feb, unit = day):
# a buys 1 Jan (10) and twice on 11 Jan (5 + 15: one transaction of 20), then 21 Jan (40), and 5 Feb (7)
#   → x = 2, t_x = 20, T = 30, mean repeat spend (20 + 40)/2 = 30, revenue 70, holdout 1 purchase of 7;
# b buys 16 Jan only and a refunded order on 20 Jan → x = 0, t_x = 0, T = 15;
# c first buys on 10 Feb → not in the calibration population.
ORDERS = [("o1", "a", "2024-01-01", 10.0, None), ("o2", "a", "2024-01-11 09:00", 5.0, None),
          ("o3", "a", "2024-01-11 17:00", 15.0, None), ("o4", "a", "2024-01-21", 40.0, None),
          ("o5", "a", "2024-02-05", 7.0, None), ("o6", "b", "2024-01-16", 12.0, None),
          ("o7", "b", "2024-01-20", 99.0, "refunded"), ("o8", "c", "2024-02-10", 3.0, None)]


def _orders(store, rows):
    ingest.import_frame(store, "orders", pd.DataFrame({
        "order_id": [r[0] for r in rows], "customer_id": [r[1] for r in rows], "ordered_at": [T(r[2]) for r in rows],
        "amount": [r[3] for r in rows], "status": [r[4] for r in rows]}), file_name="orders")


def test_rfm_summary_merges_same_day_orders_and_splits_the_holdout(store):
    _orders(store, ORDERS)
    rfm = clv.rfm_summary(store, unit="day", calibration_end=date(2024, 1, 31),
                          observation_end=date(2024, 2, 29)).set_index("customer_id")
    assert list(rfm.index) == ["a", "b"]
    assert rfm.loc["a", ["frequency", "recency", "T", "monetary_value", "revenue", "orders"]].tolist() == [
        2, 20.0, 30.0, 30.0, 70.0, 4]
    assert rfm.loc["a", ["frequency_holdout", "revenue_holdout"]].tolist() == [1, 7.0]
    assert rfm.loc["b", ["frequency", "recency", "T", "revenue"]].tolist() == [0, 0.0, 15.0, 12.0]
    assert math.isnan(rfm.loc["b", "monetary_value"])
    weeks = clv.rfm_summary(store, unit="week", calibration_end=date(2024, 1, 31)).set_index("customer_id")
    assert weeks.loc["a", "T"] == pytest.approx(30 / 7)


def test_too_few_customers_is_a_plain_error(store):
    with pytest.raises(clv.NotEnoughOrders, match="Import orders"):
        clv.predict_clv(store)
    _orders(store, ORDERS)
    with pytest.raises(clv.NotEnoughOrders, match="at least 10 customers"):
        clv.predict_clv(store)


def _cdnow_sample(store):
    """CDNOW_sample.txt imported the way a user would (the CLI's --map options, see the README)."""
    return ingest.import_file(store, CDNOW / "CDNOW_sample.txt", kind="orders", column_map={
        "column1": "customer_id", "column2": "ignore", "column3": "ordered_at", "column4": "quantity",
        "column5": "amount"})


PUBLISHED_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.mark.datasets
@pytest.mark.skipif(not CDNOW.is_dir(), reason="CDNOW files not found")
def test_published_cdnow_estimates_from_the_customer_summary():
    d = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    bg = clv.fit_bgnbd(d["x"], d["t_x"], d["T"], unit="week")
    for k, v in PUBLISHED_BG.items():
        assert getattr(bg, k) == pytest.approx(v, rel=0.01), k
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    gg = clv.fit_gamma_gamma(d["x"], d["zbar"])
    assert gg.n == 946
    for k, v in PUBLISHED_GG.items():
        assert getattr(gg, k) == pytest.approx(v, rel=0.01), k


@pytest.mark.datasets
@pytest.mark.skipif(not CDNOW.is_dir(), reason="CDNOW files not found")
def test_customers_sharing_a_history_are_fitted_as_one_weighted_term():
    """The fit evaluates each distinct (x, t_x, T) once, weighted by its customers: the likelihood it
    reports is the sum over every customer, and the CDNOW customers listed twice fit as with weight 2."""
    d = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    assert len(d.drop_duplicates(["x", "t_x", "T"])) < len(d)  # some customers do share a history
    bg = clv.fit_bgnbd(d["x"], d["t_x"], d["T"], unit="week")
    every = clv.bgnbd_log_likelihood((bg.r, bg.alpha, bg.a, bg.b), d["x"], d["t_x"], d["T"])
    assert bg.log_likelihood == pytest.approx(every, rel=1e-12)
    twice = pd.concat([d, d])
    doubled = clv.fit_bgnbd(twice["x"], twice["t_x"], twice["T"], unit="week")
    weighted = clv.fit_bgnbd(d["x"], d["t_x"], d["T"], unit="week", weights=np.full(len(d), 2.0))
    assert doubled.log_likelihood == pytest.approx(2 * bg.log_likelihood, rel=1e-9)
    assert doubled.log_likelihood == pytest.approx(weighted.log_likelihood, rel=1e-12)
    assert doubled.n == weighted.n == 2 * len(d)
    for k in ("r", "alpha", "a", "b"):
        assert getattr(doubled, k) == pytest.approx(getattr(bg, k), rel=1e-4), k


def test_the_spend_fit_maximises_the_reference_likelihood_with_and_without_weights():
    """The fit evaluates the Gamma-Gamma likelihood from precomputed sums: it reports the reference
    likelihood of every customer at its estimates, and weights count as repeated customers (they were
    ignored, and misaligned with the customers kept, before)."""
    rng = np.random.default_rng(3)
    x = rng.integers(1, 8, 400).astype(float)
    m = rng.gamma(6.0, 1 / (rng.gamma(4.0, 1 / 15.0, 400)))  # spend per customer with a Gamma-Gamma shape
    x[:5], m[5:8] = 0, np.nan  # not repeat buyers or without amounts: left out
    gg = clv.fit_gamma_gamma(x, m)
    keep = (x > 0) & np.isfinite(m)
    assert gg.n == 392
    assert gg.log_likelihood == pytest.approx(clv.gamma_gamma_log_likelihood((gg.p, gg.q, gg.gamma), x[keep],
                                                                               m[keep]), rel=1e-12)
    for params in ((6.25, 3.74, 15.44), (0.5, 9.0, 2.0)):
        fast = clv._gamma_gamma_terms(x[keep], m[keep], np.ones(int(keep.sum())))
        assert fast(params) == pytest.approx(clv.gamma_gamma_log_likelihood(params, x[keep], m[keep]), rel=1e-12)
    w = rng.integers(1, 4, 400).astype(float)
    weighted = clv.fit_gamma_gamma(x, m, weights=w)
    written_out = clv.fit_gamma_gamma(np.repeat(x, w.astype(int)), np.repeat(m, w.astype(int)))
    assert weighted.log_likelihood == pytest.approx(written_out.log_likelihood, rel=1e-9)
    assert weighted.n == written_out.n == int(w[keep].sum())
    assert weighted.frequency_spend_corr == pytest.approx(written_out.frequency_spend_corr, rel=1e-12)
    assert gg.frequency_spend_corr == pytest.approx(np.corrcoef(x[keep], m[keep])[0, 1], rel=1e-12)
    # Two buyers counted three times each are six: enough for the spend model, as the six written out are.
    two = clv.fit_gamma_gamma(x[keep][:2], m[keep][:2], weights=[3, 3])
    assert two.n == 6
    with pytest.raises(clv.NotEnoughOrders, match="found 4"):
        clv.fit_gamma_gamma(x[keep][:2], m[keep][:2], weights=[2, 2])
    for k in ("p", "q", "gamma"):
        assert getattr(weighted, k) == pytest.approx(getattr(written_out, k), rel=1e-4), k


@pytest.mark.datasets
@pytest.mark.skipif(not CDNOW.is_dir(), reason="CDNOW files not found")
def test_published_cdnow_estimates_from_the_raw_transactions(store):
    result = _cdnow_sample(store)
    assert (result.rows_read, result.added, result.rejected) == (6919, 6919, 0)
    cal_end = date(1997, 9, 30)  # 39 weeks after 1 January 1997
    rfm = clv.rfm_summary(store, unit="week", calibration_end=cal_end)
    assert len(rfm) == 2357 and int((rfm["frequency"] > 0).sum()) == 946
    # The same x and t_x as the published summary, customer by customer (column 2 of the file is its ID).
    raw = pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None, dtype=str)
    ids = dict(zip(raw[0], raw[1].astype(int)))
    ref = pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv").set_index("ID")
    joined = rfm.assign(ID=rfm["customer_id"].map(ids)).set_index("ID").join(ref, suffixes=("", "_ref"))
    assert (joined["frequency"] == joined["x"]).all()
    assert np.abs(joined["recency"] - joined["t_x"]).max() < 0.005  # the summary rounds to 2 decimals
    fit = clv.predict_clv(store, unit="week", as_of=cal_end)
    for k, v in PUBLISHED_BG.items():
        assert getattr(fit.bgnbd, k) == pytest.approx(v, rel=0.01), k
    assert fit.bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    for k, v in PUBLISHED_GG.items():
        assert getattr(fit.gamma_gamma, k) == pytest.approx(v, rel=0.01), k
    # The spend model assumes spend does not depend on frequency: here they correlate weakly (0.11).
    assert fit.gamma_gamma.frequency_spend_corr == pytest.approx(0.114, abs=0.001)
    holdout = clv.holdout_check(store, calibration_end=cal_end, unit="week")
    assert holdout.holdout_end == date(1998, 6, 30)
    assert holdout.actual_total == 1882  # repeat purchase days in weeks 40–78
    assert holdout.predicted_total == pytest.approx(1653.4, abs=0.5)
    zero = holdout.by_frequency.set_index("repeat_purchases_in_calibration").loc["0"]
    assert (zero["customers"], round(zero["actual"], 3), round(zero["predicted"], 3)) == (1411, 0.237, 0.225)


@pytest.mark.datasets
@pytest.mark.skipif(not CDNOW.is_dir(), reason="CDNOW files not found")
def test_cli_prints_the_published_parameters(store, capsys):
    _cdnow_sample(store)
    path = str(store.path)
    store.close()
    assert main(["clv", "--db", path, "--calibration-end", "1997-09-30", "--unit", "week"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["customers_fitted"] == 2357
    assert round(out["bgnbd"]["r"], 3) == 0.243 and round(out["bgnbd"]["alpha"], 2) == 4.41
    assert round(out["bgnbd"]["log_likelihood"], 1) == -9582.4
    assert round(out["gamma_gamma"]["p"], 2) == 6.25 and out["gamma_gamma"]["n"] == 946
    assert out["holdout"]["actual_purchases"] == 1882
    assert main(["clv", "--db", path, "--format", "csv", "--horizon", "26w"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("customer_id,frequency,recency,T,monetary_value,p_alive") and len(lines) == 2358


def test_at_risk_list_links_value_to_voice(store):
    # Twelve customers: c0…c9 buy every week (x = 8 repeats over 9 weeks) and stay; d0 and d1 bought 9
    # times in the first 9 weeks and then stopped for 30 weeks. d0 is a detractor with an open ticket.
    rows = []
    for i in range(10):
        rows += [(f"c{i}-{k}", f"c{i}", str(T("2024-01-01") + pd.Timedelta(days=7 * k + 210)), 20.0 + i, None)
                 for k in range(9)]
    for name in ("d0", "d1"):
        rows += [(f"{name}-{k}", name, str(T("2024-01-01") + pd.Timedelta(days=7 * k)), 100.0, None) for k in range(9)]
    _orders(store, rows)
    ingest.import_frame(store, "responses", pd.DataFrame({
        "response_id": ["r1", "r2", "r3"], "customer_id": ["d0", "d0", "c1"],
        "submitted_at": [T("2024-02-01"), T("2024-03-01"), T("2024-08-01")], "nps": [9, 2, 10],
        "comment": ["fine", "Delivery was late twice.", None]}), file_name="nps")
    ingest.import_frame(store, "tickets", pd.DataFrame({
        "ticket_id": ["t1"], "customer_id": ["d0"], "created_at": [T("2024-03-02")]}), file_name="tickets")
    result = clv.predict_clv(store, unit="week", horizon_months=12, discount=0.01)
    # Customers this alike push the likelihood towards infinite parameters: the fit stops at its bounds,
    # says so, and the predictions stay finite.
    assert clv.at_limit(result.bgnbd.b) and not clv.at_limit(result.bgnbd.a)
    cust = result.customers.set_index("customer_id")
    assert np.isfinite(cust[["p_alive", "clv", "value_at_risk"]].to_numpy()).all()
    assert cust.loc["d0", "p_alive"] < 0.5 < cust.loc["c0", "p_alive"]
    assert np.allclose(cust["value_at_risk"], cust["value_if_active"] * (1 - cust["p_alive"]))
    top = clv.at_risk(store, result, limit=3)
    assert set(top["customer_id"][:2]) == {"d0", "d1"}
    # Once the customer list says d1 has cancelled, there is no saving them: nothing at risk, nothing to
    # expect, and off the list by default.
    ingest.import_frame(store, "customers", pd.DataFrame({"customer_id": ["d1"], "signup_at": [T("2024-01-01")],
                                                          "churned_at": [T("2024-04-01")]}), file_name="customers")
    known = clv.predict_clv(store, unit="week", horizon_months=12, discount=0.01)
    d1 = known.customers.set_index("customer_id").loc["d1"]
    assert d1["known_lost"] and (d1["p_alive"], d1["clv"], d1["value_at_risk"]) == (0, 0, 0)
    top = clv.at_risk(store, known, limit=3)
    assert top["customer_id"][0] == "d0" and "d1" not in set(top["customer_id"])
    everyone = clv.at_risk(store, known, limit=20, include_lost=True).set_index("customer_id")
    assert everyone.loc["d1", "value_at_risk"] == 0 and len(everyone) == 12
    d0 = top.set_index("customer_id").loc["d0"]
    assert (d0["latest_nps"], d0["open_tickets"], d0["last_comment"]) == (2, 1, "Delivery was late twice.")
    detractors = clv.at_risk(store, result, detractors_only=True)
    assert detractors["customer_id"].tolist() == ["d0"]
    by_nps = clv.value_by_nps(store, known).set_index("nps_category")
    # c0…c9 without c1 (a promoter), and not d1 (known lost): 9 without an answer.
    assert by_nps["customers"].to_dict() == {"Detractor (0–6)": 1, "No NPS answer": 9, "Promoter (9–10)": 1}
    assert by_nps.loc["Detractor (0–6)", "value_at_risk"] == pytest.approx(
        known.customers.set_index("customer_id").loc["d0", "value_at_risk"])


def test_historical_clv_by_segment(store):
    _orders(store, ORDERS)
    ingest.import_frame(store, "customers", pd.DataFrame({
        "customer_id": ["a", "b", "c"], "segment": ["SMB", "SMB", "Consumer"]}), file_name="customers")
    out = clv.historical_clv(store, start=date(2024, 1, 1), end=date(2024, 1, 31), by="segment").set_index("group")
    # January: a spent 10 + 5 + 15 + 40 = 70, b 12 (the refund is not revenue); c bought in February.
    assert out.loc["SMB", ["customers", "revenue", "clv_mean", "clv_median"]].tolist() == [2, 82.0, 41.0, 41.0]
    assert "Consumer" not in out.index
    total = clv.historical_clv(store)
    assert total.iloc[0][["customers", "revenue"]].tolist() == [3, 92.0]
