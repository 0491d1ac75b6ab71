"""Checking measured DP noise against its prediction when the noise cannot be seeded.

Clients draw their noise from the OS CSPRNG, so a test can only bound the measured variance.
:func:`assert_noise_variance` pools normalized errors (error / predicted stddev) and checks
that their mean square is within the bounds a χ² variable with that many degrees of freedom
leaves with probability at most :data:`FALSE_FAILURE`: a correct implementation fails such a
check about once in a million runs, while noise with 0.5 or 2 times the predicted variance
fails it always (from 1000 coordinates on the bounds are within ±0.27 of 1).

Why χ²: measure whole padded vectors (a power-of-two length, so the decoded vector is all of
the rotated one). The rotation is orthogonal, so the sum of squared errors equals that of the
rotated coordinates, which are independent: each is a sum of the survivors' own discrete
Gaussian or Skellam draws (variance ≫ 1 in the integer domain, so Gaussian to within a
negligible kurtosis) plus a stochastic-rounding error about 1e-8 of the variance.
"""

from __future__ import annotations

import math

import numpy as np

#: Probability that a correct implementation fails one check.
FALSE_FAILURE = 1e-6


def variance_ratio_bounds(n: int, p: float = FALSE_FAILURE) -> tuple[float, float]:
    """``(lo, hi)`` such that χ²_n / n falls outside them with probability ≤ ``p``.

    Laurent and Massart (2000, Lemma 1), with x = ln(2/p) so that each tail has at most p/2:
    P(χ²_n ≥ n + 2√(nx) + 2x) ≤ e^-x and P(χ²_n ≤ n - 2√(nx)) ≤ e^-x.
    """
    x = math.log(2 / p)
    return 1 - 2 * math.sqrt(x / n), 1 + 2 * math.sqrt(x / n) + 2 * x / n


def assert_noise_variance(normalized: list[np.ndarray]) -> float:
    """Checks the mean square of the pooled errors / predicted stddev against 1 at
    :data:`FALSE_FAILURE`; returns it."""
    z = np.concatenate([np.ravel(a) for a in normalized])
    assert z.size >= 1000, f"only {z.size} coordinates: too few to measure the variance"
    ratio = float(np.mean(z**2))
    lo, hi = variance_ratio_bounds(z.size)
    assert lo < ratio < hi, (
        f"measured noise variance / predicted = {ratio:.4f} over {z.size} coordinates, "
        f"outside [{lo:.4f}, {hi:.4f}] (a correct implementation leaves it with probability "
        f"≤ {FALSE_FAILURE})"
    )
    return ratio
