"""Fixtures of the holdout validation (issue 18 §1), from lifetimes 0.11.3:

- `conditional`: BetaGeoFitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)
  (FHL 2005 eq. 10) for fixed parameter sets over a grid of (x, t_x, T, t);
- `probability`: BetaGeoFitter.probability_of_n_purchases_up_to_time(t, n) (FHL 2005 eq. 8);
- `cdnow`: the CDNOW sample split as in FHL 2005 (calibration to 1997-09-30, holdout to
  1998-06-30; purchase days, time in weeks = days / 7): lifetimes' calibration_and_holdout_data
  (freq='D'), BetaGeoFitter and GammaGammaFitter fitted on the calibration period, and the
  validation document's figures computed from them with lifetimes' own functions.

Run once (the output is committed as validation.json):

    python3 -m venv /tmp/lt-venv
    /tmp/lt-venv/bin/pip install numpy==1.26.4 pandas==2.1.4 scipy==1.11.4 autograd==1.9.1 dill==0.4.1
    /tmp/lt-venv/bin/pip install --no-deps lifetimes==0.11.3
    /tmp/lt-venv/bin/python validation_fixtures.py > validation.json
"""
import json
import os

import lifetimes
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import calibration_and_holdout_data

HERE = os.path.dirname(os.path.abspath(__file__))


def fitter(r, alpha, a, b):
    bg = BetaGeoFitter()
    bg.params_ = pd.Series({"r": r, "alpha": alpha, "a": a, "b": b})
    return bg


PARAMS = [
    {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},  # CDNOW, weeks (FHL 2005)
    {"r": 1.3, "alpha": 35.0, "a": 0.4, "b": 6.0},  # a < 1, days-like scale
    {"r": 0.6, "alpha": 2.0, "a": 2.5, "b": 1.2},  # a > 1
]
CASES = [(0, 0.0, 1.0), (0, 0.0, 38.86), (1, 2.0, 30.0), (2, 30.43, 38.86), (3, 10.0, 60.0), (5, 38.0, 38.0),
         (7, 1.0, 39.0), (12, 35.5, 39.0), (30, 100.0, 200.0)]
HORIZONS = [0.5, 1.0, 10.0, 39.0, 52.0, 300.0]

conditional = []
probability = []
for p in PARAMS:
    bg = fitter(**p)
    rows = []
    for x, tx, T in CASES:
        for t in HORIZONS:
            v = float(bg.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T))
            rows.append({"x": x, "t_x": tx, "T": T, "t": t, "expected": v})
    conditional.append({"params": p, "cases": rows})
    rows = []
    for t in [0.5, 1.0, 5.0, 32.0, 38.86, 78.0, 300.0]:
        for n in range(0, 9):
            rows.append({"t": t, "n": n, "p": float(bg.probability_of_n_purchases_up_to_time(t, n))})
    probability.append({"params": p, "cases": rows})

# The CDNOW split.
raw = pd.read_csv(os.path.join(HERE, "CDNOW_sample.txt"), sep=r"\s+", header=None,
                  names=["orig", "id", "date", "cds", "amount"])
raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
cal_end, hold_end = "1997-09-30", "1998-06-30"
d = calibration_and_holdout_data(raw, "id", "date", calibration_period_end=cal_end, observation_period_end=hold_end,
                                 freq="D", monetary_value_col="amount")
x = d["frequency_cal"].values
tx = d["recency_cal"].values / 7.0
T = d["T_cal"].values / 7.0
hold = d["frequency_holdout"].values
duration = float(d["duration_holdout"].iloc[0]) / 7.0
bg = BetaGeoFitter(penalizer_coef=0.0)
bg.fit(x, tx, T, tol=1e-8)
P = np.log(np.array([bg.params_[k] for k in ["r", "alpha", "a", "b"]]))
ll = -bg._negative_log_likelihood(P, x, tx, T, np.ones(len(x)), 0.0) * len(x)
pred = bg.conditional_expected_number_of_purchases_up_to_time(duration, x, tx, T)
pred = np.asarray(pred, dtype=float)
bucket = np.minimum(x, 7)
by_frequency = []
histogram = []
for k in range(8):
    m = bucket == k
    by_frequency.append({"frequency": k, "customers": int(m.sum()), "actual_mean": float(hold[m].mean()),
                         "predicted_mean": float(pred[m].mean())})
expected = [float(sum(bg.probability_of_n_purchases_up_to_time(t, k) for t in T)) for k in range(7)]
expected.append(float(len(x) - sum(expected)))
for k in range(8):
    histogram.append({"frequency": k, "actual_customers": int((bucket == k).sum()), "expected_customers": expected[k]})

# Spend: Gamma-Gamma on the calibration repeat customers (m = mean repeat purchase-day spend, the
# first day left out: lifetimes' monetary_value_cal), against the mean holdout purchase-day spend.
rep = d[d["frequency_cal"] > 0]
gg = GammaGammaFitter(penalizer_coef=0.0)
gg.fit(rep["frequency_cal"], rep["monetary_value_cal"], tol=1e-8)
per_day = raw[(raw["date"] > cal_end) & (raw["date"] <= hold_end)].groupby(["id", "date"])["amount"].sum()
holdout_day_spend = per_day.groupby(level="id").mean()
both = d[(d["frequency_cal"] > 0) & (d["frequency_holdout"] > 0)]
em = gg.conditional_expected_average_profit(both["frequency_cal"], both["monetary_value_cal"])
spend = {"customers": int(len(both)), "actual_mean": float(holdout_day_spend.loc[both.index].mean()),
         "predicted_mean": float(em.mean())}

print(json.dumps({
    "lifetimes": lifetimes.__version__,
    "conditional": conditional,
    "probability": probability,
    "cdnow": {
        "calibration_end": cal_end,
        "holdout_end": hold_end,
        "holdout_length": duration,
        "customers": int(len(x)),
        "bgnbd": {"r": float(bg.params_["r"]), "alpha": float(bg.params_["alpha"]), "a": float(bg.params_["a"]),
                  "b": float(bg.params_["b"]), "log_likelihood": float(ll)},
        "gamma_gamma": {"p": float(gg.params_["p"]), "q": float(gg.params_["q"]), "v": float(gg.params_["v"])},
        "total": {"actual": float(hold.sum()), "predicted": float(pred.sum())},
        "by_frequency": by_frequency,
        "calibration_histogram": histogram,
        "spend": spend,
        "mae_per_customer": float(np.abs(hold - pred).mean()),
    },
}, indent=1))
