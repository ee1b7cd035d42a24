"""Paired statistics for comparing two methods run on the same seeds and the same test examples.

* :func:`paired_t`: the seed-level test. Each seed gives both methods the same initialisation, data
  and steps, so the per-seed differences d_s are the unit: mean d̄, standard error s_d/√n, the 95 %
  interval d̄ ± t_{0.975, n-1}·s_d/√n and the two-sided p-value of t = d̄/(s_d/√n) on n−1 degrees of
  freedom (Student).
* :func:`mcnemar`: the example-level test over the pooled test predictions of every seed: b = examples
  only the first method gets right, c = only the second; exact two-sided binomial p-value of
  min(b, c) under Binomial(b + c, ½).
* :func:`paired_bootstrap`: resamples test examples (with replacement, the same draw for both
  methods, within each seed) and reports the 95 % percentile interval of the difference in mean
  accuracy averaged over domains and seeds.

Pure Python (no scipy): the Student-t distribution comes from the regularised incomplete beta
function (continued fraction, Numerical Recipes §6.4), checked against tabulated values in the tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from .metrics import mean_std

__all__ = [
    "incomplete_beta",
    "mcnemar",
    "mean_std",
    "paired_bootstrap",
    "paired_t",
    "student_t_cdf",
    "student_t_quantile",
]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-16:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T ≤ t) = p (bisection; exact to 1e-10)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (low + high)
        if student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@dataclass
class PairedTest:
    """The mean paired difference, its 95 % interval, the t statistic and two-sided p-value, and n."""

    mean: float
    low: float
    high: float
    t: float
    p: float
    n: int


def paired_t(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """Paired t-test of ``a − b`` (one value per seed, same order)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need the same non-zero length, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    mean, std = mean_std(diffs)
    if n < 2:
        return PairedTest(mean, float("nan"), float("nan"), float("nan"), float("nan"), n)
    se = std / math.sqrt(n)
    half = student_t_quantile(0.5 + confidence / 2, n - 1) * se
    if se == 0:
        t, p = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    else:
        t = mean / se
        p = 2.0 * (1.0 - student_t_cdf(abs(t), n - 1))
    return PairedTest(mean, mean - half, mean + half, t, p, n)


@dataclass
class McNemar:
    """Discordant pairs (``only_a``: a right and b wrong; ``only_b``) and the exact two-sided p-value."""

    only_a: int
    only_b: int
    p: float


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Exact McNemar test on paired correctness of the same examples."""
    if len(a_correct) != len(b_correct):
        raise ValueError("McNemar needs the same examples for both methods")
    only_a = sum(1 for x, y in zip(a_correct, b_correct) if x and not y)
    only_b = sum(1 for x, y in zip(a_correct, b_correct) if y and not x)
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return McNemar(only_a, only_b, 1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return McNemar(only_a, only_b, min(1.0, 2 * tail))


def paired_bootstrap(
    a_correct: Sequence[Sequence[Sequence[bool]]],
    b_correct: Sequence[Sequence[Sequence[bool]]],
    samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """``(difference, low, high)`` of the average accuracy (mean over seeds of the mean over domains of
    each domain's accuracy), a − b, with a percentile interval from resampling each (seed, domain)'s
    test examples with replacement, the same draw for both methods.

    ``a_correct[s][d]`` is the list of per-example correctness of seed s, domain d.
    """
    rng = random.Random(seed)

    def average(rows_a, rows_b, draws=None):
        diffs = []
        for s, (seed_a, seed_b) in enumerate(zip(rows_a, rows_b)):
            per_domain = []
            for d, (xs, ys) in enumerate(zip(seed_a, seed_b)):
                idx = draws[s][d] if draws else range(len(xs))
                per_domain.append(sum(int(xs[i]) - int(ys[i]) for i in idx) / len(xs))
            diffs.append(sum(per_domain) / len(per_domain))
        return sum(diffs) / len(diffs)

    point = average(a_correct, b_correct)
    stats = []
    for _ in range(samples):
        draws = [[[rng.randrange(len(xs)) for _ in xs] for xs in seed_rows] for seed_rows in a_correct]
        stats.append(average(a_correct, b_correct, draws))
    stats.sort()
    lower = stats[int((1 - confidence) / 2 * samples)]
    upper = stats[min(samples - 1, int((1 + confidence) / 2 * samples))]
    return point, lower, upper
