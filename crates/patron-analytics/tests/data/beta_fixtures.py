"""Fixtures of the channel calibration (issue 12 §5): the 5% and 95% quantiles of the
Beta(1 + responses, 1 + sends - responses) posterior, from scipy.stats.beta.ppf.

    python3 -m venv /tmp/sp && /tmp/sp/bin/pip install scipy && /tmp/sp/bin/python beta_fixtures.py > beta.json
"""
import json

import scipy
from scipy.stats import beta

cases = [(0, 0), (1, 0), (1, 1), (5, 2), (10, 2), (10, 9), (9, 0), (40, 7), (120, 33), (300, 1), (2000, 150)]
out = []
for sends, responses in cases:
    a, b = 1 + responses, 1 + sends - responses
    out.append({"sends": sends, "responses": responses, "mean": a / (a + b),
                "low": float(beta.ppf(0.05, a, b)), "high": float(beta.ppf(0.95, a, b))})
print(json.dumps({"scipy": scipy.__version__, "cases": out}, indent=1))
