"""Paired differences over seeds: their mean and a percentile bootstrap confidence interval."""

from __future__ import annotations

import math

import numpy as np


def bootstrap_ci(d: np.ndarray, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(d), resampling the entries of `d` with replacement.

    NaN for fewer than 2 values (one seed says nothing about seed noise).
    """
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return math.nan, math.nan
    resampled = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = np.quantile(d[resampled].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)
