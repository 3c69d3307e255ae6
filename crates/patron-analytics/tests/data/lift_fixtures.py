"""Makes tests/data/lift.json: the oracle of patron-analytics' lift intervals (issue 12 §4).

Run in a throwaway virtualenv: python3 -m venv /tmp/v && /tmp/v/bin/pip install statsmodels &&
/tmp/v/bin/python tests/data/lift_fixtures.py > tests/data/lift.json

- proportions: Newcombe's hybrid score interval of p1 - p2,
  statsmodels.stats.proportion.confint_proportions_2indep(method="newcomb"), alpha 0.05;
- means: Welch's interval of mean1 - mean2,
  statsmodels.stats.weightstats.CompareMeans.from_data(x1, x2).tconfint_diff(usevar="unequal").
"""
import json

import numpy as np
import statsmodels
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans

cases = [(0, 50, 0, 50), (5, 56, 9, 70), (10, 100, 3, 100), (50, 1000, 30, 1000), (120, 4000, 4, 200),
         (1, 30, 0, 30), (30, 30, 28, 30), (412, 9500, 18, 500), (7, 1234, 2, 987), (999, 1000, 990, 1000)]
proportions = []
for c1, n1, c2, n2 in cases:
    low, high = confint_proportions_2indep(c1, n1, c2, n2, method="newcomb", compare="diff", alpha=0.05)
    proportions.append({"count1": c1, "n1": n1, "count2": c2, "n2": n2, "diff": c1 / n1 - c2 / n2, "low": float(low), "high": float(high)})

rng = np.random.default_rng(20260630)
means = []
for n1, n2, zero in [(40, 35, 0.8), (500, 60, 0.9), (2000, 100, 0.95), (33, 31, 0.5), (300, 300, 0.7)]:
    # Revenue per recipient in cents: most spend nothing, a few spend a lognormal amount.
    x1 = np.where(rng.random(n1) < zero, 0, np.round(rng.lognormal(9.0, 0.6, n1))).astype(float)
    x2 = np.where(rng.random(n2) < zero + 0.03, 0, np.round(rng.lognormal(8.9, 0.6, n2))).astype(float)
    low, high = CompareMeans.from_data(x1, x2).tconfint_diff(alpha=0.05, usevar="unequal")
    means.append({"x1": x1.tolist(), "x2": x2.tolist(), "diff": float(x1.mean() - x2.mean()), "low": float(low), "high": float(high)})

print(json.dumps({"statsmodels": statsmodels.__version__, "proportions": proportions, "means": means}))
