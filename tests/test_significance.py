"""The comparison protocol's statistics, on hand-checked examples and tabulated values."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from hrkd_trainer.significance import (
    incomplete_beta,
    mcnemar,
    mean_std,
    paired_bootstrap,
    paired_t,
    student_t_cdf,
    student_t_quantile,
)


def test_student_t_matches_the_tables():
    # two-sided 95 % critical values: df 1, 2, 4, 9, 30
    for df, value in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)]:
        assert student_t_quantile(0.975, df) == pytest.approx(value, abs=1e-3)
    assert student_t_cdf(0.0, 5) == pytest.approx(0.5)
    assert student_t_cdf(-2.015, 5) == pytest.approx(0.05, abs=1e-4)  # one-sided 5 % at df 5
    assert incomplete_beta(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-4)  # I_0.4(2, 3)


def test_paired_t_by_hand():
    # differences 0.5, 0.1, 0.9, 1.0, 0.8: mean 0.66, sd √(0.532/4) = 0.36469, se 0.16310
    test = paired_t([1, 2, 3, 4, 5], [0.5, 1.9, 2.1, 3.0, 4.2])
    assert test.mean == pytest.approx(0.66)
    assert test.t == pytest.approx(0.66 / (math.sqrt(0.133) / math.sqrt(5)))
    half = 2.7764451 * math.sqrt(0.133) / math.sqrt(5)
    assert (test.low, test.high) == pytest.approx((0.66 - half, 0.66 + half))
    assert test.p == pytest.approx(0.01552, abs=2e-5)
    assert paired_t([1, 2], [1, 2]).p == 1.0
    with pytest.raises(ValueError):
        paired_t([1], [1, 2])


def test_mcnemar_by_hand():
    # only a: 3, only b: 1 → p = 2 · P(X ≤ 1 | n=4, ½) = 2 · 5/16
    result = mcnemar([1, 1, 1, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1])
    assert (result.only_a, result.only_b) == (3, 1) and result.p == pytest.approx(0.625)
    assert mcnemar([1, 0], [1, 0]).p == 1.0
    assert mcnemar([1] * 12, [0] * 12).p == pytest.approx(2 / 2**12)


def test_paired_bootstrap():
    a = [[[1, 1, 0, 1], [1, 0]], [[1, 1, 1, 1], [0, 0]]]
    same = paired_bootstrap(a, a, samples=200)
    assert same == (0.0, 0.0, 0.0)
    b = [[[0, 1, 0, 1], [1, 0]], [[1, 1, 1, 0], [0, 0]]]
    point, low, high = paired_bootstrap(a, b, samples=500, seed=1)
    # seed 1: (0.25 + 0) / 2; seed 2: (0.25 + 0) / 2 → 0.125
    assert point == pytest.approx(0.125) and low <= point <= high and low >= 0.0
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
