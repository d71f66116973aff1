"""Paired differences over seeds: their mean and a percentile bootstrap confidence interval.

Pretraining seed s feeds finetuning (and probing) seed s, so two arms of the study are compared
seed by seed: `paired` is the one comparison the report and the part-aware claims both use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SEEDS_FOR_CI = 2  # one seed says nothing about seed noise


def bootstrap_ci(d: np.ndarray, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(d), resampling the entries of `d` with replacement.

    NaN for fewer than 2 values (one seed says nothing about seed noise).
    """
    d = np.asarray(d, dtype=float)
    if len(d) < MIN_SEEDS_FOR_CI:
        return math.nan, math.nan
    resampled = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = np.quantile(d[resampled].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Paired:
    """x - y over the seeds both ran, and the bootstrap CI of its mean."""

    seeds: list  # the common seeds, sorted
    x: np.ndarray  # x's values on `seeds`
    y: np.ndarray  # y's values on `seeds`
    diff: np.ndarray  # x - y per seed, rounded to 1e-9 (a tie is 0, not float noise)
    ci_low: float  # NaN with fewer than MIN_SEEDS_FOR_CI seeds
    ci_high: float

    @property
    def has_ci(self) -> bool:
        return len(self.seeds) >= MIN_SEEDS_FOR_CI

    @property
    def beyond_noise(self) -> bool:
        """Whether the CI excludes 0 (never without a CI)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


def paired(x, y, *, n_boot: int, confidence: float, seed: int) -> Paired:
    """Compare `x` and `y`, two pandas Series of one metric indexed by seed, on their common
    seeds: d_s = x_s - y_s and a percentile bootstrap CI of mean(d) (`bootstrap_ci`)."""
    seeds = sorted(set(x.index) & set(y.index))
    xs, ys = x[seeds].to_numpy(float), y[seeds].to_numpy(float)
    d = np.round(xs - ys, 9)
    lo, hi = bootstrap_ci(d, n_boot, confidence, seed)
    return Paired(seeds, xs, ys, d, lo, hi)


def bootstrap_settings(report: dict) -> dict:
    """The `report` config section as keyword arguments of `paired`."""
    return {
        "n_boot": report["bootstrap_samples"],
        "confidence": report["confidence"],
        "seed": report["seed"],
    }
