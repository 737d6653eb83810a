"""The uncertainty of a mean over seeds: n, mean and its 95% Student-t interval (scipy.stats)."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[int, float, float, float]:
    """(n, mean, low, high): the t-interval of the mean; no interval (nan) for n < 2, a point for equal values."""
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return n, mean, math.nan, math.nan
    from scipy import stats  # here: the workflow imports this module to plan, and scipy.stats takes a second

    sem = float(stats.sem(x))
    if sem == 0:
        return n, mean, mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return n, mean, float(low), float(high)
