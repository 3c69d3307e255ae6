#!/usr/bin/env python3
"""The peer of `patron analyze`: the same customer-analytics pipeline written the way an analyst
would with pandas + lifetimes (DESIGN.md §4 definitions), timed stage by stage.

Input: a CSV with `customer_id,date,amount` (other names via `--map SOURCE=FIELD`); `date` is a
calendar day `YYYY-MM-DD` / `YYYYMMDD`, a local time `YYYY-MM-DD HH:MM[:SS]` (business time zone,
its date is taken) or an RFC 3339 time with an offset (converted to Asia/Shanghai); `amount` in
major units (yuan).

Stages (each timed with time.perf_counter, written to params.json `timings_ms`):
  read         pandas.read_csv + date parsing + amounts to cents + customer ids factorised once
  summaries    lifetimes.utils.summary_data_from_transaction_data (x, t_x, T, m) plus the RFM
               windows, trailing spend, median gap, relative-churn baseline and "returned after
               churn" day from one pandas per-day table
  rfm          R/F/M, quintile scores (rank method='min'), 8 value classes by the base means
  bgnbd        lifetimes BetaGeoFitter(penalizer_coef=0) on the (x, t_x, T) rows aggregated with
               weights (lifetimes' `weights=`), tightened tolerance (--plain-fit: one row per customer)
  gamma_gamma  lifetimes GammaGammaFitter(penalizer_coef=0) on customers with x > 0
  scores       conditional_probability_alive, conditional_expected_number_of_purchases_up_to_time,
               conditional_expected_average_profit, customer_lifetime_value(time=12, freq='D',
               discount_rate=0.01)
  loyalty      loyalty index (an orders-only file has one indicator: repeat purchase, as a percentile)
  abcd         tiers by trailing-12-month spend (top 20/30/30/20 %), tier revenue shares
  lifecycle    absolute and relative churn, lifecycle stage
  write        scores.csv (pandas.to_csv) with the columns of patron's scores.csv

Money: lifetimes is fitted on yuan, so Gamma-Gamma γ, m, E[M] and CLV are in yuan (params.json
says `money_unit`); RFM M and ABCD values are computed in integer cents (exact, like patron) and
written in yuan.
"""
import argparse, json, os, platform, sys, time, warnings

import numpy as np
import pandas as pd
import scipy
import lifetimes
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

warnings.filterwarnings("ignore", category=RuntimeWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

# DESIGN §4 defaults (SummaryConfig / LifecycleConfig / AbcdConfig / LoyaltyConfig of patron-analytics).
RFM_WINDOW, TRAILING, RECENT, BASELINE = 365, 365, 90, 365
CHURN_FLOOR, GAP_MULT = 180.0, 3.0
REL_DROP, MIN_BASELINE_DAYS, AT_RISK_P_ALIVE, LOYAL_INDEX, WON_BACK_WINDOW = 0.5, 2, 0.5, 70.0, 365
ABCD_CUTS = (20, 50, 80)
LOYALTY_MIN_AGE = 90
CLASS = {  # (high, recent, frequent) -> key, as patron's RfmClass::from_flags
    (True, True, True): "important_value", (True, False, True): "important_retain",
    (True, True, False): "important_develop", (True, False, False): "important_win_back",
    (False, True, True): "general_value", (False, False, True): "general_retain",
    (False, True, False): "general_develop", (False, False, False): "general_win_back",
}


class Stages:
    def __init__(self):
        self.ms, self._t, self._name = {}, None, None
        self.t0 = time.perf_counter()

    def start(self, name):
        self.stop()
        self._name, self._t = name, time.perf_counter()

    def stop(self):
        if self._name:
            self.ms[self._name] = self.ms.get(self._name, 0.0) + (time.perf_counter() - self._t) * 1e3
            self._name = None

    def total(self):
        self.stop()
        self.ms["total"] = (time.perf_counter() - self.t0) * 1e3
        return self.ms


def parse_days(s: pd.Series) -> pd.Series:
    """Business-day datetimes (naive, midnight) from the file's date/time strings."""
    sample = s.iloc[: min(len(s), 1000)].astype(str)
    if sample.str.contains(r"T|Z|[+-]\d\d:?\d\d$", regex=True).any():
        t = pd.to_datetime(s, utc=True, format="ISO8601")
        return t.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None).dt.normalize()
    if sample.str.len().max() > 10:  # local date-time without offset: its calendar day
        s = s.str.slice(0, 10)
        sample = sample.str.slice(0, 10)
    fmt = "%Y%m%d" if sample.str.fullmatch(r"\d{8}").all() else None
    if fmt is None:
        s = s.str.replace("/", "-", regex=False) if sample.str.contains("/").any() else s
        fmt = "%Y-%m-%d"
    return pd.to_datetime(s, format=fmt)


