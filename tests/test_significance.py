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


def test_the_comparison_summary_pairs_seeds_and_pools_predictions():
    compare = benchmark_module("compare")

    def run(method, seed, correct_a, correct_b):
        correct = {"a": correct_a, "b": correct_b}
        accuracy = {d: sum(c) / len(c) for d, c in correct.items()}
        accuracy["average"] = (accuracy["a"] + accuracy["b"]) / 2
        return {"method": method, "seed": seed, "test_accuracy": accuracy, "test_correct": correct,
                "seconds_per_step": 2.0 if method == "uniform" else 3.0, "ratio_spread": 0.1}  # fmt: skip

    runs = {
        "uniform": {1: run("uniform", 1, [1, 0, 0, 1], [1, 0]), 2: run("uniform", 2, [1, 1, 0, 0], [0, 0])},
        "group-dro": {
            1: run("group-dro", 1, [1, 1, 0, 1], [1, 0]),
            2: run("group-dro", 2, [1, 1, 1, 0], [1, 0]),
        },
    }
    args = compare.parse_args(["--bootstrap", "100"])
    summary = compare.summarise(args, runs)
    against = summary["against_uniform"]["group-dro"]
    # averages: uniform 0.5, 0.25; group-dro 0.625, 0.625 → differences 0.125, 0.375
    assert against["average"]["mean"] == pytest.approx(0.25)
    assert (against["mcnemar"]["only_a"], against["mcnemar"]["only_b"]) == (3, 0)
    assert against["step_time_vs_uniform"] == pytest.approx(1.5)
    assert summary["methods"]["uniform"]["average"]["mean"] == pytest.approx(0.375)
    assert summary["test_sizes"] == {"a": 4, "b": 2}
    assert "| group-dro |" in compare.markdown(summary, args)


def test_the_compression_summary_pairs_student_and_baseline_per_seed(tmp_path):
    compression = benchmark_module("compression")

    def record(seed, student, baseline, speedup):
        correct = {"student": student, "baseline": baseline}
        results = {
            "domains": ["a", "b"],
            "compression": 5.7,
            "size_ratio": 6.0,
            "wall_time_seconds": {"distillation": 10.0},
        }
        for who, rows in (*correct.items(), ("teacher", {"a": [1, 1, 1, 1], "b": [1, 0]})):
            accuracy = {d: sum(c) / len(c) for d, c in rows.items()}
            accuracy["average"] = (accuracy["a"] + accuracy["b"]) / 2
            results[who] = {"accuracy": accuracy, "parameters": 100 if who == "teacher" else 20}
        results["teacher"]["weights_bytes"], results["student"]["weights_bytes"] = 600, 100
        results["student"]["speedup"] = speedup
        results["student"]["speedup_spread"] = {"q1": speedup - 0.5, "q3": speedup + 0.5, "repeats": 11}
        return {"seed": seed, "results": results, "correct": correct}

    records = [
        record(1, {"a": [1, 1, 0, 1], "b": [1, 0]}, {"a": [1, 0, 0, 1], "b": [1, 0]}, 9.0),
        record(2, {"a": [1, 1, 1, 0], "b": [1, 1]}, {"a": [1, 1, 0, 0], "b": [0, 0]}, 10.0),
    ]
    args = compression.parse_args(["--teacher", "t", "--out", str(tmp_path), "--bootstrap", "100"])
    summary = compression.summarise(args, records)
    diff = summary["student_minus_baseline"]
    # averages: student 0.625, 0.875; baseline 0.5, 0.25 → differences 12.5 and 62.5 points
    assert diff["average"]["mean"] == pytest.approx(37.5)
    assert (diff["mcnemar"]["only_a"], diff["mcnemar"]["only_b"]) == (4, 0)
    assert summary["accuracy"]["teacher"]["average"][0] == pytest.approx(75.0)
    assert summary["retention"][0] == pytest.approx((0.625 / 0.75 + 0.875 / 0.75) / 2)
    assert summary["test_examples"] == {"a": 4, "b": 2} and summary["speedup"]["per_seed"] == [9.0, 10.0]
    text = (tmp_path / "summary.md").read_text()
    assert "| student (KD) | 75.0 ± 0.0 | 75.0 ± 35.4 | 75.0 ± 17.7 |" in text
    assert "| student (no KD) | 50.0 ± 0.0 | 25.0 ± 35.4 | 37.5 ± 17.7 |" in text and "| 9.5× |" in text
    assert "9.0× [8.5-9.5], 10.0× [9.5-10.5]" in text and "5.70× fewer parameters" in text