def groupwise_rank_score(values: pd.Series, groups: int) -> pd.Series:
    """patron's quantile score: 1 + ⌊groups × (number of strictly lower values) / n⌋."""
    below = values.rank(method="min") - 1
    return (1 + (groups * below.astype(np.int64)) // len(values)).astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", required=True)
    ap.add_argument("--as-of", required=True, help="YYYY-MM-DD; orders on this day count")
    ap.add_argument("--time-unit", choices=["days", "weeks"], default="days")
    ap.add_argument("--horizon", type=float, default=365, help="expected-purchases horizon in days")
    ap.add_argument("--clv-months", type=int, default=12)
    ap.add_argument("--discount", type=float, default=0.01, help="monthly discount rate")
    ap.add_argument("--map", action="append", default=[], metavar="SOURCE=FIELD")
    ap.add_argument("--sep", default=",", help="field separator (CDNOW: --sep '\\s+')")
    ap.add_argument("--no-header", metavar="NAMES", help="comma-separated column names of a file without header")
    ap.add_argument("--tol", type=float, default=1e-8,
                    help="lifetimes fit tolerance (BFGS gtol on the mean log-likelihood; lifetimes' default 1e-7)")
    ap.add_argument("--plain-fit", action="store_true", help="BG/NBD on one row per customer, no weights")
    ap.add_argument("--expanding-median", action="store_true",
                    help="returns after churn by groupby().expanding().median() over every gap (slower)")
    ap.add_argument("--out", required=True, help="scores.csv")
    ap.add_argument("--params", required=True, help="params.json")
    a = ap.parse_args()
    st = Stages()
    unit_days = 1.0 if a.time_unit == "days" else 7.0
    as_of = pd.Timestamp(a.as_of)

    # ---------------------------------------------------------------- read
    st.start("read")
    rename = dict(m.split("=", 1) for m in a.map)
    want = {"customer_id", "date", "amount"}
    names = a.no_header.split(",") if a.no_header else None
    header = pd.read_csv(a.orders, sep=a.sep, nrows=0, header=None if names else "infer", names=names).columns
    usecols = [c for c in header if rename.get(c, c) in want]
    df = pd.read_csv(a.orders, sep=a.sep, usecols=usecols, header=None if names else "infer", names=names,
                     dtype={c: str for c in usecols if rename.get(c, c) != "amount"})
    df = df.rename(columns=rename)
    missing = want - set(df.columns)
    if missing:
        sys.exit(f"missing columns: {sorted(missing)} (use --map SOURCE=FIELD)")
    df["date"] = parse_days(df["date"])
    df["cents"] = (df["amount"] * 100).round().astype(np.int64)
    codes, ids = pd.factorize(df["customer_id"])  # dense customer index, as patron's reader
    df["cid"] = codes
    df = df.drop(columns=["customer_id"])
    n_customers = len(ids)
    rows_read = len(df)

    # ---------------------------------------------------------------- summaries
    st.start("summaries")
    # x, t_x, T, m: lifetimes' own utility (freq='D' → purchase days; weeks = days / 7).
    summ = summary_data_from_transaction_data(df, "cid", "date", monetary_value_col="amount",
                                              observation_period_end=as_of, freq="D",
                                              freq_multiplier=1 if unit_days == 1 else 7)
    summ = summ.reindex(np.arange(n_customers))  # customers whose orders are all after as_of: prospects
    detail = {"summaries.lifetimes_summary_data": (time.perf_counter() - st._t) * 1e3}
    t_extra = time.perf_counter()
    # The rest from a per-day table (day numbers, cents).
    d = df[df["date"] <= as_of]
    orders_used = len(d)
    epoch = pd.Timestamp("1970-01-01")
    as_of_n = int((as_of - epoch).days)
    day = ((d["date"] - epoch).dt.days).astype(np.int64)
    daily = (pd.DataFrame({"cid": d["cid"].to_numpy(), "day": day.to_numpy(), "cents": d["cents"].to_numpy()})
             .groupby(["cid", "day"], sort=True).agg(spend=("cents", "sum"), orders=("cents", "size")).reset_index())
    win_from = as_of_n - RFM_WINDOW + 1
    trail_from = as_of_n - TRAILING + 1
    recent_from = as_of_n - RECENT + 1
    base_from = recent_from - BASELINE
    g = daily.groupby("cid", sort=True)
    cust = pd.DataFrame(index=pd.RangeIndex(n_customers))
    cust["purchase_days"] = g.size()
    cust["first_day"] = g["day"].min()
    cust["last_day"] = g["day"].max()
    cust["order_count"] = g["orders"].sum()
    inw = daily[daily["day"] >= win_from].groupby("cid")
    cust["window_orders"] = inw["orders"].sum()
    cust["window_spend"] = inw["spend"].sum()
    cust["trailing_spend"] = daily[daily["day"] >= trail_from].groupby("cid")["spend"].sum()
    cust["recent_spend"] = daily[daily["day"] >= recent_from].groupby("cid")["spend"].sum()
    base = daily[(daily["day"] >= base_from) & (daily["day"] < recent_from)].groupby("cid")
    cust["baseline_sum"] = base["spend"].sum()
    cust["baseline_purchase_days"] = base.size()
    cust = cust.fillna({c: 0 for c in ["purchase_days", "order_count", "window_orders", "window_spend",
                                       "trailing_spend", "recent_spend", "baseline_sum", "baseline_purchase_days"]})
    exposure = recent_from - np.maximum(cust["first_day"], base_from)
    cust["baseline_spend"] = np.where(exposure > 0, cust["baseline_sum"] * RECENT
                                      / exposure.clip(RECENT, max(BASELINE, RECENT)), 0.0)
    # gaps between purchase days, their median, and the last return after a churn-length silence
    # (threshold from the median of the earlier gaps only)
    daily["gap"] = g["day"].diff()
    gaps = daily.dropna(subset=["gap"])
    cust["median_gap"] = gaps.groupby("cid")["gap"].median()
    # Only a gap longer than the churn floor can end a churn-length silence, so the median of the
    # earlier gaps is needed for those few candidates only (a groupby().expanding().median() over
    # every gap gives the same result several times slower).
    gaps = gaps.assign(k=gaps.groupby("cid").cumcount())
    cand = gaps[gaps["gap"] > CHURN_FLOOR]
    if a.expanding_median:
        prior = gaps.groupby("cid")["gap"].expanding().median().groupby(level=0).shift(1)
        prior_median = pd.Series(prior.to_numpy(), index=gaps.index).loc[cand.index].to_numpy()
    else:
        earlier = cand[["cid", "k"]].reset_index().merge(gaps[["cid", "k", "gap"]], on="cid", suffixes=("", "_e"))
        earlier = earlier[earlier["k_e"] < earlier["k"]]
        prior_median = earlier.groupby("index")["gap"].median().reindex(cand.index).to_numpy()
    threshold = np.where(np.isnan(prior_median), CHURN_FLOOR, np.maximum(CHURN_FLOOR, GAP_MULT * prior_median))
    returns = cand[cand["gap"].to_numpy() > threshold]
    cust["last_return_day"] = returns.groupby("cid")["day"].max()
    detail["summaries.pandas_windows_gaps_returns"] = (time.perf_counter() - t_extra) * 1e3

    # ---------------------------------------------------------------- rfm
    st.start("rfm")
    has = cust["purchase_days"] > 0
    cust["R"] = as_of_n - cust["last_day"]
    scored = cust["window_orders"] > 0
    sc = cust[scored]
    thr_r, thr_f, thr_m = sc["R"].mean(), sc["window_orders"].mean(), sc["window_spend"].mean()
    cust["r_score"] = groupwise_rank_score(-sc["R"], 5)
    cust["f_score"] = groupwise_rank_score(sc["window_orders"], 5)
    cust["m_score"] = groupwise_rank_score(sc["window_spend"], 5)
    cust[["r_score", "f_score", "m_score"]] = cust[["r_score", "f_score", "m_score"]].fillna(0).astype(np.int64)
    flags = pd.DataFrame({"h": cust["window_spend"] >= thr_m, "r": cust["R"] <= thr_r,
                          "f": cust["window_orders"] >= thr_f})
    code = flags["h"].astype(int) * 4 + flags["r"].astype(int) * 2 + flags["f"].astype(int)
    keys = {h * 4 + r * 2 + f: v for (h, r, f), v in CLASS.items()}
    cust["rfm_class"] = code.map(keys).where(has)

    # ---------------------------------------------------------------- bgnbd
    st.start("bgnbd")
    s = summ[has.to_numpy()]
    if a.plain_fit:
        fx, fr, fT, fw = s["frequency"], s["recency"], s["T"], None
        fit_rows = len(s)
    else:
        agg = s.groupby(["frequency", "recency", "T"]).size().reset_index(name="w")
        fx, fr, fT, fw = agg["frequency"], agg["recency"], agg["T"], agg["w"]
        fit_rows = len(agg)
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bg_tol, bg_conv = a.tol, True
    while True:
        try:
            bgf.fit(fx, fr, fT, weights=fw, tol=bg_tol)
            break
        except Exception as e:  # lifetimes raises ConvergenceError when BFGS reports precision loss
            if bg_tol >= 1e-6:
                raise
            print(f"BG/NBD: {type(e).__name__} at tol={bg_tol:g}, retrying at {bg_tol * 100:g}", file=sys.stderr)
            bg_tol *= 100
            bg_conv = False
    bg = bgf.params_
    # lifetimes reports the mean log-likelihood in its internally rescaled time; the total in the
    # model's unit is comparable with the literature (CDNOW: −9582.4) and with patron
    w = np.ones(len(fx)) if fw is None else fw.to_numpy(dtype=float)
    bg_ll = -bgf._negative_log_likelihood(np.log([bg["r"], bg["alpha"], bg["a"], bg["b"]]), fx.to_numpy(),
                                          fr.to_numpy(), fT.to_numpy(), w, 0.0) * w.sum()

    # ---------------------------------------------------------------- gamma_gamma
    st.start("gamma_gamma")
    rep = s[s["frequency"] > 0]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    gg_tol = a.tol
    while True:
        try:
            ggf.fit(rep["frequency"], rep["monetary_value"], tol=gg_tol)
            break
        except Exception as e:
            if gg_tol >= 1e-6:
                raise
            print(f"Gamma-Gamma: {type(e).__name__} at tol={gg_tol:g}, retrying at {gg_tol * 100:g}", file=sys.stderr)
            gg_tol *= 100
    gg = ggf.params_
    gg_ll = -ggf._negative_log_likelihood_ * len(rep)  # Gamma-Gamma is fitted unscaled

    # ---------------------------------------------------------------- scores
    st.start("scores")
    f, r, T, m = s["frequency"], s["recency"], s["T"], s["monetary_value"]
    horizon = a.horizon / unit_days
    p_alive = bgf.conditional_probability_alive(f, r, T)
    expected = bgf.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, T)
    eov = ggf.conditional_expected_average_profit(f, m)
    if unit_days == 1:
        clv = ggf.customer_lifetime_value(bgf, f, r, T, m, time=a.clv_months, freq="D",
                                          discount_rate=a.discount)
    else:  # lifetimes' freq='W' uses 4.345 weeks a month; DESIGN's month is 30 days = 30/7 weeks
        month = 30.0 / unit_days
        clv = 0.0
        for i in range(1, a.clv_months + 1):
            clv = clv + eov * (bgf.predict(month * i, f, r, T) - bgf.predict(month * (i - 1), f, r, T)) \
                / (1 + a.discount) ** i
    cust["x"], cust["t_x"], cust["T"], cust["m"] = f, r, T, m
    cust["p_alive"], cust["expected_purchases"] = np.asarray(p_alive), np.asarray(expected)
    cust["expected_order_value"], cust["clv"] = np.asarray(eov), np.asarray(clv)

    # ---------------------------------------------------------------- loyalty
    st.start("loyalty")
    # the loyalty index from the only indicator an orders-only file carries: repeat purchase (x per
    # year of age, age floored at 90 days) as a mid-rank percentile
    xs = cust.loc[has]
    repeat_raw = xs["x"] * unit_days * 365.0 / np.maximum(xs["T"] * unit_days, LOYALTY_MIN_AGE)
    pct = (repeat_raw.rank(method="average") - 1) / max(len(repeat_raw) - 1, 1) if len(repeat_raw) > 1 \
        else repeat_raw * 0 + 0.5
    cust["loyalty_index"] = 100 * pct

    # ---------------------------------------------------------------- abcd
    st.start("abcd")
    ranked = cust.loc[has, "trailing_spend"]
    n_ranked = len(ranked)
    below = (ranked.rank(method="min") - 1).astype(np.int64) * 100
    c1, c2, c3 = ABCD_CUTS
    tier = np.select([below >= (100 - c1) * n_ranked, below >= (100 - c2) * n_ranked,
                      below >= (100 - c3) * n_ranked], ["A", "B", "C"], "D")
    cust["abcd"] = pd.Series(tier, index=ranked.index)
    total_rev = ranked.sum()
    tiers = []
    for t, grp in ranked.groupby(cust.loc[has, "abcd"]):
        tiers.append({"tier": t, "customers": int(len(grp)), "customer_share": len(grp) / max(n_ranked, 1),
                      "revenue_cents": int(grp.sum()), "revenue_share": float(grp.sum() / total_rev) if total_rev else 0.0})

    # ---------------------------------------------------------------- lifecycle
    st.start("lifecycle")
    thr = np.where(cust["median_gap"].isna(), CHURN_FLOOR, np.maximum(CHURN_FLOOR, GAP_MULT * cust["median_gap"]))
    cust["absolute_churn"] = has & (cust["R"] > thr)
    # relative churn is "still buying, but less": a purchase day in the recent window is required
    cust["relative_churn"] = has & ~cust["absolute_churn"] & (cust["R"] < RECENT) \
        & (cust["baseline_purchase_days"] >= MIN_BASELINE_DAYS) \
        & (cust["recent_spend"] < REL_DROP * cust["baseline_spend"])
    won_back = cust["last_return_day"] > as_of_n - WON_BACK_WINDOW
    cust["lifecycle"] = np.select(
        [~has, cust["absolute_churn"], cust["relative_churn"] | (cust["p_alive"] < AT_RISK_P_ALIVE),
         cust["purchase_days"] == 1, won_back, cust["loyalty_index"] >= LOYAL_INDEX],
        ["prospect", "churned", "at_risk", "new", "won_back", "loyal"], "active")
    cust["churn"] = np.select([cust["absolute_churn"], cust["relative_churn"]], ["absolute", "relative"], "none")

    # ---------------------------------------------------------------- write
    st.start("write")
    # the columns of patron's scores.csv; money in major units; unscored RFM scores empty
    score = lambda c: cust[c].where(cust[c] > 0).astype("Int64")
    out = pd.DataFrame({
        "customer_id": ids, "x": cust["x"].fillna(0).astype(np.int64), "t_x": cust["t_x"].fillna(0),
        "T": cust["T"].fillna(0), "m": cust["m"].fillna(0), "p_alive": cust["p_alive"],
        "expected_purchases": cust["expected_purchases"], "expected_order_value": cust["expected_order_value"],
        "clv": cust["clv"], "rfm_r": score("r_score"), "rfm_f": score("f_score"), "rfm_m": score("m_score"),
        "rfm_class": cust["rfm_class"], "abcd_tier": cust["abcd"], "lifecycle": cust["lifecycle"],
        "churn": cust["churn"], "recency_days": cust["R"].astype("Int64"),
        "frequency": cust["window_orders"].astype(np.int64), "monetary": cust["window_spend"] / 100,
        "trailing_spend": cust["trailing_spend"] / 100, "loyalty_index": cust["loyalty_index"],
    })
    out.to_csv(a.out, index=False, float_format="%.10g")
    timings = st.total()

    lc = cust["lifecycle"].value_counts().to_dict()
    params = {
        "tool": "pandas + lifetimes",
        "versions": {"python": platform.python_version(), "pandas": pd.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "lifetimes": lifetimes.__version__},
        "as_of": a.as_of, "time_unit": a.time_unit, "horizon": horizon, "clv_months": a.clv_months,
        "monthly_discount": a.discount, "rows_read": rows_read, "orders_used": orders_used,
        "customers": n_customers, "customers_with_purchases": int(has.sum()), "money_unit": "yuan",
        "bgnbd": {"r": bg["r"], "alpha": bg["alpha"], "a": bg["a"], "b": bg["b"], "log_likelihood": bg_ll,
                  "converged": bg_conv, "tol": bg_tol, "fit_rows": fit_rows, "weighted": not a.plain_fit},
        "gamma_gamma": {"p": gg["p"], "q": gg["q"], "gamma": gg["v"], "log_likelihood": gg_ll,
                        "customers": len(rep), "tol": gg_tol},
        "rfm_thresholds": {"recency_days": thr_r, "frequency": thr_f, "monetary_cents": thr_m},
        "abcd": tiers, "lifecycle": {k: int(v) for k, v in lc.items()},
        "timings_ms": timings, "detail_ms": detail,
    }
    with open(a.params, "w") as fh:
        json.dump(params, fh, indent=2, default=float)
    print(json.dumps({k: params[k] for k in ("bgnbd", "gamma_gamma", "timings_ms")}, default=float))


if __name__ == "__main__":
    main()
